//! The pod startup benchmark: an in-process API server and kubelet (its
//! private containerd, the CNI bridge, the busybox image imported, so no
//! pull), time from a pod's creation to `Running` as a watch sees it, for
//! one pod at a time and for a burst created at once; beside it, the raw
//! container start on the same containerd and image through the kubelet's
//! own container module (image look-up, snapshot, spec, container, task,
//! start: no API, no sandbox) as the limit, one at a time and as many at
//! once as the burst (on a small host the burst is CPU-bound: runc and a
//! shim per container). Needs root. `RUST_LOG=kubelet=debug` logs each
//! pod start's stages with their times.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::report::{Row, millis, quantile, table};

const P99_AIM: Duration = Duration::from_secs(1);
/// Single-pod startup against the raw container start.
const RAW_FACTOR_AIM: f64 = 1.5;
const NODE: &str = "bench-node";
/// A pause before each single start, pod or raw: each is timed on an idle
/// node, not beside the previous one's teardown (containerd's garbage
/// collection, CNI DEL) still running.
const SETTLE: Duration = Duration::from_millis(300);
const BRIDGE: &str = "fkbench0";

#[derive(clap::Args)]
pub struct Args {
    /// Single pods created one after another (p50/p99 over them).
    #[arg(long, default_value_t = 10)]
    singles: usize,
    /// Pods created at once.
    #[arg(long, default_value_t = 30)]
    burst: usize,
}

/// A sleeping busybox pod; `host-*` pods use the host network (no
/// namespace, no CNI), to show what the pod sandbox costs.
fn bench_pod(name: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "hostNetwork": name.starts_with("host-"),
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}],
        },
    }))?)
}

fn running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Creates `names` at once; each one's creation-to-Running time as seen
/// on a watch opened before the first create.
async fn start_pods(pods: &Api<Pod>, names: &[String]) -> anyhow::Result<Vec<Duration>> {
    let version = pods
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut events = pods
        .watch(&WatchParams::default().timeout(290), &version)
        .await?
        .boxed();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let creates = names.iter().map(|name| async move {
        let pod = bench_pod(name)?;
        let at = Instant::now();
        pods.create(&PostParams::default(), &pod).await?;
        Ok::<_, anyhow::Error>((name.clone(), at))
    });
    for result in futures::future::join_all(creates).await {
        let (name, at) = result?;
        created.insert(name, at);
    }
    let mut took = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while took.len() < names.len() {
        let event = tokio::time::timeout_at(deadline, events.try_next())
            .await
            .context("pods did not reach Running within 2 minutes")??
            .context("the pod watch ended")?;
        let pod = match event {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
            WatchEvent::Error(e) => anyhow::bail!("watch error: {e}"),
            _ => continue,
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        if running(&pod)
            && let Some(at) = created.get(&name)
        {
            took.entry(name).or_insert_with(|| at.elapsed());
        }
    }
    Ok(took.into_values().collect())
}

async fn delete_pods(pods: &Api<Pod>, names: &[String]) -> anyhow::Result<()> {
    for name in names {
        pods.delete(name, &DeleteParams::default()).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for name in names {
        while pods.get_opt(name).await?.is_some() {
            anyhow::ensure!(Instant::now() < deadline, "pod {name} was not removed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// One raw start of attempt `attempt` of the bench container in pod
/// `uid`: the image look-up the kubelet makes once per start, then the
/// kubelet's container module straight on containerd; the time it took
/// and the container ID.
async fn raw_start(
    rt: &kubelet::runtime::Runtime,
    logs: &Arc<kubelet::logs::copier::Registry>,
    data_dir: &Path,
    uid: &str,
    attempt: i32,
) -> anyhow::Result<(Duration, String)> {
    let pod = bench_pod("raw")?;
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .cloned()
        .context("bench pod has a container")?;
    let pod_ref = kubelet::containers::PodRef {
        uid: uid.into(),
        namespace: "default".into(),
        name: "raw".into(),
    };
    let place = kubelet::spec::Placement {
        netns: None,
        cgroups_path: format!("/ferrokube/pod{uid}"),
        hostname: "raw".into(),
        extra_env: Vec::new(),
        mounts: Vec::new(),
        resolv_conf: None,
    };
    let log_dir = data_dir.join("raw-logs").join(uid);
    let started = Instant::now();
    let image = kubelet::image::lookup(rt, "docker.io/library/busybox:latest")
        .await?
        .context("the busybox image is imported")?;
    let (id, _) = kubelet::containers::start(
        rt, &pod, &pod_ref, &container, &image, attempt, place, log_dir, logs,
    )
    .await?;
    Ok((started.elapsed(), id))
}

/// Raw starts: `runs` one after another, then `burst` at once (each
/// timed from the burst's start), all removed again.
async fn raw_starts(
    data_dir: &Path,
    runs: usize,
    burst: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let containerd = kubelet::Containerd::attach(None, "containerd", data_dir).await?;
    let rt = &containerd.runtime;
    let logs = Arc::new(kubelet::logs::copier::Registry::new(
        data_dir.join("raw-io"),
        kubelet::logs::writer::Rotation::default(),
    ));
    let mut singles = Vec::new();
    for attempt in 0..runs {
        tokio::time::sleep(SETTLE).await;
        let (took, id) = raw_start(rt, &logs, data_dir, "bench-raw", attempt as i32).await?;
        singles.push(took);
        kubelet::containers::remove(rt, &id).await?;
    }
    let uids: Vec<String> = (0..burst).map(|i| format!("bench-raw-{i}")).collect();
    let began = Instant::now();
    let started = futures::future::join_all(uids.iter().map(|uid| {
        let logs = &logs;
        async move {
            let (_, id) = raw_start(rt, logs, data_dir, uid, 0).await?;
            Ok::<_, anyhow::Error>((began.elapsed(), id))
        }
    }))
    .await;
    let mut bursts = Vec::new();
    for result in started {
        let (took, id) = result?;
        bursts.push(took);
        kubelet::containers::remove(rt, &id).await?;
    }
    for uid in std::iter::once("bench-raw").chain(uids.iter().map(String::as_str)) {
        kubelet::cgroups::remove_pod_now("/ferrokube", uid);
    }
    containerd.close().await;
    Ok((singles, bursts))
}

fn quantiles(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    (quantile(&d, 0.5), quantile(&d, 0.99))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(is_root(), "pod-startup runs containers: it needs root");
    let server = apiserver::testing::TestServer::start().await?;
    let dir = tempfile::Builder::new()
        .prefix("ferrokube-pod-startup-")
        .tempdir()?;
    let data_dir: PathBuf = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("images"))?;
    kubelet::busybox_image::write_busybox_image(
        Path::new("/bin/busybox"),
        "docker.io/library/busybox:latest",
        &data_dir.join("images/busybox.tar"),
    )?;
    let mut config =
        kubelet::KubeletConfig::new(server.kubeconfig.clone(), NODE.into(), data_dir.clone());
    config.pod_cidr = Some("10.253.0.0/24".into());
    config.bridge = BRIDGE.into();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let kubelet = tokio::spawn(kubelet::run(config, async {
        let _ = stopped.await;
    }));
    let client = client::connect(Some(&server.kubeconfig)).await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    println!(
        "pod-startup benchmark: in-process API server and kubelet, private containerd, CNI bridge\n"
    );

    let result = async {
        // Warm-up: the node registered, containerd and CNI have run once.
        let warm = vec!["warm-up".to_string()];
        start_pods(&pods, &warm).await?;
        delete_pods(&pods, &warm).await?;
        let mut singles = Vec::new();
        for i in 0..args.singles.max(1) {
            let name = vec![format!("single-{i}")];
            tokio::time::sleep(SETTLE).await;
            singles.extend(start_pods(&pods, &name).await?);
            delete_pods(&pods, &name).await?;
        }
        let mut host_net = Vec::new();
        for i in 0..args.singles.max(1) {
            let name = vec![format!("host-{i}")];
            tokio::time::sleep(SETTLE).await;
            host_net.extend(start_pods(&pods, &name).await?);
            delete_pods(&pods, &name).await?;
        }
        let names: Vec<String> = (0..args.burst.max(1))
            .map(|i| format!("burst-{i}"))
            .collect();
        let burst = start_pods(&pods, &names).await?;
        delete_pods(&pods, &names).await?;
        let raw = raw_starts(&data_dir, args.singles.max(1), args.burst.max(1)).await?;
        Ok::<_, anyhow::Error>((singles, host_net, burst, raw))
    }
    .await;
    let _ = stop.send(());
    let _ = kubelet.await;
    kubelet::testing::remove_bridge(BRIDGE);
    let (singles, host_net, burst, (raw, raw_burst)) = result?;

    let n_single = singles.len();
    let n_burst = burst.len();
    let n_raw = raw.len();
    let (s50, s99) = quantiles(singles);
    let (b50, b99) = quantiles(burst);
    let (h50, h99) = quantiles(host_net);
    let (r50, r99) = quantiles(raw);
    let (rb50, rb99) = quantiles(raw_burst);
    let factor = s50.as_secs_f64() / r50.as_secs_f64().max(1e-9);
    let rows = [
        Row::info("kubelet", &format!("1 pod (x{n_single}), p50"), millis(s50)),
        Row::aim(
            "kubelet",
            &format!("1 pod (x{n_single}), p99"),
            millis(s99),
            format!("<= {}", millis(P99_AIM)),
            s99 <= P99_AIM,
        ),
        Row::info(
            "kubelet",
            &format!("1 hostNetwork pod (x{n_single}), p50 / p99"),
            format!("{} / {}", millis(h50), millis(h99)),
        ),
        Row::info(
            "kubelet",
            &format!("{n_burst} pods at once, p50"),
            millis(b50),
        ),
        Row::aim(
            "kubelet",
            &format!("{n_burst} pods at once, p99"),
            millis(b99),
            format!("<= {}", millis(P99_AIM)),
            b99 <= P99_AIM,
        ),
        Row::info(
            "raw",
            &format!("container start (x{n_raw}), p50"),
            millis(r50),
        ),
        Row::info("raw", "container start, p99", millis(r99)),
        Row::info(
            "raw",
            &format!("{n_burst} container starts at once, p50 / p99"),
            format!("{} / {}", millis(rb50), millis(rb99)),
        ),
        Row::aim(
            "kubelet",
            "1 pod p50 / raw p50",
            format!("{factor:.2}x"),
            format!("<= {RAW_FACTOR_AIM}x"),
            factor <= RAW_FACTOR_AIM,
        ),
    ];
    print!("{}", table(&rows));
    Ok(())
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
