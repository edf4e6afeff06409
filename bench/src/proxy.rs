//! The proxy benchmark: 1,000 Services × 10 endpoints programmed by the
//! nftables backend as the proxy does it (from scratch through the real
//! `nft -f`, changes over its netlink socket) and, for comparison, fewer
//! Services through the real `iptables-restore` (iptables backend; its full
//! programming of 1,000 takes minutes), each inside a network namespace
//! this benchmark creates (the host's tables are never touched). Reports
//! the time to program everything from scratch and, for single endpoint
//! changes, the time from the new EndpointSlice to the kernel holding it
//! (model built, rules rendered, transaction applied), p50/p99, with what
//! each change rewrote.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::dataplane::{Dataplane, ProxyMode};
use proxy::iptables::Iptables;
use proxy::nft::{Nft, chains_in_listing};
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
    /// Services for the iptables comparison (0 skips it): iptables-restore
    /// needs minutes to program 1,000 from scratch.
    #[arg(long, default_value_t = 200)]
    iptables_services: usize,
}

/// The namespace, deleted however the benchmark ends.
struct Netns(String);

impl Netns {
    fn create(what: &str) -> anyhow::Result<Netns> {
        let name = format!("fkbench-{what}-{}", std::process::id());
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

/// CPU time of this process's waited-for children (cutime + cstime,
/// fields 16 and 17 of `/proc/self/stat`): what `nft`/`iptables-restore`
/// themselves cost, apart from waiting for a CPU on a loaded machine.
fn children_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let after_name = stat[stat.rfind(')')? + 1..].to_string();
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            // after_name starts at field 3: cutime is field 16 → index 13.
            let cutime: u64 = fields.get(13)?.parse().ok()?;
            let cstime: u64 = fields.get(14)?.parse().ok()?;
            Some(cutime + cstime)
        })
        .unwrap_or(0);
    // Clock ticks are 1/100 s on Linux.
    Duration::from_millis(ticks * 10)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn config() -> RulesConfig {
    RulesConfig {
        prefix: "FKB".into(),
        cluster_cidr: "10.42.0.0/16".into(),
        service_cidr: "10.43.0.0/16".into(),
        masq_mark: 0x4000,
    }
}

fn ports(
    i: usize,
    svc: &Service,
    endpoints: usize,
    generation: u32,
) -> Vec<proxy::model::ServicePort> {
    let s = slice(i, endpoints, generation);
    proxy::model::service_ports(svc, &[&s], "bench")
}

/// What one backend measured.
struct Figures {
    services: usize,
    full: Duration,
    /// What the full programming wrote, described.
    full_size: String,
    times: Vec<Duration>,
    /// Mean CPU time of the tool's processes per change.
    tool_cpu: Duration,
    /// What each change wrote, described, sorted by size.
    written: Vec<(usize, String)>,
    /// The ruleset's size after the changes, described.
    total: String,
    /// How the changes were applied, described.
    path: String,
}

async fn nftables(args: &Args) -> anyhow::Result<Figures> {
    let ns = Netns::create("nft")?;
    let path = format!("/run/netns/{}", ns.0);
    let nft = Nft {
        wrapper: vec!["nsenter".into(), format!("--net={path}")],
        // Incremental updates over the proxy's own netlink socket, opened
        // in the namespace, as the proxy does on its host.
        netns: Some(path),
        ..Nft::default()
    };
    let cfg = config();
    let tables = proxy::nftlayout::Tables::new(&cfg);
    let services: Vec<Service> = (0..args.services).map(service).collect();
    let mut gens = vec![0u32; args.services];
    let mut plane = Dataplane::new(ProxyMode::Nftables, cfg, Iptables::default(), nft.clone());
    let started = Instant::now();
    let all = services
        .iter()
        .enumerate()
        .map(|(i, svc)| (format!("bench/svc-{i}"), ports(i, svc, args.endpoints, 0)))
        .collect();
    let script = plane.full_sync(all).await.context("full nft script")?;
    let full = started.elapsed();
    // Our per-Service chains plus the fixed ones (common and shards').
    let (in_kernel, shards) = our_chains(&nft, &tables).await?;
    if in_kernel != script.chains + script.fixed_chains {
        bail!(
            "the kernel holds {in_kernel} chains, {} + {} were written",
            script.chains,
            script.fixed_chains
        );
    }

    let mut rng = rand::rng();
    let mut times = Vec::with_capacity(args.changes);
    let mut written = Vec::with_capacity(args.changes);
    let mut over_netlink = 0;
    let cpu_before = children_cpu();
    for _ in 0..args.changes {
        let i = rng.random_range(0..args.services);
        gens[i] += 1;
        let t = Instant::now();
        let ports = ports(i, &services[i], args.endpoints, gens[i]);
        let s = plane
            .update(vec![(format!("bench/svc-{i}"), Some(ports))])
            .await
            .context("incremental nft update")?;
        times.push(t.elapsed());
        over_netlink += usize::from(s.netlink);
        written.push((
            s.rules + s.elements,
            format!(
                "{} rules in {} chains, {} elements",
                s.rules, s.chains, s.elements
            ),
        ));
    }
    let tool_cpu = (children_cpu() - cpu_before) / args.changes.max(1) as u32;
    let (chains, _) = our_chains(&nft, &tables).await?;
    if chains != in_kernel {
        bail!("{chains} chains after the changes, {in_kernel} before");
    }
    Ok(Figures {
        services: args.services,
        full,
        full_size: format!(
            "{} rules in {} chains, {} map elements, {shards} shard tables",
            script.rules, script.chains, script.elements
        ),
        times,
        tool_cpu,
        written,
        total: format!("{} rules", script.rules),
        path: format!("{over_netlink} of {} over netlink", args.changes),
    })
}

/// The chains in our tables, and how many shard tables there are.
async fn our_chains(
    nft: &Nft,
    tables: &proxy::nftlayout::Tables,
) -> anyhow::Result<(usize, usize)> {
    let mut chains = 0;
    let mut shards = 0;
    for t in nft.list_tables().await? {
        if tables.is_ours(&t) {
            chains += chains_in_listing(&nft.list_table(&t).await?).len();
            shards += usize::from(t != tables.common());
        }
    }
    Ok((chains, shards))
}

async fn iptables(args: &Args) -> anyhow::Result<Figures> {
    let ns = Netns::create("ipt")?;
    let iptables = Iptables {
        wrapper: vec!["nsenter".into(), format!("--net=/run/netns/{}", ns.0)],
    };
    let cfg = config();
    let n = args.iptables_services;
    let services: Vec<Service> = (0..n).map(service).collect();
    let mut gens = vec![0u32; n];
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
    let mut written = Vec::with_capacity(args.changes);
    let cpu_before = children_cpu();
    for _ in 0..args.changes {
        let i = rng.random_range(0..n);
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
        written.push((p.rules, format!("{} rules in {} chains", p.rules, p.chains)));
    }
    let tool_cpu = (children_cpu() - cpu_before) / args.changes.max(1) as u32;
    let saved = iptables.save("nat").await?;
    let ours = saved.lines().filter(|l| l.starts_with("-A FKB-")).count();
    Ok(Figures {
        services: n,
        full,
        full_size: format!("{full_rules} rules"),
        times,
        tool_cpu,
        written,
        total: format!("{ours} rules"),
        path: "iptables-restore".into(),
    })
}

fn rows(backend: &str, f: &mut Figures) -> Vec<Row> {
    f.times.sort();
    f.written.sort();
    let p50 = pct(&f.times, 0.5);
    let p99 = pct(&f.times, 0.99);
    let median = f
        .written
        .get(f.written.len() / 2)
        .map(|w| w.1.clone())
        .unwrap_or_default();
    let max = f.written.last().map(|w| w.1.clone()).unwrap_or_default();
    vec![
        Row::info(
            backend,
            &format!(
                "program {} Services from scratch ({})",
                f.services, f.full_size
            ),
            millis(f.full),
        ),
        Row::aim(
            backend,
            "one endpoint change, p50",
            millis(p50),
            format!("< {}", millis(CHANGE_AIM)),
            p50 < CHANGE_AIM,
        ),
        Row::aim(
            backend,
            "one endpoint change, p99",
            millis(p99),
            format!("< {}", millis(CHANGE_AIM)),
            p99 < CHANGE_AIM,
        ),
        Row::info(backend, "changes applied", f.path.clone()),
        Row::info(
            backend,
            "CPU of the tool's processes per change (mean)",
            millis(f.tool_cpu),
        ),
        Row::info(
            backend,
            &format!("written per change, median / max (of {})", f.total),
            format!("{median} / {max}"),
        ),
    ]
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "proxy benchmark: {} Services × {} endpoints through nftables (nft -f, then netlink), {} through iptables-restore, each in a private netns\n",
        args.services, args.endpoints, args.iptables_services
    );
    let mut out = rows("nftables", &mut nftables(&args).await?);
    if args.iptables_services > 0 {
        out.extend(rows("iptables", &mut iptables(&args).await?));
    }
    println!("{}", table(&out));
    Ok(())
}
