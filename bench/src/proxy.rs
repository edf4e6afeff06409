//! The proxy benchmark: 1,000 Services × 10 endpoints programmed into a
//! real `iptables-restore`, inside a network namespace this benchmark
//! creates (the host's tables are never touched). Reports the time to
//! program everything from scratch and, for single endpoint changes, the
//! time from the new EndpointSlice to the kernel holding it (rules
//! computed, payload applied), p50/p99, with the rules rewritten.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::iptables::Iptables;
use proxy::proxier::Proxier;
use proxy::rules::RulesConfig;
use rand::Rng;
use serde_json::json;

use crate::report::{Row, millis, table};

const CHANGE_AIM: Duration = Duration::from_millis(10);

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1000)]
    services: usize,
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Single endpoint changes to time.
    #[arg(long, default_value_t = 200)]
    changes: usize,
}

/// The namespace, deleted however the benchmark ends.
struct Netns(String);

impl Netns {
    fn create() -> anyhow::Result<Netns> {
        let name = format!("fkbench-{}", std::process::id());
        let st = Command::new("ip").args(["netns", "add", &name]).status()?;
        if !st.success() {
            bail!("ip netns add {name} failed (root is needed)");
        }
        Ok(Netns(name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn service(i: usize) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
        "spec": {"type": "NodePort", "clusterIP": format!("10.43.{}.{}", i / 250, i % 250 + 1),
                 "selector": {"app": format!("a{i}")},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30000 + i}]},
    }))
    .expect("service json")
}

fn slice(i: usize, endpoints: usize, generation: u32) -> EndpointSlice {
    let eps: Vec<serde_json::Value> = (0..endpoints)
        .map(|e| {
            // `generation` moves the last endpoint to a new address.
            let last = if e + 1 == endpoints { generation as usize } else { 0 };
            let n = i * endpoints + e + last * 7919;
            json!({"addresses": [format!("10.{}.{}.{}", 44 + n / 65536 % 100, n / 256 % 256, n % 256)],
                   "nodeName": "bench", "conditions": {"ready": true}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{i}-abcde"), "namespace": "bench",
                     "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .expect("slice json")
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let ns = Netns::create()?;
    let iptables = Iptables {
        wrapper: vec!["nsenter".into(), format!("--net=/run/netns/{}", ns.0)],
    };
    let cfg = RulesConfig {
        prefix: "FKB".into(),
        cluster_cidr: "10.42.0.0/16".into(),
        service_cidr: "10.43.0.0/16".into(),
        masq_mark: 0x4000,
    };
    println!(
        "proxy benchmark: {} Services × {} endpoints, iptables-restore in netns {}\n",
        args.services, args.endpoints, ns.0
    );
    let services: Vec<Service> = (0..args.services).map(service).collect();
    let mut gens = vec![0u32; args.services];

    let started = Instant::now();
    let mut all = BTreeMap::new();
    for (i, svc) in services.iter().enumerate() {
        let s = slice(i, args.endpoints, 0);
        all.insert(
            format!("bench/svc-{i}"),
            proxy::service_rules(&cfg, "bench", svc, &[&s]),
        );
    }
    let mut proxier = Proxier::new(cfg.clone());
    let payload = proxier.full_sync(all, &BTreeSet::new(), &BTreeSet::new());
    iptables
        .restore(&payload.text)
        .await
        .context("full restore")?;
    iptables.ensure_hooks(&cfg).await.context("hooks")?;
    let full = started.elapsed();
    let full_rules = payload.rules;
    let saved = iptables.save("nat").await?;
    let in_kernel = saved.lines().filter(|l| l.starts_with("-A FKB-")).count();
    if in_kernel != full_rules {
        bail!("the kernel holds {in_kernel} of our nat rules, {full_rules} were written");
    }

    let mut rng = rand::rng();
    let mut times = Vec::with_capacity(args.changes);
    let mut rules_written = Vec::with_capacity(args.changes);
    for _ in 0..args.changes {
        let i = rng.random_range(0..args.services);
        gens[i] += 1;
        let s = slice(i, args.endpoints, gens[i]);
        let t = Instant::now();
        let r = proxy::service_rules(&cfg, "bench", &services[i], &[&s]);
        let p = proxier.update(vec![(format!("bench/svc-{i}"), Some(r))]);
        iptables
            .restore(&p.text)
            .await
            .context("incremental restore")?;
        times.push(t.elapsed());
        rules_written.push(p.rules);
    }
    times.sort();
    rules_written.sort();
    let p50 = pct(&times, 0.5);
    let p99 = pct(&times, 0.99);
    // The kernel still holds exactly what we think.
    let saved = iptables.save("nat").await?;
    let ours: Vec<&str> = saved.lines().filter(|l| l.starts_with("-A FKB-")).collect();
    let rows = vec![
        Row::info(
            "iptables",
            &format!(
                "program {} Services from scratch ({} rules)",
                args.services, full_rules
            ),
            millis(full),
        ),
        Row::aim(
            "iptables",
            "one endpoint change, p50",
            millis(p50),
            format!("< {}", millis(CHANGE_AIM)),
            p50 < CHANGE_AIM,
        ),
        Row::aim(
            "iptables",
            "one endpoint change, p99",
            millis(p99),
            format!("< {}", millis(CHANGE_AIM)),
            p99 < CHANGE_AIM,
        ),
        Row::info(
            "iptables",
            "rules rewritten per change (median / max)",
            format!(
                "{} / {} of {}",
                rules_written[rules_written.len() / 2],
                rules_written.last().copied().unwrap_or(0),
                ours.len()
            ),
        ),
    ];
    println!("{}", table(&rows));
    Ok(())
}
