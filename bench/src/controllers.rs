//! The controllers benchmark: a Deployment of 1,000 replicas through a real
//! in-process API server, with the controller-manager, the scheduler and
//! hollow nodes (which mark bound pods Running and Ready) in the same
//! process, from the Deployment's creation to 1,000 available replicas.
//!
//! The limit the ReplicaSet controller is judged against, the API server's
//! own pod create rate, is measured in the same run on a fresh server of
//! the same kind, through the same client, creating the very pods the
//! controller creates (its own pod-from-template function). Beside it, to
//! show where the rest goes: the same creations in the controller's slow
//! start batches with nothing else running, and the controller alone (no
//! scheduler, no nodes) before the full run.

use std::time::{Duration, Instant};

use controller_manager::replicaset::{self, BURST, slow_start};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use scheduler::framework::config::KubeSchedulerConfiguration;
use scheduler::hollow::{self, HollowSpec};
use scheduler::scheduler::Scheduler;
use serde_json::json;

use crate::report::{Row, median, table};

/// The ReplicaSet controller should create pods at no less than this share
/// of the API server's create rate.
const SHARE_AIM: f64 = 0.8;

#[derive(clap::Args)]
pub struct Args {
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Hollow nodes the pods are scheduled onto.
    #[arg(long, default_value_t = 50)]
    nodes: usize,
    /// Concurrent clients when measuring the API's own create rate.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Rounds of every measurement; medians are reported (one round's
    /// 1,000 creations last a fraction of a second, so single figures swing
    /// with the machine).
    #[arg(long, default_value_t = 9)]
    rounds: usize,
}

/// Components running in this process against one bench server, stopped
/// through their shutdown futures (aborting the outer task would leave
/// their inner tasks retrying against a server that is gone, stealing CPU
/// from the next measurement).
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    fn new() -> Running {
        Running {
            stop: tokio::sync::watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(task));
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                eprintln!("a bench component did not stop within 10 s; aborted");
                abort.abort();
            }
        }
    }
}

fn template() -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    })
}

/// A ReplicaSet as the Deployment controller makes it for the benchmark's
/// Deployment (the same template plus the pod-template-hash label); the
/// API baselines create the pods the controller would create for it.
fn baseline_set() -> anyhow::Result<ReplicaSet> {
    let mut t = template();
    t["metadata"]["labels"]["pod-template-hash"] = json!("5d8f7c9b6c");
    Ok(serde_json::from_value(json!({
        "metadata": {"name": "bench-5d8f7c9b6c", "namespace": "default",
            "uid": "00000000-0000-0000-0000-00000000b001"},
        "spec": {"replicas": 1000, "selector": {"matchLabels": {"app": "bench"}}, "template": t},
    }))?)
}

/// The API's own create rates on a fresh server: `clients` concurrent
/// creations, then the same number in the controller's slow start batches
/// of at most `BURST`.
async fn api_rates(args: &Args) -> anyhow::Result<(f64, f64)> {
    let server = apiserver::testing::TestServer::start().await?;
    let client = client::connect(Some(&server.kubeconfig)).await?;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let pod = replicaset::pod_from_template(&baseline_set()?);
    let concurrent = concurrent_creates(&api, &pod, args).await?;

    let pp = PostParams::default();
    let began = Instant::now();
    let mut left = args.replicas;
    while left > 0 {
        let burst = left.min(BURST);
        let out = slow_start::slow_start_batch(burst, 1, || api.create(&pp, &pod)).await;
        anyhow::ensure!(out.skipped == 0, "a pod create failed in slow start");
        left -= burst;
    }
    let batched = args.replicas as f64 / began.elapsed().as_secs_f64();
    Ok((concurrent, batched))
}

/// `args.replicas` creations of `pod` from `args.clients` concurrent
/// clients; creates/s.
async fn concurrent_creates(api: &Api<Pod>, pod: &Pod, args: &Args) -> anyhow::Result<f64> {
    let began = Instant::now();
    let failures = futures::stream::iter(0..args.replicas)
        .map(|_| {
            let (api, pod) = (api.clone(), pod.clone());
            async move { api.create(&PostParams::default(), &pod).await }
        })
        .buffer_unordered(args.clients.max(1))
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    anyhow::ensure!(failures == 0, "{failures} pod creates failed");
    Ok(args.replicas as f64 / began.elapsed().as_secs_f64())
}

/// The API's create rate with the full run's other work per pod going on:
/// the same creations on a fresh server whose scheduler and hollow nodes
/// bind each pod, mark it running and record its events meanwhile.
async fn loaded_api_rate(args: &Args) -> anyhow::Result<f64> {
    let server = apiserver::testing::TestServer::start().await?;
    let client = client::connect(Some(&server.kubeconfig)).await?;
    let mut running = Running::new();
    start_nodes_and_scheduler(&client, args, &mut running).await?;
    // As in the full run: every component lists and watches first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let pod = replicaset::pod_from_template(&baseline_set()?);
    let rate = concurrent_creates(&api, &pod, args).await;
    running.stop().await;
    rate
}

/// Hollow nodes and the scheduler, once the nodes have registered.
async fn start_nodes_and_scheduler(
    client: &kube::Client,
    args: &Args,
    running: &mut Running,
) -> anyhow::Result<()> {
    let spec = HollowSpec {
        count: args.nodes,
        ..HollowSpec::default()
    };
    let frameworks = KubeSchedulerConfiguration::default().build()?;
    let nodes = hollow::run(client.clone(), spec, running.stopped());
    running.spawn(async move {
        if let Err(e) = nodes.await {
            eprintln!("hollow nodes failed: {e}");
        }
    });
    let scheduler = Scheduler::new(client.clone(), frameworks).run(None, running.stopped());
    running.spawn(async move {
        if let Err(e) = scheduler.await {
            eprintln!("scheduler failed: {e}");
        }
    });
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    while nodes.list(&Default::default()).await?.items.len() < args.nodes {
        anyhow::ensure!(Instant::now() < deadline, "hollow nodes did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

struct Run {
    /// Deployment created to every replica available (full runs only).
    total: Option<Duration>,
    /// From the ReplicaSet's appearance to its status counting every pod:
    /// the creations plus one sync and status write either side, watched on
    /// the set alone so that the observer adds no per-pod work (a pod watch
    /// in this process would decode every pod beside the controller's own).
    creating: Duration,
    pods: usize,
}

impl Run {
    fn rate(&self) -> f64 {
        self.pods as f64 / self.creating.as_secs_f64().max(1e-9)
    }
}

/// A Deployment of `replicas` on a fresh server with the controllers; with
/// `full`, also the scheduler and hollow nodes, until every replica is
/// available.
async fn deployment_run(args: &Args, full: bool) -> anyhow::Result<Run> {
    let server = apiserver::testing::TestServer::start().await?;
    let client = client::connect(Some(&server.kubeconfig)).await?;
    let mut running = Running::new();
    if full {
        start_nodes_and_scheduler(&client, args, &mut running).await?;
    }
    running.spawn(controller_manager::run(client.clone(), running.stopped()));
    // Let every component list and watch before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let want = args.replicas;
    let (listed_tx, listed) = tokio::sync::oneshot::channel();
    let creations = tokio::spawn(async move {
        let mut first = None;
        let mut listed_tx = Some(listed_tx);
        let mut stream = watcher::watcher(sets, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let rs = match ev {
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = listed_tx.take() {
                        let _ = tx.send(());
                    }
                    continue;
                }
                Ok(watcher::Event::Apply(rs)) => rs,
                _ => continue,
            };
            let now = Instant::now();
            let began = *first.get_or_insert(now);
            let counted = rs.status.map_or(0, |s| s.replicas) as usize;
            if counted >= want {
                return Ok(now.duration_since(began));
            }
        }
        anyhow::bail!("the ReplicaSet watch ended")
    });
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "bench"},
        "spec": {"replicas": want, "selector": {"matchLabels": {"app": "bench"}},
            "template": template()},
    }))?;
    let mut status = watcher::watcher(
        deployments.clone(),
        watcher::Config::default().fields("metadata.name=bench"),
    )
    .boxed();
    // The set's first event must be its creation, not a late initial list.
    listed.await?;
    let began = Instant::now();
    deployments.create(&PostParams::default(), &d).await?;
    let available = async {
        while let Some(ev) = status.next().await {
            if let Ok(watcher::Event::Apply(d)) = ev {
                let s = d.status.unwrap_or_default();
                if s.available_replicas.unwrap_or(0) as usize >= want {
                    return Ok(Instant::now());
                }
            }
        }
        anyhow::bail!("the deployment watch ended")
    };
    let total = if full {
        let done = tokio::time::timeout(Duration::from_secs(600), available).await??;
        Some(done.duration_since(began))
    } else {
        None
    };
    let creating = tokio::time::timeout(Duration::from_secs(600), creations).await???;
    running.stop().await;
    Ok(Run {
        total,
        creating,
        pods: want,
    })
}

/// One round of every measurement.
struct Round {
    limit: f64,
    batched: f64,
    loaded: f64,
    alone: f64,
    full: f64,
    available: Option<Duration>,
}

async fn round(args: &Args) -> anyhow::Result<Round> {
    let (limit, batched) = api_rates(args).await?;
    let loaded = loaded_api_rate(args).await?;
    let alone = deployment_run(args, false).await?.rate();
    let run = deployment_run(args, true).await?;
    Ok(Round {
        limit,
        batched,
        loaded,
        alone,
        full: run.rate(),
        available: run.total,
    })
}

/// "median (each round's figures)".
fn figures(rounds: &[Round], value: impl Fn(&Round) -> f64, unit: &str) -> (f64, String) {
    let all: Vec<f64> = rounds.iter().map(value).collect();
    let each = all
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    let m = median(all);
    (m, format!("{m:.0}{unit} ({each})"))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "controllers benchmark: a Deployment of {} replicas on {} hollow nodes \
         (embedded store, in-process API server, controllers, scheduler); \
         medians of {} rounds, each round's figures in brackets\n",
        args.replicas,
        args.nodes,
        args.rounds.max(1)
    );
    let mut rounds = Vec::new();
    for _ in 0..args.rounds.max(1) {
        rounds.push(round(&args).await?);
    }
    let share = |f: fn(&Round) -> f64, of: fn(&Round) -> f64| {
        figures(&rounds, move |r| 100.0 * f(r) / of(r).max(1e-9), "%")
    };
    let (_, limit) = figures(&rounds, |r| r.limit, "");
    let (_, batched) = figures(&rounds, |r| r.batched, "");
    let (_, loaded) = figures(&rounds, |r| r.loaded, "");
    let (_, alone) = figures(&rounds, |r| r.alone, "");
    let (_, full) = figures(&rounds, |r| r.full, "");
    let (alone_share, alone_share_text) = share(|r| r.alone, |r| r.limit);
    let (full_share, full_share_text) = share(|r| r.full, |r| r.loaded);
    let (_, full_of_idle) = share(|r| r.full, |r| r.limit);
    let aim = format!(">= {:.0}%", SHARE_AIM * 100.0);
    let mut rows = vec![
        Row::info(
            "in-process",
            &format!(
                "API pod creates/s, {} clients, idle server (the limit)",
                args.clients
            ),
            limit,
        ),
        Row::info(
            "in-process",
            &format!("API pod creates/s in slow start batches (1, 2, 4 … up to {BURST})"),
            batched,
        ),
        Row::info(
            "in-process",
            &format!(
                "API pod creates/s, {} clients, while the scheduler and hollow nodes bind and run each pod",
                args.clients
            ),
            loaded,
        ),
        Row::info(
            "in-process",
            "ReplicaSet controller pod creates/s, controllers alone (no scheduler, no nodes)",
            alone,
        ),
        Row::info(
            "in-process",
            "ReplicaSet controller pod creates/s, full run (scheduler and hollow nodes too)",
            full,
        ),
        Row::aim(
            "in-process",
            "controller ÷ API, controllers alone ÷ idle server",
            alone_share_text,
            aim.clone(),
            alone_share >= SHARE_AIM * 100.0,
        ),
        Row::aim(
            "in-process",
            "controller ÷ API, full run ÷ server under the same scheduler and node load",
            full_share_text,
            aim,
            full_share >= SHARE_AIM * 100.0,
        ),
        Row::info(
            "in-process",
            "full run ÷ idle server (each pod's binding, event and status share the server)",
            full_of_idle,
        ),
    ];
    let available: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r.available.map(|d| d.as_secs_f64()))
        .collect();
    if !available.is_empty() {
        let each = available
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(Row::info(
            "in-process",
            &format!("Deployment created to {} available", args.replicas),
            format!("{:.2} s ({each})", median(available)),
        ));
    }
    println!("{}", table(&rows));
    Ok(())
}
