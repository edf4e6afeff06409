//! The real kubectl against the discovery and OpenAPI documents: `explain`
//! must render our schemas, and `create` must trust our OpenAPI v3 to
//! advertise `fieldValidation` (so it validates server-side and never asks
//! for the OpenAPI v2 protobuf).
//!
//! The harness serves only the discovery routes (`discovery_routes`) and
//! the OpenAPI router, plus pod
//! create/get/patch handlers: create applies `fieldValidation` with
//! `openapi::validate`, patch records what kubectl sent.

use std::sync::{Arc, Mutex};

use apiserver::discovery_routes;
use apiserver::openapi::{self, validate};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<Mutex<Vec<String>>>,
    /// Pods created, by name, so `kubectl apply` finds them again.
    pods: Arc<Mutex<std::collections::HashMap<String, Value>>>,
    /// `(Content-Type, body)` of every PATCH.
    patches: Arc<Mutex<Vec<(String, String)>>>,
}

impl Seen {
    fn all(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }
}

fn json_body(content_type: &str, value: &Value) -> Response {
    let ct = HeaderValue::from_str(content_type).expect("content type");
    ([(header::CONTENT_TYPE, ct)], value.to_string()).into_response()
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    let code = StatusCode::from_u16(code).expect("status code");
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn create_pod(
    State(seen): State<Seen>,
    Path(ns): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    let directive = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("fieldValidation="))
        .unwrap_or("Warn")
        .to_string();
    let errors = match validate::strict_errors("", "v1", "Pod", &body) {
        Ok(e) => e,
        Err(e) => return status(400, "BadRequest", &e.to_string()),
    };
    if directive == "Strict" && !errors.is_empty() {
        let message = format!(
            "Pod in version \"v1\" cannot be handled as a Pod: {}",
            validate::strict_decoding_message(&errors)
        );
        return status(400, "BadRequest", &message);
    }
    let mut pod: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", &e.to_string()),
    };
    pod["metadata"]["namespace"] = ns.into();
    pod["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001".into();
    pod["metadata"]["resourceVersion"] = "1".into();
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    seen.pods
        .lock()
        .expect("pods lock")
        .insert(name, pod.clone());
    let mut resp = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        pod.to_string(),
    )
        .into_response();
    if directive == "Warn" {
        for e in &errors {
            let v =
                HeaderValue::from_str(&validate::warning_header_value(e)).expect("warning header");
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

async fn get_pod(State(seen): State<Seen>, Path((_ns, name)): Path<(String, String)>) -> Response {
    match seen.pods.lock().expect("pods lock").get(&name) {
        Some(pod) => json_body("application/json", pod),
        None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
    }
}

/// Records the patch and answers with the stored pod: what kubectl computes
/// is under test here, not patch application.
async fn patch_pod(
    State(seen): State<Seen>,
    Path((_ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    seen.patches
        .lock()
        .expect("patches lock")
        .push((ct, String::from_utf8_lossy(&body).into_owned()));
    get_pod(State(seen), Path((String::new(), name))).await
}

async fn record(State(seen): State<Seen>, req: Request, next: Next) -> Response {
    let uri = req.uri().clone();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    seen.requests
        .lock()
        .expect("requests lock")
        .push(format!("{} {uri} [{accept}]", req.method()));
    next.run(req).await
}

async fn serve() -> (String, Seen, tempfile::TempDir) {
    let seen = Seen::default();
    let app: Router = Router::new()
        .route("/api/v1/namespaces/{ns}/pods", post(create_pod))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(get_pod).patch(patch_pod),
        )
        .with_state(seen.clone())
        .route(
            "/api/{version}",
            get(|Path(v): Path<String>, h: HeaderMap| async move {
                discovery_routes::resource_list("", &v, &h)
            }),
        )
        .route(
            "/apis/{group}",
            get(|Path(g): Path<String>| async move { discovery_routes::group(&g) }),
        )
        .route(
            "/apis/{group}/{version}",
            get(
                |Path((g, v)): Path<(String, String)>, h: HeaderMap| async move {
                    discovery_routes::resource_list(&g, &v, &h)
                },
            ),
        )
        .merge(discovery_routes::router())
        .merge(openapi::router())
        .layer(middleware::from_fn_with_state(seen.clone(), record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let dir = tempfile::tempdir().expect("tempdir");
    (format!("http://{addr}"), seen, dir)
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// The stock kubectl (1.29+ never reads OpenAPI v2), overridable by `KUBECTL`.
async fn kubectl(server: &str, dir: &tempfile::TempDir, args: &[&str]) -> Out {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_string());
    run(&bin, server, dir, args).await
}

/// kubectl 1.27, which loads the OpenAPI v2 protobuf before `explain`,
/// `create` and `apply`; overridable by `KUBECTL_OLD`.
async fn old_kubectl(server: &str, dir: &tempfile::TempDir, args: &[&str]) -> Out {
    let bin = std::env::var("KUBECTL_OLD")
        .unwrap_or_else(|_| "/usr/lib/google-cloud-sdk/bin/kubectl.1.27".to_string());
    run(&bin, server, dir, args).await
}

async fn run(bin: &str, server: &str, dir: &tempfile::TempDir, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(bin)
        .arg(format!("--server={server}"))
        .arg(format!(
            "--cache-dir={}",
            dir.path().join("cache").display()
        ))
        .args(args)
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .env("HOME", dir.path())
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {bin} (set KUBECTL/KUBECTL_OLD to its path): {e}"));
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_renders_field_descriptions_and_types() {
    let (server, _seen, dir) = serve().await;
    let out = kubectl(&server, &dir, &["explain", "pod.spec.containers"]).await;
    assert!(out.ok, "explain failed: {}\n{}", out.stdout, out.stderr);
    for want in [
        "KIND:       Pod",
        "VERSION:    v1",
        "FIELD: containers <[]Container>",
        "List of containers belonging to the pod.",
        "FIELDS:",
        "image\t<string>",
        "name\t<string> -required-",
        "ports\t<[]ContainerPort>",
        "resources\t<ResourceRequirements>",
    ] {
        assert!(
            out.stdout.contains(want),
            "missing {want:?} in:\n{}",
            out.stdout
        );
    }

    let out = kubectl(&server, &dir, &["explain", "deployments.spec.replicas"]).await;
    assert!(out.ok, "explain failed: {}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("GROUP:      apps"), "{}", out.stdout);
    assert!(
        out.stdout.contains("FIELD: replicas <integer>"),
        "{}",
        out.stdout
    );

    let out = kubectl(&server, &dir, &["explain", "pods"]).await;
    assert!(out.ok, "explain failed: {}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("metadata\t<ObjectMeta>\n"),
        "metadata must not be required:\n{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_api_resources_lists_discovery() {
    let (server, _seen, dir) = serve().await;
    let out = kubectl(&server, &dir, &["api-resources", "--no-headers"]).await;
    assert!(
        out.ok,
        "api-resources failed: {}\n{}",
        out.stdout, out.stderr
    );
    let deploy = out
        .stdout
        .lines()
        .find(|l| l.starts_with("deployments "))
        .unwrap_or_else(|| panic!("no deployments in:\n{}", out.stdout));
    let cols: Vec<&str> = deploy.split_whitespace().collect();
    assert_eq!(
        cols,
        ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
}

const POD_WITH_TYPO: &str = "apiVersion: v1
kind: Pod
metadata:
  name: typo
  namespace: default
spec:
  containers:
  - name: c
    imagee: busybox
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_validates_server_side_through_openapi_v3() {
    let (server, seen, dir) = serve().await;
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, POD_WITH_TYPO).expect("write manifest");
    let file = file.to_str().expect("utf-8 path");

    let out = kubectl(&server, &dir, &["create", "-f", file]).await;
    assert!(!out.ok, "strict create must fail: {}", out.stdout);
    assert!(
        out.stderr.contains(r#"Error from server (BadRequest): error when creating"#)
            && out.stderr.contains(r#"Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagee""#),
        "{}",
        out.stderr
    );

    let out = kubectl(&server, &dir, &["create", "--validate=warn", "-f", file]).await;
    assert!(out.ok, "warn create must succeed: {}", out.stderr);
    assert!(
        out.stderr
            .contains(r#"Warning: unknown field "spec.containers[0].imagee""#),
        "{}",
        out.stderr
    );

    let requests = seen.all();
    let creates: Vec<&String> = requests.iter().filter(|r| r.starts_with("POST ")).collect();
    assert_eq!(creates.len(), 2, "{requests:#?}");
    assert!(
        creates[0].contains("fieldValidation=Strict"),
        "{}",
        creates[0]
    );
    assert!(
        creates[1].contains("fieldValidation=Warn"),
        "{}",
        creates[1]
    );
    assert!(
        !requests.iter().any(|r| r.contains("/openapi/v2")),
        "kubectl fell back to OpenAPI v2: {requests:#?}"
    );
}

const TWO_CONTAINERS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  containers:
  - name: a
    image: nginx:1
  - name: b
    image: busybox
";

const ONE_CONTAINER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  containers:
  - name: a
    image: nginx:2
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_merges_containers_by_name_from_openapi_v3_patch_metadata() {
    let (server, seen, dir) = serve().await;
    let file = dir.path().join("web.yaml");
    let path = file.to_str().expect("utf-8 path");
    std::fs::write(&file, TWO_CONTAINERS).expect("write manifest");
    let out = kubectl(&server, &dir, &["apply", "-f", path]).await;
    assert!(out.ok, "first apply: {}\n{}", out.stdout, out.stderr);

    std::fs::write(&file, ONE_CONTAINER).expect("write manifest");
    let out = kubectl(&server, &dir, &["apply", "-f", path]).await;
    assert!(out.ok, "second apply: {}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);

    let patches = seen.patches.lock().expect("patches lock").clone();
    assert_eq!(patches.len(), 1, "{patches:?}");
    let (content_type, body) = &patches[0];
    assert_eq!(content_type, "application/strategic-merge-patch+json");
    let patch: Value = serde_json::from_str(body).expect("patch is JSON");
    assert_eq!(
        patch["spec"]["$setElementOrder/containers"],
        json!([{"name": "a"}]),
        "{body}"
    );
    let containers = patch["spec"]["containers"].as_array().expect("containers");
    assert!(
        containers.contains(&json!({"image": "nginx:2", "name": "a"})),
        "{body}"
    );
    assert!(
        containers.contains(&json!({"$patch": "delete", "name": "b"})),
        "{body}"
    );
    let requests = seen.all();
    assert!(
        !requests.iter().any(|r| r.contains("/openapi/v2")),
        "{requests:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_kubectl_reads_the_openapi_v2_protobuf_for_explain_and_create() {
    let (server, seen, dir) = serve().await;
    // The v2 renderer reads nothing but the protobuf document.
    let out = old_kubectl(
        &server,
        &dir,
        &[
            "explain",
            "--output=plaintext-openapiv2",
            "pod.spec.containers",
        ],
    )
    .await;
    assert!(out.ok, "explain failed: {}\n{}", out.stdout, out.stderr);
    for want in [
        "KIND:     Pod",
        "RESOURCE: containers <[]Object>",
        "List of containers belonging to the pod.",
        "image\t<string>",
        "name\t<string> -required-",
    ] {
        assert!(
            out.stdout.contains(want),
            "missing {want:?} in:\n{}",
            out.stdout
        );
    }

    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, POD_WITH_TYPO).expect("write manifest");
    let file = file.to_str().expect("utf-8 path");
    let out = old_kubectl(&server, &dir, &["create", "-f", file]).await;
    assert!(!out.ok, "strict create must fail: {}", out.stdout);
    assert!(
        out.stderr
            .contains(r#"strict decoding error: unknown field "spec.containers[0].imagee""#),
        "{}",
        out.stderr
    );
    let requests = seen.all();
    assert!(
        requests.iter().any(|r| r.starts_with("GET /openapi/v2")),
        "{requests:#?}"
    );
}
