//! The API benchmark, per backend and round: the raw `Storage::create`
//! rate of the request bodies on a fresh store, the same number of pod
//! creates through the API server (in this process, on a loopback port)
//! with the same concurrency, and the raw rate of the pods exactly as the
//! API server stored them, which the aim compares against; then lists of
//! all those pods from the watch cache and consistently. Medians over the
//! rounds are reported: this machine's run-to-run spread is ±10%.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apiserver::storage::{EmbeddedStore, EtcdProcess, EtcdStore, Storage};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::Backend;
use crate::lean_client::Connection;
use crate::report::{Row, median, millis, quantile, table};

/// The aim for a full list of the benchmark's pods.
const LIST_AIM: Duration = Duration::from_millis(100);

#[derive(clap::Args)]
pub struct Args {
    /// Pods to create.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent HTTP clients (and concurrent raw writers).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Which backends to measure.
    #[arg(long, value_enum, default_value_t = Backend::Both)]
    backend: Backend,
    /// Rounds per backend, each on fresh stores; the medians are reported
    /// and the aim is judged on them.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Lists timed per variant (the median is reported); 0 skips the lists.
    #[arg(long, default_value_t = 5)]
    list_runs: usize,
    /// Skips the raw storage baseline (and so the aim): for profiling the
    /// API path alone.
    #[arg(long)]
    api_only: bool,
}

/// Keeps a fresh store's backing alive: its temporary directory or its etcd.
pub(crate) enum Backing {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Etcd(#[allow(dead_code)] EtcdProcess),
}

pub(crate) async fn fresh_storage(backend: Backend) -> anyhow::Result<(Arc<dyn Storage>, Backing)> {
    match backend {
        Backend::Etcd => {
            let etcd = tokio::task::spawn_blocking(EtcdProcess::start)
                .await?
                .context("starting etcd")?;
            let store = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint)).await?;
            Ok((Arc::new(store), Backing::Etcd(etcd)))
        }
        _ => {
            let dir = tempfile::Builder::new()
                .prefix("ferrokube-bench-")
                .tempdir()?;
            let store = EmbeddedStore::open(&dir.path().join("db"))?;
            Ok((Arc::new(store), Backing::Dir(dir)))
        }
    }
}

/// A pod like a Deployment's: labels, one container with ports, env and
/// resources (about 1 KiB of JSON).
fn pod(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("bench-{i:05}"),
            "labels": {"app": "bench", "shard": (i % 16).to_string(), "pod-template-hash": "7d9f8c6b5"},
            "annotations": {"example.com/build": "2026-11-25T00:00:00Z"}
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "docker.io/library/nginx:1.27",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [{"name": "SHARD", "value": (i % 16).to_string()}, {"name": "LOG_LEVEL", "value": "info"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30
        }
    })
}

/// Every pod's JSON, encoded before the clock starts: both the raw and the
/// API figures measure the write path, not the benchmark's own encoding.
fn pod_bodies(count: usize) -> anyhow::Result<Arc<Vec<Bytes>>> {
    let bodies = (0..count)
        .map(|i| serde_json::to_vec(&pod(i)).map(Bytes::from))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(bodies))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let backends = match args.backend {
        Backend::Both => vec![Backend::Embedded, Backend::Etcd],
        one => vec![one],
    };
    println!(
        "api benchmark: {} pods, {} concurrent clients\n",
        args.pods, args.clients
    );
    let mut rows = vec![transport_floor(&args).await?];
    for backend in backends {
        rows.extend(bench_backend(backend, &args).await?);
    }
    print!("{}", table(&rows));
    Ok(())
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Etcd => "etcd",
        _ => "embedded",
    }
}

/// A timed phase: its rate per second and the process CPU it took.
#[derive(Clone, Copy)]
struct Phase {
    rate: f64,
    cpu: Option<Duration>,
}

impl Phase {
    /// The median rate of `phases`, and their median CPU if every one was
    /// measured.
    fn median(phases: &[Phase]) -> Phase {
        let cpu: Option<Vec<f64>> = phases
            .iter()
            .map(|p| p.cpu.map(|c| c.as_secs_f64()))
            .collect();
        Phase {
            rate: median(phases.iter().map(|p| p.rate).collect()),
            cpu: cpu.map(|c| Duration::from_secs_f64(median(c))),
        }
    }
}

/// One round's figures.
struct Round {
    /// Raw puts of the request bodies.
    raw_bodies: Option<Phase>,
    /// Raw puts of the stored pods, and their mean size.
    raw_stored: Option<(Phase, usize)>,
    api: Phase,
    p50: Duration,
    p99: Duration,
}

async fn bench_backend(backend: Backend, args: &Args) -> anyhow::Result<Vec<Row>> {
    let name = backend_name(backend);
    let n = args.rounds.max(1);
    let mut rounds = Vec::new();
    let mut list_rows = Vec::new();
    for round in 0..n {
        let lists = (round + 1 == n).then_some(&mut list_rows);
        rounds.push(one_round(backend, args, lists).await?);
    }
    let of_rounds = if n > 1 {
        format!(", median of {n}")
    } else {
        String::new()
    };
    let raw_row = |label: &str, phases: &[Phase]| {
        let raw = Phase::median(phases);
        let row = Row::info(
            name,
            &format!("{label}{of_rounds}"),
            format!("{:.0}{}", raw.rate, cpu_each(raw.cpu, args.pods)),
        );
        (raw.rate, row)
    };
    let mut rows = Vec::new();
    let raw_bodies: Vec<Phase> = rounds.iter().filter_map(|r| r.raw_bodies).collect();
    if !raw_bodies.is_empty() {
        rows.push(raw_row("raw puts/s of the request bodies", &raw_bodies).1);
    }
    let raw_stored: Vec<Phase> = rounds
        .iter()
        .filter_map(|r| r.raw_stored.map(|s| s.0))
        .collect();
    let bytes = rounds.iter().find_map(|r| r.raw_stored.map(|s| s.1));
    let raw_rate = bytes.map(|bytes| {
        let (rate, row) = raw_row(
            &format!("raw puts/s of the stored pods ({bytes} B each)"),
            &raw_stored,
        );
        rows.push(row);
        rate
    });
    let api: Vec<Phase> = rounds.iter().map(|r| r.api).collect();
    let api = Phase::median(&api);
    let label = format!("API pod creates/s{of_rounds}");
    match raw_rate {
        Some(raw_rate) => rows.push(Row::aim(
            name,
            &label,
            format!("{:.0}", api.rate),
            format!(">= {:.0} (1/2 raw)", raw_rate / 2.0),
            api.rate >= raw_rate / 2.0,
        )),
        None => rows.push(Row::info(name, &label, format!("{:.0}", api.rate))),
    }
    if n > 1 && raw_stored.len() == n {
        // Each round's API rate over the same round's raw rate: the spread
        // shows how much of the comparison is the machine's noise.
        let ratios: Vec<String> = rounds
            .iter()
            .zip(&raw_stored)
            .map(|(r, raw)| format!("{:.0}%", 100.0 * r.api.rate / raw.rate))
            .collect();
        rows.push(Row::info(
            name,
            "API ÷ raw per round (aim: 50%)",
            ratios.join(" "),
        ));
    }
    for (label, latency) in [
        (
            "API create latency p50",
            rounds.iter().map(|r| r.p50.as_secs_f64()).collect(),
        ),
        (
            "API create latency p99",
            rounds.iter().map(|r| r.p99.as_secs_f64()).collect(),
        ),
    ] {
        rows.push(Row::info(
            name,
            label,
            millis(Duration::from_secs_f64(median(latency))),
        ));
    }
    if let Some(cpu) = api.cpu {
        // Server and clients share this process: the figure is an upper bound
        // on the server's CPU per create, and tells CPU-bound from I/O-bound.
        rows.push(Row::info(
            name,
            "CPU per API create (server + client)",
            format!("{:.0} us", cpu.as_secs_f64() * 1e6 / args.pods as f64),
        ));
    }
    rows.extend(list_rows);
    Ok(rows)
}

/// `writes` with `clients` concurrent writers into a fresh store of
/// `backend`, once the disk is settled.
async fn raw_phase(
    backend: Backend,
    writes: Vec<(String, Bytes)>,
    clients: usize,
) -> anyhow::Result<Phase> {
    let (storage, _backing) = fresh_storage(backend).await?;
    settle_disk().await?;
    let (rate, cpu) = with_cpu(raw_puts(storage, Arc::new(writes), clients)).await;
    Ok(Phase { rate: rate?, cpu })
}

/// Raw puts of the request bodies, the API creates, then raw puts of the
/// pods as the API server stored them, each on a fresh store; with
/// `lists`, the list latencies of the API server's pods too.
async fn one_round(
    backend: Backend,
    args: &Args,
    lists: Option<&mut Vec<Row>>,
) -> anyhow::Result<Round> {
    let name = backend_name(backend);
    // The request bodies, straight into a fresh store: the store's rate for
    // what the clients send (shown for reference).
    let raw_bodies = match args.api_only {
        true => None,
        false => Some(raw_phase(backend, body_writes(args.pods)?, args.clients).await?),
    };

    let (storage, _backing) = fresh_storage(backend).await?;
    let router =
        apiserver::server::build(storage.clone(), &apiserver::server::ApiOptions::default())
            .await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Built before the CPU count starts: only the requests are measured.
    let bodies = pod_bodies(args.pods)?;
    settle_disk().await?;
    let (creates, api_cpu) = with_cpu(api_creates(addr, bodies, args.clients)).await;
    let creates = creates?;
    let api = Phase {
        rate: args.pods as f64 / creates.elapsed.as_secs_f64(),
        cpu: api_cpu,
    };

    // The aim's baseline: the objects exactly as the API server stored them
    // (defaults, admission's additions and managed fields make a pod about
    // five times its request body), put straight into a fresh store of the
    // same backend by the same number of writers.
    let raw_stored = if args.api_only {
        None
    } else {
        let stored = storage
            .list("/registry/pods/default/", None, 0, None)
            .await?
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect::<Vec<_>>();
        let bytes = stored.iter().map(|(_, v)| v.len()).sum::<usize>() / stored.len().max(1);
        Some((raw_phase(backend, stored, args.clients).await?, bytes))
    };

    if let Some(rows) = lists {
        let variants = [
            ("list rv=0 (watch cache)", "?resourceVersion=0"),
            ("list consistent (no rv)", ""),
        ];
        for (label, query) in variants.into_iter().filter(|_| args.list_runs > 0) {
            let url = format!("{base}/api/v1/namespaces/default/pods{query}");
            let (latency, size) = list_latency(&url, args).await?;
            rows.push(Row::aim(
                name,
                &format!("{label}, {} pods", args.pods),
                format!(
                    "{} ({:.1} MiB)",
                    millis(latency),
                    size as f64 / (1024.0 * 1024.0)
                ),
                format!("< {}", millis(LIST_AIM)),
                latency < LIST_AIM,
            ));
        }
    }
    server.abort();
    Ok(Round {
        raw_bodies,
        raw_stored,
        api,
        p50: quantile(&creates.latencies, 0.5),
        p99: quantile(&creates.latencies, 0.99),
    })
}

/// The same POSTs, from the same clients, answered by a handler that only
/// echoes the body with 201: what HTTP over loopback costs on this machine
/// before the API server does any work, so the figures below can be read
/// against it.
async fn transport_floor(args: &Args) -> anyhow::Result<Row> {
    let router = axum::Router::new().route(
        "/api/v1/namespaces/default/pods",
        axum::routing::post(|body: Bytes| async move { (http::StatusCode::CREATED, body) }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let bodies = pod_bodies(args.pods)?;
    let (creates, cpu) = with_cpu(api_creates(addr, bodies, args.clients)).await;
    let creates = creates?;
    server.abort();
    let rate = args.pods as f64 / creates.elapsed.as_secs_f64();
    Ok(Row::info(
        "-",
        "HTTP floor: same POSTs to an echo handler, per s",
        format!("{rate:.0}{}", cpu_each(cpu, args.pods)),
    ))
}

/// Writes back what earlier phases left dirty, so that no phase's syncs
/// wait behind another phase's writeback.
async fn settle_disk() -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sync").status().await?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

/// ", N us CPU each" of `count` operations, when the CPU time is known.
fn cpu_each(cpu: Option<Duration>, count: usize) -> String {
    cpu.map_or(String::new(), |cpu| {
        format!(
            ", {:.0} us CPU each",
            cpu.as_secs_f64() * 1e6 / count as f64
        )
    })
}

/// The request bodies under the keys the API server gives them.
fn body_writes(count: usize) -> anyhow::Result<Vec<(String, Bytes)>> {
    let bodies = pod_bodies(count)?;
    Ok((0..count)
        .map(|i| {
            (
                format!("/registry/pods/default/bench-{i:05}"),
                bodies[i].clone(),
            )
        })
        .collect())
}

/// Creates per second of `writes` with `clients` concurrent writers,
/// straight into the store.
async fn raw_puts(
    storage: Arc<dyn Storage>,
    writes: Arc<Vec<(String, Bytes)>>,
    clients: usize,
) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..clients)
        .map(|_| {
            let (storage, next, writes) = (storage.clone(), next.clone(), writes.clone());
            tokio::spawn(async move {
                while let Some((key, value)) = writes.get(next.fetch_add(1, Ordering::Relaxed)) {
                    storage.create(key, value.clone()).await?;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    Ok(writes.len() as f64 / started.elapsed().as_secs_f64())
}

struct Creates {
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn api_creates(
    addr: SocketAddr,
    bodies: Arc<Vec<Bytes>>,
    clients: usize,
) -> anyhow::Result<Creates> {
    let path = "/api/v1/namespaces/default/pods";
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(Connection::open(addr).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = connections
        .into_iter()
        .map(|mut connection| {
            let (next, total) = (next.clone(), bodies.len());
            let bodies = bodies.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>(latencies);
                    }
                    let sent = Instant::now();
                    let (status, body) = connection.post_json(path, bodies[i].clone()).await?;
                    latencies.push(sent.elapsed());
                    if status != 201 {
                        bail!(
                            "create {i} answered {status}: {}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(bodies.len());
    for client in clients {
        latencies.extend(client.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Creates { elapsed, latencies })
}

/// The median time to receive the whole list, and its size in bytes; the
/// first answer is checked to hold every pod.
async fn list_latency(url: &str, args: &Args) -> anyhow::Result<(Duration, usize)> {
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    let mut size = 0;
    for run in 0..args.list_runs {
        let started = Instant::now();
        let response = http.get(url).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        times.push(started.elapsed());
        if status != 200 {
            bail!(
                "list {url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        if run == 0 {
            let list: Value = serde_json::from_slice(&body)?;
            let items = list["items"].as_array().map_or(0, Vec::len);
            if items != args.pods {
                bail!("list {url} returned {items} pods, expected {}", args.pods);
            }
        }
        size = body.len();
    }
    times.sort();
    Ok((quantile(&times, 0.5), size))
}

/// `work`'s outcome and the CPU time this process spent meanwhile.
async fn with_cpu<T>(work: impl Future<Output = T>) -> (T, Option<Duration>) {
    let before = process_cpu();
    let out = work.await;
    let spent = process_cpu()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before));
    (out, spent)
}

/// User plus system CPU time of this process, from `/proc/self/stat`.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks * 1000 / CLOCK_TICKS_PER_SECOND))
}

/// `USER_HZ`, 100 on every Linux architecture we run on.
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// utime + stime (fields 14 and 15) in clock ticks; the command name in
/// field 2 may contain spaces, so fields are counted after its `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_ticks;

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_spaces_in_the_name() {
        let stat = "4242 (bench (x) y) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }
}
