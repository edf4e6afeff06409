//! The scheduler benchmark (`scheduler_perf`'s SchedulingBasic): hollow
//! nodes and pods created up front through a real in-process API server,
//! then the scheduler starts and binds them all. Prints pods bound per
//! second (whole run, and p50/p99 of per-second samples) and creation-to-
//! binding latency per storage backend, beside the upper bound: the
//! scheduling algorithm alone (filter, score, assume) over the same cached
//! cluster with no API calls.
//!
//! The API server runs as scheduler_perf runs kube-apiserver, with
//! `--disable-admission-plugins=ServiceAccount,TaintNodesByCondition,Priority`
//! (ferrokube has no TaintNodesByCondition): no service account controller
//! runs here, and without it Kubernetes' pods carry no token volume.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use scheduler::cache::Cache;
use scheduler::framework::config::KubeSchedulerConfiguration;
use scheduler::framework::parallel::{DEFAULT_MIN_NODES, Parallelizer};
use scheduler::framework::runtime::Explanation;
use scheduler::hollow::{self, HollowSpec};
use scheduler::scheduler::Scheduler;
use serde_json::json;
use tokio::net::TcpListener;

use crate::Backend;
use crate::api::fresh_storage;
use crate::report::{Row, millis, quantile, table};

/// The admission plugins scheduler_perf turns off (those ferrokube has).
const DISABLED_ADMISSION: [&str; 2] = ["ServiceAccount", "Priority"];

/// Pods bound per second with the embedded store on a 2-core machine.
const BOUND_AIM: f64 = 2_000.0;

#[derive(clap::Args)]
pub struct Args {
    /// Hollow nodes to schedule onto.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods to schedule.
    #[arg(long, default_value_t = 10000)]
    pods: usize,
    /// Concurrent pod creations while setting up.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Which backends to measure.
    #[arg(long, value_enum, default_value_t = Backend::Both)]
    backend: Backend,
    /// Threads for Filter and Score (the config's `parallelism`); the
    /// default is the number of cores.
    #[arg(long)]
    parallelism: Option<usize>,
    /// Evaluate cycles over at least this many nodes in parallel (to find
    /// the crossover); the default is the scheduler's.
    #[arg(long)]
    parallel_min_nodes: Option<usize>,
    /// Measure the algorithm alone, not the end-to-end runs.
    #[arg(long)]
    algorithm_only: bool,
    /// The profile's `percentageOfNodesToScore` (0, the default, is adaptive).
    #[arg(long, default_value_t = 0)]
    percentage_of_nodes_to_score: u32,
}

/// The profile the benchmark schedules with, honouring the parallelism flags.
fn frameworks(args: &Args) -> anyhow::Result<Vec<scheduler::framework::runtime::Framework>> {
    let mut fws = KubeSchedulerConfiguration::default().build()?;
    for fw in &mut fws {
        fw.percentage_of_nodes_to_score = args.percentage_of_nodes_to_score;
    }
    if args.parallelism.is_some() || args.parallel_min_nodes.is_some() {
        let threads = args
            .parallelism
            .unwrap_or_else(|| fws[0].parallelizer.parallelism());
        let min = args.parallel_min_nodes.unwrap_or(DEFAULT_MIN_NODES);
        let p = Arc::new(Parallelizer::new(threads, min));
        for fw in &mut fws {
            fw.parallelizer = p.clone();
        }
    }
    Ok(fws)
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{i}"), "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    }))
    .unwrap_or_default()
}

/// CPU time (user + system) of the calling thread, or of the whole
/// process with `whole_process`, from `/proc` (clock ticks of 10 ms).
/// On a shared machine wall-clock rates measure the neighbours too; CPU
/// time per decision is what the code costs.
fn cpu_time(whole_process: bool) -> Duration {
    let path = if whole_process {
        "/proc/self/stat"
    } else {
        "/proc/thread-self/stat"
    };
    let Ok(stat) = std::fs::read_to_string(path) else {
        return Duration::ZERO;
    };
    // Fields after the command name in parentheses; utime and stime are
    // the 14th and 15th fields overall.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Decisions per second of the algorithm alone, and its CPU time per decision.
fn algorithm_only(
    fw: &scheduler::framework::runtime::Framework,
    nodes: usize,
    pods: usize,
) -> anyhow::Result<(f64, Duration)> {
    let spec = HollowSpec::default();
    let mut cache = Cache::default();
    for i in 0..nodes {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": format!("hollow-{i}")},
            "status": {"allocatable": {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.pods}}}))?;
        cache.add_or_update_node(Arc::new(n));
    }
    let pods: Vec<Pod> = (0..pods).map(pod).collect();
    let mut rng = rand::rng();
    let mut start = 0;
    let began = Instant::now();
    // The whole process: Filter and Score may run on helper threads too,
    // and nothing else runs in the process during this measurement.
    let cpu_began = cpu_time(true);
    for (i, p) in pods.iter().enumerate() {
        let snapshot = cache.snapshot();
        let mut ex = Explanation::default();
        let res = fw.schedule(p, &snapshot, &mut start, &mut rng, &mut ex);
        drop(snapshot);
        match res {
            Ok(res) => cache.assume(p, &res.node),
            Err(e) => anyhow::bail!("algorithm-only run could not place pod {i}: {e:?}"),
        }
    }
    let cpu = cpu_time(true).saturating_sub(cpu_began);
    Ok((
        pods.len() as f64 / began.elapsed().as_secs_f64(),
        cpu / pods.len().max(1) as u32,
    ))
}

/// What one end-to-end run measured.
struct EndToEnd {
    registration: Duration,
    creation: Duration,
    bound_per_sec: f64,
    /// Pods bound in each whole second of the run.
    per_second: Vec<f64>,
    latencies: Vec<Duration>,
    /// Process CPU time (API server, scheduler, watcher) per bound pod.
    cpu_per_pod: Duration,
}

async fn end_to_end(args: &Args, backend: Backend) -> anyhow::Result<EndToEnd> {
    let (storage, _backing) = fresh_storage(backend).await?;
    let options = apiserver::server::ApiOptions {
        admission: apiserver::admission::Admission::disabling(&DISABLED_ADMISSION)?,
        ..apiserver::server::ApiOptions::default()
    };
    let router = apiserver::server::build(storage, &options).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, apiserver::server::kubeconfig(&url))?;
    let client = client::connect(Some(&kubeconfig)).await?;

    let spec = HollowSpec {
        count: args.nodes,
        ..HollowSpec::default()
    };
    let reg = Instant::now();
    hollow::register(&client, &spec).await?;
    let registration = reg.elapsed();

    // Every pod exists before the scheduler starts (SchedulingBasic).
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let made = Instant::now();
    let created: HashMap<String, Instant> = futures::stream::iter(0..args.pods)
        .map(|i| {
            let api = api.clone();
            async move {
                let p = api.create(&PostParams::default(), &pod(i)).await?;
                Ok::<_, kube::Error>((p.metadata.name.unwrap_or_default(), Instant::now()))
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .filter_map(|r| async move { r.map_err(|e| eprintln!("pod create failed: {e}")).ok() })
        .collect()
        .await;
    let creation = made.elapsed();
    let total = created.len();

    let mut watch = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    // The watch's initial list shows every pod unbound; start the clock
    // once it is in.
    while let Some(ev) = watch.next().await {
        if matches!(ev, Ok(watcher::Event::InitDone)) {
            break;
        }
    }
    let sched = Scheduler::new(client.clone(), frameworks(args)?);
    let began = Instant::now();
    let cpu_began = cpu_time(true);
    let sched_task = tokio::spawn(sched.run(None, std::future::pending()));
    let mut bound: HashMap<String, Instant> = HashMap::with_capacity(total);
    let deadline = tokio::time::sleep(Duration::from_secs(900));
    tokio::pin!(deadline);
    while bound.len() < total {
        let ev = tokio::select! {
            ev = watch.next() => ev,
            _ = &mut deadline => break,
        };
        let Some(ev) = ev else { break };
        if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev
            && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
        {
            let name = p.metadata.name.unwrap_or_default();
            bound.entry(name).or_insert_with(Instant::now);
        }
    }
    let cpu_per_pod = cpu_time(true).saturating_sub(cpu_began) / total.max(1) as u32;
    sched_task.abort();
    server.abort();
    if bound.len() < total {
        anyhow::bail!("only {} of {total} pods were bound in 900 s", bound.len());
    }
    let last = bound.values().max().copied().unwrap_or(began);
    let run = last.duration_since(began);
    let mut per_second = vec![0f64; run.as_secs() as usize];
    let mut latencies = Vec::with_capacity(total);
    for (name, at) in &bound {
        let second = at.duration_since(began).as_secs() as usize;
        // The last, partial second is not a whole sample.
        if let Some(s) = per_second.get_mut(second) {
            *s += 1.0;
        }
        if let Some(c) = created.get(name) {
            latencies.push(at.duration_since(*c));
        }
    }
    latencies.sort();
    Ok(EndToEnd {
        registration,
        creation,
        bound_per_sec: total as f64 / run.as_secs_f64(),
        per_second,
        latencies,
        cpu_per_pod,
    })
}

fn percentile(samples: &[f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * q).round() as usize]
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "scheduler benchmark: {} hollow nodes, {} pods created up front, in-process API server \
         with --disable-admission-plugins={} (as scheduler_perf)\n",
        args.nodes,
        args.pods,
        DISABLED_ADMISSION.join(",")
    );
    let fw = frameworks(&args)?.remove(0);
    let threads = fw.parallelizer.parallelism();
    let (limit, cpu_per_decision) = tokio::task::spawn_blocking({
        let (n, p) = (args.nodes, args.pods);
        move || algorithm_only(&fw, n, p)
    })
    .await??;
    let mut rows = vec![
        Row::info(
            "-",
            &format!(
                "algorithm only: scheduling decisions/s, {threads} thread(s) (the upper bound)"
            ),
            format!("{limit:.0}"),
        ),
        Row::info(
            "-",
            "algorithm only: process CPU per decision (decisions/s on one idle core)",
            format!(
                "{} µs ({:.0}/s)",
                cpu_per_decision.as_micros(),
                1.0 / cpu_per_decision.as_secs_f64().max(1e-9)
            ),
        ),
    ];
    println!("{}", table(&rows));
    if args.algorithm_only {
        return Ok(());
    }
    let backends: &[Backend] = match args.backend {
        Backend::Both => &[Backend::Embedded, Backend::Etcd],
        Backend::Embedded => &[Backend::Embedded],
        Backend::Etcd => &[Backend::Etcd],
    };
    for backend in backends {
        let name = match backend {
            Backend::Etcd => "etcd",
            _ => "embedded",
        };
        let e = end_to_end(&args, *backend).await?;
        rows.push(Row::info(
            name,
            "hollow nodes registered in",
            format!("{:.2} s", e.registration.as_secs_f64()),
        ));
        rows.push(Row::info(
            name,
            "pods created (before the scheduler starts) in",
            format!("{:.2} s", e.creation.as_secs_f64()),
        ));
        let aimed = *backend == Backend::Embedded;
        rows.push(if aimed {
            Row::aim(
                name,
                "pods bound/s, whole run",
                format!("{:.0}", e.bound_per_sec),
                format!(">= {BOUND_AIM:.0}"),
                e.bound_per_sec >= BOUND_AIM,
            )
        } else {
            Row::info(
                name,
                "pods bound/s, whole run",
                format!("{:.0}", e.bound_per_sec),
            )
        });
        rows.push(Row::info(
            name,
            "pods bound/s, per-second samples p50 / p99",
            format!(
                "{:.0} / {:.0}",
                percentile(&e.per_second, 0.5),
                percentile(&e.per_second, 0.99)
            ),
        ));
        rows.push(Row::info(
            name,
            "creation-to-binding latency p50 / p99",
            format!(
                "{} / {}",
                millis(quantile(&e.latencies, 0.5)),
                millis(quantile(&e.latencies, 0.99))
            ),
        ));
        rows.push(Row::info(
            name,
            "process CPU per bound pod (API server + scheduler + watcher)",
            format!(
                "{} µs (~{:.0} pods/s on two idle cores)",
                e.cpu_per_pod.as_micros(),
                2.0 / e.cpu_per_pod.as_secs_f64().max(1e-9)
            ),
        ));
        rows.push(Row::info(
            name,
            "share of the algorithm-only bound",
            format!("{:.0}%", 100.0 * e.bound_per_sec / limit),
        ));
    }
    println!("{}", table(&rows));
    Ok(())
}
