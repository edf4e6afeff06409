//! Restart safety: SIGKILL a real `ferrokube kubelet` process (an
//! in-process API server, the kubelet's own private containerd under a
//! tempdir) and start it again on the same data directory. The pod's
//! process and its shim keep their PIDs, the new kubelet re-adopts the
//! container, and the pod's status never wavers (Running, Ready,
//! restartCount 0, the same containerID), while the kubelet still
//! manages it: a delete stops and removes it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams, WatchEvent, WatchParams};
use kubelet::testing::pids_whose_cmdline_contains;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);
const NODE: &str = "restart-node";

/// A `ferrokube kubelet` child process and the host state it owns.
struct Kubelet {
    child: Option<Child>,
    args: Vec<String>,
    data_dir: PathBuf,
    log: PathBuf,
    bridge: String,
}

impl Kubelet {
    fn new(kubeconfig: &Path, dir: &Path) -> Kubelet {
        let pid = std::process::id();
        // Host-global: 10.89.0.0/16 is this test's (kubelet tests use
        // 10.90–10.189, services 10.190–10.249, the default is 10.42).
        let bridge = format!("fkr{:x}", pid % 0xfffff);
        let pod_cidr = format!("10.89.{}.0/24", pid % 250);
        let data_dir = dir.join("kubelet");
        let args = [
            "kubelet",
            "--kubeconfig",
            &kubeconfig.to_string_lossy(),
            "--node-name",
            NODE,
            "--data-dir",
            &data_dir.to_string_lossy(),
            "--pod-cidr",
            &pod_cidr,
            "--cni-bridge",
            &bridge,
            "--kubelet-port",
            "0",
            "--node-ip",
            "127.0.0.1",
        ]
        .map(str::to_string)
        .to_vec();
        Kubelet {
            child: None,
            args,
            data_dir,
            log: dir.join("kubelet.log"),
            bridge,
        }
    }

    fn spawn(&mut self) {
        let (log, err) = e2e::appended_log(&self.log).expect("kubelet log");
        let child = Command::new(e2e::ferrokube_binary())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("start ferrokube kubelet");
        self.child = Some(child);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("kubelet running").id()
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the kubelet");
            child.wait().expect("reap the kubelet");
        }
    }

    /// SIGTERM (the kubelet stops its containerd) and wait.
    fn terminate(&mut self) {
        if let Some(child) = self.child.take() {
            e2e::terminate(child);
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kubelet {
    /// Leaves the host clean whatever happened: the kubelet, then every
    /// process that names the data dir (containerd, shims), pod processes
    /// by their cgroups, mounts, and the bridge.
    fn drop(&mut self) {
        self.terminate();
        kubelet::testing::clean_host(&self.data_dir);
        kubelet::testing::remove_bridge(&self.bridge);
    }
}

/// The parent PID from `/proc/<pid>/stat` (the field after the `(comm)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = stat.rsplit_once(") ")?.1;
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Gone, or a zombie nobody reaps (PID 1 here need not).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ")?.1.chars().next())
        .is_none_or(|state| state == 'Z')
}

fn command_of(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

/// The private containerd processes of this data dir.
fn containerds(data_dir: &Path) -> Vec<u32> {
    let config = data_dir.join("containerd/config.toml");
    pids_whose_cmdline_contains(&config.to_string_lossy())
        .into_iter()
        .filter(|pid| command_of(*pid).starts_with("containerd "))
        .collect()
}

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    kubelet::testing::eventually(what, TIMEOUT, check).await
}

/// Phase, Ready condition, restart count and container ID.
fn summary(pod: &Pod) -> (Option<String>, Option<String>, Option<i32>, Option<String>) {
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    let main = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first());
    (
        status.and_then(|s| s.phase.clone()),
        ready,
        main.map(|c| c.restart_count),
        main.and_then(|c| c.container_id.clone()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_kubelet_restarts_without_touching_running_containers() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("test server");
    let dir = tempfile::Builder::new()
        .prefix("ferrokube-kubelet-restart-")
        .tempdir()
        .expect("tempdir");
    let mut kubelet = Kubelet::new(&server.kubeconfig, dir.path());
    let images = kubelet.data_dir.join("images");
    std::fs::create_dir_all(&images).expect("images dir");
    kubelet::busybox_image::write_busybox_image(
        Path::new("/bin/busybox"),
        "docker.io/library/busybox:latest",
        &images.join("busybox.tar"),
    )
    .expect("build busybox image");
    kubelet.spawn();

    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let marker = format!("sleep 37{}", std::process::id() % 1000);
    let seconds = marker.trim_start_matches("sleep ").to_string();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "sleeper", "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", seconds]}],
        },
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let before = eventually("the pod to run and be ready", || async {
        let pod = pods.get_opt("sleeper").await.expect("get pod")?;
        let s = summary(&pod);
        (s.0.as_deref() == Some("Running") && s.1.as_deref() == Some("True")).then_some(pod)
    })
    .await;
    let (_, _, restarts, container_id) = summary(&before);
    assert_eq!(restarts, Some(0));
    let container_id = container_id.expect("a container ID");
    let process = *pids_whose_cmdline_contains(&marker)
        .first()
        .expect("the pod's process runs on the host");
    let shim = parent_of(process).expect("the process has a parent");
    assert!(
        command_of(shim).contains("containerd-shim"),
        "the pod's process is a child of its shim: {}",
        command_of(shim)
    );
    let old_containerd = containerds(&kubelet.data_dir);
    assert_eq!(old_containerd.len(), 1, "one private containerd");
    assert_eq!(parent_of(old_containerd[0]), Some(kubelet.pid()));

    // Every version of the pod from here on, as a watch sees it.
    let seen: Arc<Mutex<Vec<Pod>>> = Arc::default();
    let version = before.metadata.resource_version.clone().unwrap_or_default();
    let mut stream = pods
        .watch(
            &WatchParams::default().fields("metadata.name=sleeper"),
            &version,
        )
        .await
        .expect("watch the pod")
        .boxed();
    let recorder = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                if let WatchEvent::Modified(pod) = event {
                    seen.lock().expect("seen").push(pod);
                }
            }
        })
    };

    kubelet.kill9();
    assert!(
        pids_whose_cmdline_contains(&marker).contains(&process),
        "the container outlives its kubelet"
    );
    let log_before_restart = kubelet.log_text().len();
    kubelet.spawn();
    eventually("the new kubelet to re-adopt the container", || async {
        let log = kubelet.log_text();
        log.get(log_before_restart..)?
            .contains("adopted existing containers")
            .then_some(())
    })
    .await;
    // Long enough for a kubelet that got it wrong to report so.
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_eq!(
        pids_whose_cmdline_contains(&marker),
        [process],
        "the same process runs on"
    );
    assert_eq!(parent_of(process), Some(shim), "under the same shim");
    let now = containerds(&kubelet.data_dir);
    assert_eq!(
        now.len(),
        1,
        "exactly one private containerd after the restart: {now:?}"
    );
    assert_eq!(
        parent_of(now[0]),
        Some(kubelet.pid()),
        "the new kubelet runs its containerd"
    );
    let after = pods.get("sleeper").await.expect("get pod");
    assert_eq!(
        summary(&after),
        (
            Some("Running".into()),
            Some("True".into()),
            Some(0),
            Some(container_id.clone())
        )
    );
    recorder.abort();
    for pod in seen.lock().expect("seen").iter() {
        assert_eq!(
            summary(pod),
            (
                Some("Running".into()),
                Some("True".into()),
                Some(0),
                Some(container_id.clone())
            ),
            "every status written across the restart is the running one"
        );
    }

    // The new kubelet manages the adopted container: a delete stops it.
    pods.delete("sleeper", &DeleteParams::default())
        .await
        .expect("delete pod");
    eventually("the pod to be removed", || async {
        pods.get_opt("sleeper")
            .await
            .expect("get pod")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        !pids_whose_cmdline_contains(&marker).contains(&process),
        "the adopted process was stopped"
    );
    eventually("its shim to exit", || async { exited(shim).then_some(()) }).await;
    kubelet.terminate();
}
