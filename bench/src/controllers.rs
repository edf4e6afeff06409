//! The controllers benchmark: a Deployment of 1,000 replicas through a real
//! in-process API server, with the controller-manager, the scheduler and
//! hollow nodes (which mark bound pods Running and Ready) in the same
//! process, from the Deployment's creation to 1,000 available replicas.
//!
//! The limit the ReplicaSet controller is judged against, the API server's
//! own pod create rate, is measured in the same run on a fresh server of
//! the same kind, creating the same pods from concurrent clients.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
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

/// Pod creates per second straight through the API, `clients` at a time.
async fn api_rate(args: &Args) -> anyhow::Result<f64> {
    let server = apiserver::testing::TestServer::start().await?;
    let client = client::connect(Some(&server.kubeconfig)).await?;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut pod: Pod = serde_json::from_value(template())?;
    pod.metadata.generate_name = Some("bench-".into());
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
    if failures > 0 {
        anyhow::bail!("{failures} pod creates failed");
    }
    Ok(args.replicas as f64 / began.elapsed().as_secs_f64())
}

struct Run {
    /// Deployment created to every replica available.
    total: Duration,
    /// First to last pod creation seen on a watch.
    creating: Duration,
    pods: usize,
}

async fn deployment_run(args: &Args) -> anyhow::Result<Run> {
    let server = apiserver::testing::TestServer::start().await?;
    let client = client::connect(Some(&server.kubeconfig)).await?;
    let spec = HollowSpec {
        count: args.nodes,
        ..HollowSpec::default()
    };
    let hollow_task = tokio::spawn(hollow::run(
        client.clone(),
        spec,
        std::future::pending::<()>(),
    ));
    let frameworks = KubeSchedulerConfiguration::default().build()?;
    let sched_task =
        tokio::spawn(Scheduler::new(client.clone(), frameworks).run(None, std::future::pending()));
    let cm_task = tokio::spawn(controller_manager::run(
        client.clone(),
        std::future::pending(),
    ));
    // Let the nodes register and every component list and watch before
    // the clock starts.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    while nodes.list(&Default::default()).await?.items.len() < args.nodes {
        anyhow::ensure!(Instant::now() < deadline, "hollow nodes did not register");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let done = tokio::time::timeout(Duration::from_secs(600), available).await??;
    let last = tokio::time::timeout(Duration::from_secs(10), creations).await??;
    let first = first_rx.await?;
    for t in [
        hollow_task.abort_handle(),
        sched_task.abort_handle(),
        cm_task.abort_handle(),
    ] {
        t.abort();
    }
    Ok(Run {
        total: done.duration_since(began),
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
    let limit = api_rate(&args).await?;
    let run = deployment_run(&args).await?;
    // n pods take n-1 intervals between the first and the last creation.
    let rate = (run.pods.saturating_sub(1)) as f64 / run.creating.as_secs_f64().max(1e-9);
    let rows = vec![
        Row::info(
            "in-process",
            &format!("API pod creates/s, {} clients (the limit)", args.clients),
            format!("{limit:.0}"),
        ),
        Row::aim(
            "in-process",
            "ReplicaSet controller pod creates/s",
            format!("{rate:.0}"),
            format!(">= {:.0} (80% of the limit)", SHARE_AIM * limit),
            rate >= SHARE_AIM * limit,
        ),
        Row::info(
            "in-process",
            &format!("Deployment created to {} available", run.pods),
            format!("{:.2} s", run.total.as_secs_f64()),
        ),
    ];
    println!("{}", table(&rows));
    Ok(())
}
