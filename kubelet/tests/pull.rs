//! Image pulls from real registries: Debian's `docker-registry` (the
//! CNCF distribution registry) as child processes, one open and one with
//! htpasswd authentication, the busybox OCI image pushed to both with
//! `skopeo`. Pods pull by tag and by digest, with `imagePullSecrets`, and
//! fail as Kubernetes shows it (ErrImagePull, then ImagePullBackOff;
//! ErrImageNeverPull).

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::{Node, container, eventually, pod, status_of};

const USER: &str = "puller";
const PASSWORD: &str = "s3cret";

/// A `docker-registry` on a free loopback port, killed on drop.
struct Registry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// With `auth`, clients must log in as [`USER`] / [`PASSWORD`].
    fn start(auth: bool) -> Registry {
        let dir = tempfile::tempdir().expect("registry dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if auth {
            let htpasswd = dir.path().join("htpasswd");
            let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
            std::fs::write(&htpasswd, format!("{USER}:{hash}\n")).expect("htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::File::create(&config_path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .expect("registry config");
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&registry.addr).is_ok() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry did not listen on {}", registry.addr);
    }

    fn skopeo(&self, args: &[&str], auth: bool) -> String {
        let mut cmd = Command::new("skopeo");
        cmd.arg("--insecure-policy").arg(args[0]);
        if auth {
            let flag = if args[0] == "copy" {
                "--dest-creds"
            } else {
                "--creds"
            };
            cmd.arg(flag).arg(format!("{USER}:{PASSWORD}"));
        }
        cmd.args(&args[1..]);
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Pushes the OCI archive as `repo:tag`; returns the manifest digest.
    fn push(&self, archive: &Path, repo: &str, auth: bool) -> String {
        let dest = format!("docker://{}/{repo}", self.addr);
        let source = format!("oci-archive:{}", archive.display());
        self.skopeo(&["copy", "--dest-tls-verify=false", &source, &dest], auth);
        self.skopeo(
            &[
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                &dest,
            ],
            auth,
        )
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn busybox_archive(dir: &Path) -> PathBuf {
    let path = dir.join("busybox.tar");
    kubelet::busybox_image::write_busybox_image(
        Path::new("/bin/busybox"),
        "docker.io/library/busybox:latest",
        &path,
    )
    .expect("build busybox image");
    path
}

/// A pod running `image` (a sleeping busybox) with `extra` spec fields.
fn image_pod(node: &Node, name: &str, image: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut c = container(name, "sleep 3600", json!({"image": image}));
    if let (Some(target), Some(serde_json::Value::Object(more))) =
        (c.as_object_mut(), extra.get("container").cloned())
    {
        target.extend(more);
    }
    let mut spec = json!({"containers": [c]});
    if let Some(secrets) = extra.get("imagePullSecrets") {
        spec["imagePullSecrets"] = secrets.clone();
    }
    pod(name, &node.host_dir(name), spec)
}

fn waiting(p: &Pod, name: &str) -> Option<(String, String)> {
    let w = status_of(p, name)?.state?.waiting?;
    Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
}

async fn wait_running(node: &Node, name: &str) {
    node.wait_pod(name, "Running", |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
}

/// Waits for an event about `pod` with `reason` whose message satisfies `check`.
async fn event(node: &Node, pod: &str, reason: &str, check: impl Fn(&str) -> bool) -> String {
    eventually(&format!("a {reason} event about {pod}"), || async {
        node.events_of(pod, reason)
            .await
            .into_iter()
            .find(|m| check(m))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_pull_from_registries_by_tag_digest_and_secret_and_show_pull_failures() {
    let open = Registry::start(false);
    let private = Registry::start(true);
    let scratch = tempfile::tempdir().expect("scratch");
    let archive = busybox_archive(scratch.path());
    let digest = open.push(&archive, "test/busybox:v1", false);
    assert!(digest.starts_with("sha256:"), "{digest}");
    private.push(&archive, "private/busybox:v1", true);
    let insecure = vec![open.addr.clone(), private.addr.clone()];
    let mut node = Node::start_with(10, |config| config.insecure_registries = insecure).await;

    // By tag: pulled (events with Kubernetes' wording), then running.
    let by_tag = format!("{}/test/busybox:v1", open.addr);
    node.create(image_pod(&node, "by-tag", &by_tag, json!({})))
        .await;
    wait_running(&node, "by-tag").await;
    event(&node, "by-tag", "Pulling", |m| {
        m == format!("Pulling image \"{by_tag}\"")
    })
    .await;
    let pulled = event(&node, "by-tag", "Pulled", |m| {
        m.starts_with(&format!("Successfully pulled image \"{by_tag}\" in "))
    })
    .await;
    assert!(
        pulled.contains("including waiting). Image size: "),
        "{pulled}"
    );

    // By digest.
    let by_digest = format!("{}/test/busybox@{digest}", open.addr);
    node.create(image_pod(&node, "by-digest", &by_digest, json!({})))
        .await;
    wait_running(&node, "by-digest").await;
    let cs = node
        .wait_pod("by-digest", "its status", |p| status_of(p, "by-digest"))
        .await;
    assert_eq!(cs.image, by_digest);

    // Always pulls even though the image is now present.
    node.create(image_pod(
        &node,
        "always",
        &by_tag,
        json!({"container": {"imagePullPolicy": "Always"}}),
    ))
    .await;
    wait_running(&node, "always").await;
    event(&node, "always", "Pulled", |m| {
        m.starts_with("Successfully pulled image")
    })
    .await;
    // IfNotPresent does not.
    node.create(image_pod(
        &node,
        "if-not-present",
        &by_tag,
        json!({"container": {"imagePullPolicy": "IfNotPresent"}}),
    ))
    .await;
    wait_running(&node, "if-not-present").await;
    event(&node, "if-not-present", "Pulled", |m| {
        m == format!("Container image \"{by_tag}\" already present on machine")
    })
    .await;
    assert!(node.events_of("if-not-present", "Pulling").await.is_empty());

    // A tag the registry does not have: ErrImagePull with the registry's
    // reason, then ImagePullBackOff carrying it.
    let missing = format!("{}/test/busybox:nope", open.addr);
    node.create(image_pod(&node, "missing", &missing, json!({})))
        .await;
    let (_, message) = node
        .wait_pod("missing", "ErrImagePull", |p| {
            waiting(p, "missing").filter(|(r, _)| r == "ErrImagePull")
        })
        .await;
    assert!(message.contains("manifest unknown"), "{message}");
    assert!(message.contains(&missing), "{message}");
    let (_, message) = node
        .wait_pod("missing", "ImagePullBackOff", |p| {
            waiting(p, "missing").filter(|(r, _)| r == "ImagePullBackOff")
        })
        .await;
    assert!(
        message.starts_with(&format!(
            "Back-off pulling image \"{missing}\": ErrImagePull: "
        )),
        "{message}"
    );
    assert!(message.contains("manifest unknown"), "{message}");
    event(&node, "missing", "Failed", |m| {
        m.starts_with(&format!("Failed to pull image \"{missing}\": "))
            && m.contains("manifest unknown")
    })
    .await;
    event(&node, "missing", "BackOff", |m| {
        m == format!("Back-off pulling image \"{missing}\"")
    })
    .await;

    // The authenticating registry: no secret, no image.
    let secured = format!("{}/private/busybox:v1", private.addr);
    node.create(image_pod(&node, "no-secret", &secured, json!({})))
        .await;
    let (_, message) = node
        .wait_pod("no-secret", "ErrImagePull", |p| {
            waiting(p, "no-secret").filter(|(r, _)| r == "ErrImagePull")
        })
        .await;
    assert!(message.contains(&secured), "{message}");
    assert!(
        message.contains("Not authorized") || message.contains("UNAUTHORIZED"),
        "{message}"
    );
    // With a dockerconfigjson pull secret it runs.
    let config = json!({"auths": {private.addr.clone(): {"username": USER, "password": PASSWORD}}});
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "regcred", "namespace": "default"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(node.client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    node.create(image_pod(
        &node,
        "with-secret",
        &secured,
        json!({"imagePullSecrets": [{"name": "regcred"}]}),
    ))
    .await;
    wait_running(&node, "with-secret").await;

    // Never with an absent image.
    let absent = format!("{}/test/absent:v1", open.addr);
    node.create(image_pod(
        &node,
        "never",
        &absent,
        json!({"container": {"imagePullPolicy": "Never"}}),
    ))
    .await;
    let (_, message) = node
        .wait_pod("never", "ErrImageNeverPull", |p| {
            waiting(p, "never").filter(|(r, _)| r == "ErrImageNeverPull")
        })
        .await;
    assert_eq!(
        message,
        format!("Container image \"{absent}\" is not present with pull policy of Never")
    );

    node.finish(&[
        "by-tag",
        "by-digest",
        "always",
        "if-not-present",
        "missing",
        "no-secret",
        "with-secret",
        "never",
    ])
    .await;
}
