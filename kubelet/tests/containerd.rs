//! The kubelet end to end on a real containerd: a private daemon started
//! by the kubelet under a tempdir, the busybox OCI image built here and
//! imported at start, pods bound to the node through a real API server.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kubelet::testing::process_running;

const NODE: &str = "node-1";
const TIMEOUT: Duration = Duration::from_secs(60);

fn pod(name: &str, command: &[&str], restart_policy: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(NODE.into()),
            restart_policy: Some(restart_policy.into()),
            termination_grace_period_seconds: Some(2),
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox".into()),
                command: Some(command.iter().map(|s| s.to_string()).collect()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// Reads a configMap and a secret volume, writes through an emptyDir.
fn volumes_pod() -> Pod {
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, EmptyDirVolumeSource, SecretVolumeSource, Volume, VolumeMount,
    };
    let mut p = pod(
        "volumes",
        &[
            "sh",
            "-c",
            "cat /config/greeting /secret/token > /scratch/out && cat /scratch/out && echo \"|$GREETING|$S_token|$MEM\"",
        ],
        "Never",
    );
    let spec = p.spec.as_mut().expect("spec");
    spec.volumes = Some(vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "cfg".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "secret".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("sec".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ]);
    let mount = |name: &str, path: &str, read_only| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    };
    spec.containers[0].env = Some(
        serde_json::from_value(serde_json::json!([
            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        ]))
        .expect("env"),
    );
    spec.containers[0].env_from = Some(
        serde_json::from_value(serde_json::json!([{"prefix": "S_", "secretRef": {"name": "sec"}}]))
            .expect("envFrom"),
    );
    spec.containers[0].resources =
        serde_json::from_value(serde_json::json!({"limits": {"memory": "64Mi"}}))
            .expect("resources");
    spec.containers[0].volume_mounts = Some(vec![
        mount("config", "/config", true),
        mount("secret", "/secret", true),
        mount("scratch", "/scratch", false),
    ]);
    p
}

fn host_network_pod() -> Pod {
    let mut p = pod("host-net", &["sh", "-c", "exit 0"], "Never");
    if let Some(spec) = p.spec.as_mut() {
        spec.host_network = Some(true);
    }
    p
}

/// Holds 48 MB in a shell variable under a 16 MiB limit.
fn oom_pod() -> Pod {
    let mut p = pod(
        "hog",
        &[
            "sh",
            "-c",
            "x=$(head -c 48000000 /dev/zero | tr '\\0' a); echo survived",
        ],
        "Never",
    );
    if let Some(c) = p.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.resources = Some(k8s_openapi::api::core::v1::ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("16Mi".into()),
            )])),
            ..Default::default()
        });
    }
    p
}

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    kubelet::testing::eventually(what, TIMEOUT, check).await
}

async fn phase_of(pods: &Api<Pod>, name: &str, want: &str) -> Pod {
    eventually(&format!("{name} to be {want}"), || async {
        let pod = pods.get_opt(name).await.expect("get pod")?;
        (pod.status.as_ref()?.phase.as_deref() == Some(want)).then_some(pod)
    })
    .await
}

fn try_main_status(pod: &Pod) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first().cloned())
}

fn main_status(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStatus {
    try_main_status(pod).expect("a container status")
}

/// Leaves the host clean: containers outlive their kubelet by design, so
/// a test failing midway would leave processes, shims and mounts behind;
/// the bridge goes in any case.
struct HostCleanup {
    data_dir: std::path::PathBuf,
    bridge: String,
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            kubelet::testing::clean_host(&self.data_dir);
        }
        kubelet::testing::remove_bridge(&self.bridge);
    }
}

fn start_kubelet(
    config: kubelet::KubeletConfig,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), kubelet::KubeletError>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(kubelet::run(config, async {
        let _ = stopped.await;
    }));
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_succeed_fail_run_and_terminate_on_a_private_containerd() {
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
    // A bridge of this run's own: the default one is a real node's.
    let bridge = format!("fkc{}", std::process::id() % 100_000);
    let _cleanup = HostCleanup {
        data_dir: data_dir.clone(),
        bridge: bridge.clone(),
    };
    std::fs::create_dir_all(data_dir.join("images")).expect("images dir");
    kubelet::busybox_image::write_busybox_image(
        std::path::Path::new("/bin/busybox"),
        "docker.io/library/busybox:latest",
        &data_dir.join("images/busybox.tar"),
    )
    .expect("build busybox image");

    let mut config =
        kubelet::KubeletConfig::new(server.kubeconfig.clone(), NODE.into(), data_dir.clone());
    // No controller-manager here to assign the Node a podCIDR.
    config.pod_cidr = Some("10.88.0.0/16".into());
    config.bridge = bridge;
    let (stop, kubelet) = start_kubelet(config.clone());

    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let nodes: Api<Node> = Api::all(client.clone());
    let node = eventually("the node to register", || async {
        let node = nodes.get_opt(NODE).await.expect("get node")?;
        node.status.as_ref()?.conditions.as_ref()?;
        Some(node)
    })
    .await;
    let status = node.status.expect("node status");
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status, "True");
    let capacity = status.capacity.expect("capacity");
    assert_eq!(capacity["pods"].0, "110");
    assert!(capacity.contains_key("cpu") && capacity.contains_key("memory"));
    let info = status.node_info.expect("nodeInfo");
    assert!(
        info.container_runtime_version
            .starts_with("containerd://1."),
        "{}",
        info.container_runtime_version
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    eventually("the node lease", || async {
        leases.get_opt(NODE).await.expect("get lease")
    })
    .await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let config_map = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cfg"}, "data": {"greeting": "hello-cm "}
    }))
    .expect("configmap");
    config_maps
        .create(&PostParams::default(), &config_map)
        .await
        .expect("create configmap");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    let secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sec"}, "stringData": {"token": "s3cret"}
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
    let marker = format!("sleep 1{}", std::process::id() % 1000);
    let sleep_seconds = marker.trim_start_matches("sleep ").to_string();
    for p in [
        pod("hello", &["sh", "-c", "echo hi; exit 0"], "Never"),
        pod("fails", &["sh", "-c", "exit 3"], "Never"),
        pod("sleeper", &["sleep", &sleep_seconds], "Always"),
        pod("crasher", &["sh", "-c", "exit 1"], "OnFailure"),
        host_network_pod(),
        oom_pod(),
        volumes_pod(),
    ] {
        pods.create(&PostParams::default(), &p)
            .await
            .expect("create pod");
    }

    let hello = phase_of(&pods, "hello", "Succeeded").await;
    let cs = main_status(&hello);
    let terminated = cs
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!(terminated.exit_code, 0);
    assert_eq!(terminated.reason.as_deref(), Some("Completed"));
    assert!(terminated.started_at.is_some() && terminated.finished_at.is_some());
    assert!(
        cs.container_id
            .as_deref()
            .is_some_and(|id| id.starts_with("containerd://"))
    );
    assert_eq!(cs.image, "busybox");
    let hello_status = hello.status.as_ref().expect("status");
    assert!(hello_status.start_time.is_some());
    assert!(hello_status.host_ip.is_some());
    let log_dir = data_dir.join("pods").join(format!(
        "default_hello_{}",
        hello.metadata.uid.as_deref().expect("uid")
    ));
    let log = std::fs::read(log_dir.join("main/0.log")).expect("container log");
    assert_eq!(kubelet::logs::cri::plain_text(&log), b"hi\n");

    let volumes = phase_of(&pods, "volumes", "Succeeded").await;
    let volumes_log = data_dir
        .join("pods")
        .join(format!(
            "default_volumes_{}",
            volumes.metadata.uid.as_deref().expect("uid")
        ))
        .join("main/0.log");
    assert_eq!(
        kubelet::logs::cri::plain_text(&std::fs::read(volumes_log).expect("volumes log")),
        b"hello-cm s3cret|hello-cm |s3cret|64\n"
    );

    let host_net = phase_of(&pods, "host-net", "Succeeded").await;
    let host_status = host_net.status.as_ref().expect("status");
    assert_eq!(
        host_status.pod_ip, host_status.host_ip,
        "hostNetwork pods use the node IP"
    );

    let hog = phase_of(&pods, "hog", "Failed").await;
    let terminated = main_status(&hog)
        .state
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(terminated.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(terminated.exit_code, 137);

    let fails = phase_of(&pods, "fails", "Failed").await;
    let terminated = main_status(&fails)
        .state
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(terminated.exit_code, 3);
    assert_eq!(terminated.reason.as_deref(), Some("Error"));

    let sleeper = phase_of(&pods, "sleeper", "Running").await;
    let cs = main_status(&sleeper);
    assert!(cs.ready);
    assert_eq!(cs.restart_count, 0);
    assert!(cs.state.and_then(|s| s.running).is_some());
    let conditions: BTreeMap<String, String> = sleeper
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    for condition in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(
            conditions.get(condition).map(String::as_str),
            Some("True"),
            "{condition}"
        );
    }
    assert!(
        process_running(&marker),
        "the sleep process runs on the host"
    );
    let pod_ip = sleeper
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a pod IP from the CNI bridge");
    assert!(pod_ip.starts_with("10.88."), "{pod_ip}");

    // OnFailure restarts a failing container and counts the restarts.
    let crasher = eventually("the crasher to restart", || async {
        let pod = pods.get_opt("crasher").await.expect("get pod")?;
        (try_main_status(&pod)?.restart_count >= 1).then_some(pod)
    })
    .await;
    let last = main_status(&crasher)
        .last_state
        .and_then(|s| s.terminated)
        .expect("the previous run's termination");
    assert_eq!(last.exit_code, 1);
    assert_eq!(
        crasher.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );

    // A restarted kubelet re-adopts the running container instead of
    // restarting it.
    let container_id = main_status(&sleeper).container_id;
    let _ = stop.send(());
    kubelet.await.expect("kubelet task").expect("kubelet run");
    assert!(process_running(&marker), "containers outlive the kubelet");
    let (stop, kubelet) = start_kubelet(config);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sleeper = phase_of(&pods, "sleeper", "Running").await;
    let cs = main_status(&sleeper);
    assert_eq!(cs.container_id, container_id, "the same container runs on");
    assert_eq!(cs.restart_count, 0);
    assert!(process_running(&marker));

    pods.delete("sleeper", &DeleteParams::default())
        .await
        .expect("delete sleeper");
    eventually("the sleeper pod to be removed", || async {
        pods.get_opt("sleeper")
            .await
            .expect("get pod")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(!process_running(&marker), "the sleep process is gone");
    let netns = data_dir
        .join("netns")
        .join(sleeper.metadata.uid.as_deref().expect("uid"));
    assert!(!netns.exists(), "the pod network namespace is removed");
    let memory_cgroup = std::path::Path::new("/sys/fs/cgroup/memory");
    if memory_cgroup.exists() {
        let pod_cgroup = memory_cgroup.join(format!(
            "ferrokube/pod{}",
            sleeper.metadata.uid.as_deref().expect("uid")
        ));
        assert!(!pod_cgroup.exists(), "the pod cgroup is removed");
    }

    for name in ["hello", "fails", "crasher", "host-net", "hog", "volumes"] {
        pods.delete(name, &DeleteParams::default())
            .await
            .expect("delete pod");
    }
    for name in ["hello", "fails", "crasher", "host-net", "hog", "volumes"] {
        eventually("finished pods to be removed", || async {
            pods.get_opt(name)
                .await
                .expect("get pod")
                .is_none()
                .then_some(())
        })
        .await;
    }

    // Terminal pods are deleted at once by the API server; the kubelet
    // still tears their sandboxes down.
    eventually("every pod network namespace to be removed", || async {
        let left = std::fs::read_dir(data_dir.join("netns")).map_or(0, |d| d.count());
        (left == 0).then_some(())
    })
    .await;

    let _ = stop.send(());
    kubelet.await.expect("kubelet task").expect("kubelet run");
}
