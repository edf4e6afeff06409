//! The scheduler benchmark: pods bound per second through a real
//! in-process API server onto hollow nodes, beside the limit — the
//! scheduling algorithm alone (filter, score, assume) over the same nodes
//! with no API calls.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use scheduler::cache::Cache;
use scheduler::framework::config::KubeSchedulerConfiguration;
use scheduler::framework::runtime::Explanation;
use scheduler::hollow::{self, HollowSpec};
use scheduler::scheduler::Scheduler;
use serde_json::json;

use crate::report::{Row, table};

/// kube-scheduler's usual throughput on a small cluster, as a floor.
const BOUND_AIM: f64 = 100.0;

#[derive(clap::Args)]
pub struct Args {
    /// Hollow nodes to schedule onto.
    #[arg(long, default_value_t = 500)]
    nodes: usize,
    /// Pods to schedule.
    #[arg(long, default_value_t = 1000)]
    pods: usize,
    /// Concurrent pod creations.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{i}"), "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    }))
    .unwrap_or_default()
}

/// Decisions per second of the algorithm alone.
fn algorithm_only(nodes: usize, pods: usize) -> anyhow::Result<f64> {
    let fw = KubeSchedulerConfiguration::default().build()?.remove(0);
    let mut cache = Cache::default();
    for i in 0..nodes {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": format!("hollow-{i}")},
            "status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}}}))?;
        cache.add_or_update_node(Arc::new(n));
    }
    let mut rng = rand::rng();
    let mut start = 0;
    let began = Instant::now();
    for i in 0..pods {
        let p = pod(i);
        let snapshot = cache.snapshot();
        let mut ex = Explanation::default();
        match fw.schedule(&p, &snapshot, &mut start, &mut rng, &mut ex) {
            Ok(res) => cache.assume(&p, &res.node),
            Err(e) => anyhow::bail!("algorithm-only run could not place pod {i}: {e:?}"),
        }
    }
    Ok(pods as f64 / began.elapsed().as_secs_f64())
}

/// Pods bound per second end to end, and the time to register the nodes.
async fn end_to_end(args: &Args) -> anyhow::Result<(f64, Duration)> {
    let server = apiserver::testing::TestServer::start().await?;
    let client = client::connect(Some(&server.kubeconfig)).await?;
    let spec = HollowSpec {
        count: args.nodes,
        ..HollowSpec::default()
    };
    let reg = Instant::now();
    hollow::register(&client, &spec).await?;
    let registration = reg.elapsed();
    let frameworks = KubeSchedulerConfiguration::default().build()?;
    let sched = Scheduler::new(client.clone(), frameworks);
    let sched_task = tokio::spawn(sched.run(None, std::future::pending()));

    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut watch = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let total = args.pods;
    let counter = tokio::spawn(async move {
        let mut bound = HashSet::new();
        while let Some(ev) = watch.next().await {
            let pods = match ev {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => vec![p],
                _ => continue,
            };
            for p in pods {
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                    bound.insert(p.metadata.name.clone().unwrap_or_default());
                }
            }
            if bound.len() >= total {
                return Instant::now();
            }
        }
        Instant::now()
    });
    let began = Instant::now();
    futures::stream::iter(0..total)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &pod(i)).await }
        })
        .buffer_unordered(args.concurrency.max(1))
        .for_each(|r| async move {
            if let Err(e) = r {
                eprintln!("pod create failed: {e}");
            }
        })
        .await;
    let done = tokio::time::timeout(Duration::from_secs(600), counter).await??;
    sched_task.abort();
    Ok((
        total as f64 / done.duration_since(began).as_secs_f64(),
        registration,
    ))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "scheduler benchmark: {} hollow nodes, {} pods (embedded store, in-process API server)\n",
        args.nodes, args.pods
    );
    let limit = tokio::task::spawn_blocking({
        let (n, p) = (args.nodes, args.pods);
        move || algorithm_only(n, p)
    })
    .await??;
    let (bound, registration) = end_to_end(&args).await?;
    let rows = vec![
        Row::info(
            "in-process",
            "hollow nodes registered in",
            format!("{:.2} s", registration.as_secs_f64()),
        ),
        Row::info(
            "algorithm only",
            "scheduling decisions/s (the limit)",
            format!("{limit:.0}"),
        ),
        Row::aim(
            "in-process",
            "pods created and bound/s",
            format!("{bound:.0}"),
            format!(">= {BOUND_AIM:.0}"),
            bound >= BOUND_AIM,
        ),
        Row::info(
            "in-process",
            "share of the limit",
            format!("{:.0}%", 100.0 * bound / limit),
        ),
    ];
    println!("{}", table(&rows));
    Ok(())
}
