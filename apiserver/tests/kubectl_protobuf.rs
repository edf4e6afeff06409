//! The real kubectl's typed commands (`create configmap|secret|deployment|
//! job|cronjob|service|serviceaccount|priorityclass|namespace`) send
//! `application/vnd.kubernetes.protobuf` bodies; the whole API server, over
//! an embedded store, must decode them and store what Kubernetes stores.
//!
//! The strongest check is a comparison: each object created through the
//! typed (protobuf) command must equal the same object sent as JSON
//! (`--dry-run=client -o json | kubectl create -f -`).

use std::sync::{Arc, Mutex};

use apiserver::storage::{EmbeddedStore, Storage};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::{self, Next};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `(method path, content type)` of every request with a body.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

struct Server {
    addr: std::net::SocketAddr,
    seen: Seen,
    dir: tempfile::TempDir,
}

async fn serve() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage: Arc<dyn Storage> =
        Arc::new(EmbeddedStore::open(&dir.path().join("db")).expect("open embedded store"));
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = apiserver::server::build(storage, &apiserver::server::ApiOptions::default())
        .await
        .expect("build server")
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let record = record.clone();
            async move {
                if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
                    record.lock().expect("seen lock").push((
                        format!("{} {}", req.method(), req.uri().path()),
                        ct.to_str().unwrap_or_default().to_string(),
                    ));
                }
                next.run(req).await
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ferrokube
  cluster:
    server: http://{addr}
users:
- name: admin
  user: {{}}
contexts:
- name: ferrokube
  context:
    cluster: ferrokube
    user: admin
    namespace: default
current-context: ferrokube
"
    );
    std::fs::write(dir.path().join("kubeconfig"), kubeconfig).expect("write kubeconfig");
    Server { addr, seen, dir }
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Server {
    /// The stock kubectl, overridable by `KUBECTL`; `stdin` is piped in.
    async fn kubectl_with(&self, args: &[&str], stdin: &str) -> Out {
        let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
        let mut child = tokio::process::Command::new(&bin)
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {bin} (set KUBECTL to its path): {e}"));
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(stdin.as_bytes()).await.expect("write stdin");
        drop(pipe);
        let out = child.wait_with_output().await.expect("kubectl output");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn kubectl(&self, args: &[&str]) -> Out {
        self.kubectl_with(args, "").await
    }

    /// Runs a command that must succeed and returns its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    async fn get(&self, args: &[&str]) -> Value {
        let stdout = self.ok(&[&["get", "-o", "json"], args].concat()).await;
        serde_json::from_str(&stdout).expect("kubectl get -o json prints JSON")
    }

    fn content_types_of_posts(&self) -> Vec<(String, String)> {
        self.seen
            .lock()
            .expect("seen lock")
            .iter()
            .filter(|(req, _)| req.starts_with("POST "))
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_kubectl_creates_send_protobuf_and_store_kubernetes_objects() {
    let s = serve().await;
    for args in [
        &["create", "namespace", "team"][..],
        &["create", "configmap", "app", "--from-literal=k=v"],
        &[
            "create",
            "secret",
            "generic",
            "pw",
            "--from-literal=password=hunter2",
        ],
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox",
            "--replicas=2",
            "--port=80",
        ],
        &[
            "create",
            "job",
            "once",
            "--image=busybox",
            "--",
            "echo",
            "hi",
        ],
        &[
            "create",
            "cronjob",
            "tick",
            "--image=busybox",
            "--schedule=*/5 * * * *",
            "--",
            "date",
        ],
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
        &["create", "serviceaccount", "robot"],
        &[
            "create",
            "priorityclass",
            "high",
            "--value=1000",
            "--description=important",
        ],
    ] {
        s.ok(args).await;
    }
    let posts = s.content_types_of_posts();
    assert_eq!(posts.len(), 9, "{posts:#?}");
    for (req, ct) in &posts {
        assert!(
            ct.starts_with("application/vnd.kubernetes.protobuf"),
            "{req} was sent as {ct}, not protobuf"
        );
    }

    let ns = s.get(&["namespace", "team"]).await;
    assert_eq!(ns["metadata"]["name"], "team");

    let cm = s.get(&["configmap", "app"]).await;
    assert_eq!(cm["data"], json!({"k": "v"}));

    let secret = s.get(&["secret", "pw"]).await;
    assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="}));
    assert_eq!(secret["type"], "Opaque");

    let deploy = s.get(&["deployment", "web"]).await;
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox");
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": "25%", "maxUnavailable": "25%"})
    );

    let job = s.get(&["job", "once"]).await;
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], json!(["echo", "hi"]));
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");

    let cron = s.get(&["cronjob", "tick"]).await;
    assert_eq!(cron["spec"]["schedule"], "*/5 * * * *");
    let template = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(template["containers"][0]["command"], json!(["date"]));
    assert_eq!(template["restartPolicy"], "OnFailure");

    let svc = s.get(&["service", "web"]).await;
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}])
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["selector"], json!({"app": "web"}));

    let sa = s.get(&["serviceaccount", "robot"]).await;
    assert_eq!(sa["metadata"]["namespace"], "default");

    let pc = s.get(&["priorityclass", "high"]).await;
    assert_eq!(pc["value"], 1000);
    assert_eq!(pc["description"], "important");
    assert_eq!(pc.get("globalDefault"), None, "gogo's zero false is unset");
}

/// What differs between two creations of the same object: identity, and
/// what the server allocates (a Service's cluster IPs and node ports).
fn without_identity(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "namespace",
            "managedFields",
        ] {
            meta.remove(key);
        }
    }
    if v["kind"] == "Service"
        && let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(port) = port.as_object_mut() {
                port.remove("nodePort");
            }
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_and_json_bodies_store_the_same_objects() {
    let s = serve().await;
    s.ok(&["create", "namespace", "pb"]).await;
    s.ok(&["create", "namespace", "js"]).await;
    let commands: [(&[&str], &str); 7] = [
        (
            &[
                "configmap",
                "app",
                "--from-literal=k=v",
                "--from-literal=e=",
            ],
            "configmap/app",
        ),
        (
            &["secret", "generic", "pw", "--from-literal=password=hunter2"],
            "secret/pw",
        ),
        (
            &[
                "deployment",
                "web",
                "--image=busybox",
                "--image=nginx",
                "--replicas=0",
                "--port=80",
            ],
            "deployment/web",
        ),
        (
            &[
                "cronjob",
                "tick",
                "--image=busybox",
                "--schedule=*/5 * * * *",
                "--",
                "date",
            ],
            "cronjob/tick",
        ),
        (
            &["service", "clusterip", "web", "--tcp=80:8080", "--tcp=443"],
            "service/web",
        ),
        (
            &["service", "nodeport", "np", "--tcp=80:http"],
            "service/np",
        ),
        (&["serviceaccount", "robot"], "serviceaccount/robot"),
    ];
    for (args, _) in &commands {
        s.ok(&[&["create", "-n", "pb"], *args].concat()).await;
        let json = s
            .ok(&[&["create", "--dry-run=client", "-o", "json"], *args].concat())
            .await;
        let out = s
            .kubectl_with(&["create", "-n", "js", "-f", "-"], &json)
            .await;
        assert!(out.ok, "JSON create of {args:?}: {}", out.stderr);
    }
    for (_, object) in &commands {
        let pb = without_identity(s.get(&["-n", "pb", object]).await);
        let js = without_identity(s.get(&["-n", "js", object]).await);
        assert_eq!(
            pb, js,
            "{object}: protobuf body (left) differs from JSON body (right)"
        );
    }
    let deploy = s.get(&["-n", "pb", "deployment/web"]).await;
    assert_eq!(deploy["spec"]["replicas"], 0, "an explicit zero survives");
}

/// Sends one raw HTTP/1.1 request and returns the status line and body.
async fn raw_post(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_bodies_are_400_bad_request() {
    let s = serve().await;
    let path = "/api/v1/namespaces/default/configmaps";
    let ct = "application/vnd.kubernetes.protobuf";
    // k8s\0 + Unknown{typeMeta{"v1","ConfigMap"}, raw: a length past the end}
    let truncated = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x20\x0a";
    for body in [&b"not protobuf"[..], &truncated[..], &b"k8s\x00\xff"[..]] {
        let (status, text) = raw_post(s.addr, path, ct, body).await;
        assert!(status.contains(" 400 "), "{status}: {text}");
        let status: Value = serde_json::from_str(&text).expect("a Status body");
        assert_eq!(status["reason"], "BadRequest", "{status}");
    }
    // And a well-formed body through the same door is created.
    let good = b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x07\x0a\x05\x0a\x03raw";
    let (status, text) = raw_post(s.addr, path, ct, good).await;
    assert!(status.contains(" 201 "), "{status}: {text}");
}
