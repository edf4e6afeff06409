//! A node for lifecycle tests: an in-process API server, and a kubelet
//! with its own private containerd under a tempdir, the busybox image
//! imported at start, its own CNI bridge and pod CIDR (host-global, so
//! derived from the process ID and a per-test number, and the bridge is
//! deleted at the end); pods are JSON with `hostPath`
//! directories the test reads and writes. On a panic, the host is left
//! clean (containers outlive their kubelet by design).

// Each test binary uses part of this harness.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

pub const NODE: &str = "node-1";
pub const TIMEOUT: Duration = Duration::from_secs(90);

pub struct Node {
    /// For objects beyond pods and events.
    pub client: kube::Client,
    pub pods: Api<Pod>,
    pub events: Api<Event>,
    /// Host directories that pods mount (`host_dir(name)`).
    pub host: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), kubelet::KubeletError>>>,
    _cleanup: HostCleanup,
    server: apiserver::testing::TestServer,
    _dir: tempfile::TempDir,
}

impl Node {
    /// `n` (1–200) tells this process's tests apart.
    pub async fn start(n: u8) -> Node {
        Node::start_with(n, |_| {}).await
    }

    /// As [`Node::start`], with `configure` adjusting the kubelet's config.
    pub async fn start_with(n: u8, configure: impl FnOnce(&mut kubelet::KubeletConfig)) -> Node {
        let pid = std::process::id();
        let bridge = format!("fkl{}x{n}", pid % 10000);
        // Host-global: test families use disjoint second octets (lifecycle
        // tests 90–139, streaming 140–189, services 190–249).
        let pod_cidr = format!("10.{}.{n}.0/24", 90 + pid % 50);
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("kubelet=info")),
            )
            .with_test_writer()
            .try_init();
        let server = apiserver::testing::TestServer::start()
            .await
            .expect("test server");
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let host = dir.path().join("host");
        std::fs::create_dir_all(data_dir.join("images")).expect("images dir");
        std::fs::create_dir_all(&host).expect("host dir");
        kubelet::busybox_image::write_busybox_image(
            Path::new("/bin/busybox"),
            "docker.io/library/busybox:latest",
            &data_dir.join("images/busybox.tar"),
        )
        .expect("build busybox image");
        let mut config =
            kubelet::KubeletConfig::new(server.kubeconfig.clone(), NODE.into(), data_dir.clone());
        config.pod_cidr = Some(pod_cidr);
        config.bridge = bridge.clone();
        configure(&mut config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(kubelet::run(config, async {
            let _ = stopped.await;
        }));
        let client = client::connect(Some(&server.kubeconfig))
            .await
            .expect("client");
        Node {
            pods: Api::namespaced(client.clone(), "default"),
            events: Api::namespaced(client.clone(), "default"),
            client,
            host,
            stop: Some(stop),
            task: Some(task),
            _cleanup: HostCleanup { data_dir, bridge },
            server,
            _dir: dir,
        }
    }

    /// `kubectl ARGS` (the real one; `KUBECTL` overrides) against this
    /// node's API server; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let out = std::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&self.server.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The kubelet's data directory (netns files, pod dirs, containerd).
    pub fn data_dir(&self) -> &Path {
        &self._cleanup.data_dir
    }

    /// This node's CNI bridge (pods' host-side veths are its ports).
    pub fn bridge(&self) -> &str {
        &self._cleanup.bridge
    }

    /// The host-side veths on this node's bridge.
    pub fn bridge_ports(&self) -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show", "master", self.bridge()])
            .output()
            .expect("run ip link");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            // `7: vethabc@if2: <...>`
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_string())
            .collect()
    }

    /// A host directory for one pod, created empty.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let dir = self.host.join(name);
        std::fs::create_dir_all(&dir).expect("host dir");
        dir
    }

    pub async fn create(&self, pod: Value) {
        let pod: Pod = serde_json::from_value(pod).expect("pod");
        self.pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
    }

    /// Waits until `check` finds what it wants in the pod.
    pub async fn wait_pod<T>(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Pod) -> Option<T>,
    ) -> T {
        eventually(&format!("{name}: {what}"), || async {
            let pod = self.pods.get_opt(name).await.expect("get pod")?;
            check(&pod)
        })
        .await
    }

    /// Messages of the events with `reason` about pod `name`.
    pub async fn events_of(&self, name: &str, reason: &str) -> Vec<String> {
        self.events
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.message)
            .collect()
    }

    /// Deletes the pods and waits until they are gone, then stops the kubelet.
    pub async fn finish(&mut self, names: &[&str]) {
        for name in names {
            self.pods
                .delete(name, &DeleteParams::default())
                .await
                .expect("delete pod");
        }
        for name in names {
            eventually(&format!("{name} to be removed"), || async {
                self.pods
                    .get_opt(name)
                    .await
                    .expect("get pod")
                    .is_none()
                    .then_some(())
            })
            .await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("kubelet task").expect("kubelet run");
        }
    }
}

pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    kubelet::testing::eventually(what, TIMEOUT, check).await
}

/// A pod on [`NODE`] with a `data` hostPath volume at `host` and a short
/// grace period (busybox `sh` as PID 1 ignores SIGTERM).
pub fn pod(name: &str, host: &Path, spec: Value) -> Value {
    let mut pod = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 2,
            "volumes": [{"name": "data", "hostPath": {"path": host, "type": "DirectoryOrCreate"}}],
        },
    });
    if let (Some(target), Value::Object(extra)) = (pod["spec"].as_object_mut(), spec) {
        target.extend(extra);
    }
    pod
}

/// A busybox container running `script` with `/data` mounted; `extra`
/// adds fields (probes, lifecycle, ports).
pub fn container(name: &str, script: &str, extra: Value) -> Value {
    let mut c = json!({
        "name": name,
        "image": "busybox",
        "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    });
    if let (Some(target), Value::Object(extra)) = (c.as_object_mut(), extra) {
        target.extend(extra);
    }
    c
}

pub fn condition(pod: &Pod, type_: &str) -> Option<(String, Option<String>)> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn status_of(pod: &Pod, name: &str) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .cloned()
}

/// Kills what a failed test left: pod processes (by their cgroups), the
/// private containerd and shims (by the data dir in their command line),
/// and mounts under the data dir.
struct HostCleanup {
    data_dir: PathBuf,
    bridge: String,
}

impl HostCleanup {
    fn delete_bridge(&self) {
        kubelet::testing::remove_bridge(&self.bridge);
    }
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.delete_bridge();
            return;
        }
        kubelet::testing::clean_host(&self.data_dir);
        self.delete_bridge();
    }
}
