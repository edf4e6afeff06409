//! The example manifests run for real on a node with no registry: the
//! kubelet's busybox image is the one `ferrokube image busybox` builds
//! from busybox-static (as `scripts/up.sh` seeds it), and the shop's web
//! tier and the hello pod come up on it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use e2e::{Backend, Cluster, eventually, ferrokube_binary, manifest};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Deletes what the manifests started (the kubelet would otherwise leave
/// their containers behind) before the cluster stops, then the bridge.
struct Teardown<'a> {
    cluster: &'a Cluster,
    bridge: String,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        for (kind, ns) in [
            ("deployments", "shop"),
            ("pods", "shop"),
            ("pods", "default"),
        ] {
            let _ = self.cluster.kubectl(&[
                "delete",
                kind,
                "--all",
                "-n",
                ns,
                "--cascade=foreground",
                "--grace-period=1",
                "--timeout=60s",
            ]);
        }
        kubelet::testing::remove_bridge(&self.bridge);
    }
}

fn until<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually(TIMEOUT, check).unwrap_or_else(|| panic!("timed out waiting until {what}"))
}

/// One HTTP GET; the whole response.
fn get(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: shop\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn the_cli_builds_a_busybox_image_under_the_name_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("busybox.tar");
    let built = Command::new(ferrokube_binary())
        .args(["image", "busybox", "--name", "example.test/tools/busybox:1"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("ferrokube runs");
    assert!(built.status.success(), "{built:?}");
    let index = Command::new("tar")
        .arg("-xOf")
        .arg(&out)
        .arg("index.json")
        .output()
        .expect("tar runs");
    let index: Value = serde_json::from_slice(&index.stdout).expect("index.json");
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "example.test/tools/busybox:1"
    );

    let missing = Command::new(ferrokube_binary())
        .args(["image", "busybox", "--busybox", "/nonexistent/busybox"])
        .arg("--out")
        .arg(dir.path().join("none.tar"))
        .output()
        .expect("ferrokube runs");
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("/nonexistent/busybox"), "{err}");
}

#[test]
fn the_example_manifests_run_offline() {
    let id = std::process::id();
    let node = format!("e2e-manifests-{:x}", id % 0xffff);
    let bridge = format!("fkm{:x}", id % 0xfffff);
    // 10.250/16 and 10.251/16 are this test's alone (the kubelet tests use
    // second octets 90–189, the services tests 190–249).
    let cluster = Cluster::start_with_kubelet(
        Backend::Embedded,
        &[
            "--node-name",
            &node,
            "--cni-bridge",
            &bridge,
            "--cluster-cidr=10.250.0.0/16",
            "--service-cluster-ip-range=10.251.0.0/16",
            "--disable-proxy",
        ],
    );
    let _teardown = Teardown {
        cluster: &cluster,
        bridge,
    };
    for file in ["shop.yaml", "pod.yaml"] {
        cluster.kubectl_ok(&["apply", "-f", &manifest(file)]);
    }

    // Ready means the readiness probe got the page from busybox's httpd.
    until("the shop's three web replicas are ready", || {
        let d = cluster.kubectl_json(&["get", "deployment", "shop-web", "-n", "shop"])?;
        (d["status"]["readyReplicas"] == 3).then_some(())
    });
    let pods = cluster
        .kubectl_json(&["get", "pods", "-n", "shop", "-l", "tier=web"])
        .expect("the shop's pods");
    let ip = pods["items"][0]["status"]["podIP"]
        .as_str()
        .expect("a pod IP")
        .to_string();
    let page = until("the shop answers on its pod IP", || {
        get(&format!("{ip}:8080"))
    });
    assert!(
        page.lines().next().is_some_and(|l| l.contains(" 200 ")),
        "{page}"
    );
    assert!(page.contains("Welcome to the shop"), "{page}");

    until("the hello pod logs hello", || {
        let out = cluster.kubectl(&["logs", "hello"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("hello")
            .then_some(())
    });
}
