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

use std::collections::HashSet;
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

use crate::report::{Row, table};

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
    let tasks = start_nodes_and_scheduler(&client, args).await?;
    // As in the full run: every component lists and watches first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let pod = replicaset::pod_from_template(&baseline_set()?);
    let rate = concurrent_creates(&api, &pod, args).await;
    for t in tasks {
        t.abort();
    }
    rate
}

/// Hollow nodes and the scheduler, once the nodes have registered.
async fn start_nodes_and_scheduler(
    client: &kube::Client,
    args: &Args,
) -> anyhow::Result<Vec<tokio::task::AbortHandle>> {
    let spec = HollowSpec {
        count: args.nodes,
        ..HollowSpec::default()
    };
    let frameworks = KubeSchedulerConfiguration::default().build()?;
    let tasks = vec![
        tokio::spawn(hollow::run(
            client.clone(),
            spec,
            std::future::pending::<()>(),
        ))
        .abort_handle(),
        tokio::spawn(Scheduler::new(client.clone(), frameworks).run(None, std::future::pending()))
            .abort_handle(),
    ];
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    while nodes.list(&Default::default()).await?.items.len() < args.nodes {
        anyhow::ensure!(Instant::now() < deadline, "hollow nodes did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(tasks)
}

struct Run {
    /// Deployment created to every replica available (full runs only).
    total: Option<Duration>,
    /// First to last pod creation seen on a watch.
    creating: Duration,
    pods: usize,
}

impl Run {
    /// n pods take n-1 intervals between the first and the last creation.
    fn rate(&self) -> f64 {
        self.pods.saturating_sub(1) as f64 / self.creating.as_secs_f64().max(1e-9)
    }
}

/// A Deployment of `replicas` on a fresh server with the controllers; with
/// `full`, also the scheduler and hollow nodes, until every replica is
/// available.
async fn deployment_run(args: &Args, full: bool) -> anyhow::Result<Run> {
    let server = apiserver::testing::TestServer::start().await?;
    let client = client::connect(Some(&server.kubeconfig)).await?;
    let mut tasks = Vec::new();
    if full {
        tasks = start_nodes_and_scheduler(&client, args).await?;
    }
    tasks.push(
        tokio::spawn(controller_manager::run(
            client.clone(),
            std::future::pending(),
        ))
        .abort_handle(),
    );
    // Let every component list and watch before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let want = args.replicas;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Instant>();
    let creations = tokio::spawn(async move {
        let mut seen = HashSet::new();
        let mut first = Some(first_tx);
        let mut stream = watcher::watcher(pods, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev else {
                continue;
            };
            if seen.insert(p.metadata.name.clone().unwrap_or_default()) {
                if let Some(tx) = first.take() {
                    let _ = tx.send(Instant::now());
                }
                if seen.len() >= want {
                    return Instant::now();
                }
            }
        }
        Instant::now()
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
    let last = tokio::time::timeout(Duration::from_secs(600), creations).await??;
    let first = first_rx.await?;
    for t in tasks {
        t.abort();
    }
    Ok(Run {
        total,
        creating: last.duration_since(first),
        pods: want,
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "controllers benchmark: a Deployment of {} replicas on {} hollow nodes \
         (embedded store, in-process API server, controllers, scheduler)\n",
        args.replicas, args.nodes
    );
    let (limit, batched) = api_rates(&args).await?;
    let loaded = loaded_api_rate(&args).await?;
    let alone = deployment_run(&args, false).await?;
    let run = deployment_run(&args, true).await?;
    let rate = run.rate();
    let mut rows = vec![
        Row::info(
            "in-process",
            &format!("API pod creates/s, {} clients (the limit)", args.clients),
            format!("{limit:.0}"),
        ),
        Row::info(
            "in-process",
            &format!("API pod creates/s in slow start batches (1, 2, 4 … up to {BURST})"),
            format!("{batched:.0}"),
        ),
        Row::info(
            "in-process",
            &format!(
                "API pod creates/s, {} clients, while the scheduler and hollow nodes bind and run each pod",
                args.clients
            ),
            format!("{loaded:.0}"),
        ),
        Row::info(
            "in-process",
            "ReplicaSet controller pod creates/s, controllers alone (no scheduler, no nodes)",
            format!("{:.0}", alone.rate()),
        ),
        Row::aim(
            "in-process",
            "ReplicaSet controller pod creates/s (full run)",
            format!("{rate:.0}"),
            format!(">= {:.0} (80% of the limit)", SHARE_AIM * limit),
            rate >= SHARE_AIM * limit,
        ),
    ];
    if let Some(total) = run.total {
        rows.push(Row::info(
            "in-process",
            &format!("Deployment created to {} available", run.pods),
            format!("{:.2} s", total.as_secs_f64()),
        ));
    }
    println!("{}", table(&rows));
    Ok(())
}
