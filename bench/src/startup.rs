//! The startup benchmark: spawn `ferrokube up` on a fresh data directory,
//! time until `/readyz` answers, then read the idle server's resident memory
//! after five seconds.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::report::{Row, millis, table};

const READY_AIM: Duration = Duration::from_secs(1);
const RSS_AIM_MIB: f64 = 100.0;
const IDLE: Duration = Duration::from_secs(5);

#[derive(clap::Args)]
pub struct Args {
    /// Startups to time (the median and the worst are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The ferrokube binary; by default the one next to this benchmark, else
    /// built with `cargo build --release --bin ferrokube`.
    #[arg(long, env = "FERROKUBE_BIN")]
    binary: Option<PathBuf>,
}

/// Stops the server when the measurement ends, however it ends: with
/// SIGTERM, so that its kubelet stops the private containerd (a SIGKILL
/// left one running per run).
struct Server(Option<Child>);

impl Server {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.0.as_mut().map_or(Ok(None), Child::try_wait)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            kubelet::testing::terminate(child);
        }
    }
}

/// The bench's clusters program the host under names of their own, which
/// it removes at the end: the proxy's tables and chains, the kubelet's
/// bridge and masquerade table.
const PROXY_PREFIX: &str = "FKSTART";
const BRIDGE: &str = "fkstartup";

struct HostState<'a>(&'a std::path::Path);

impl Drop for HostState<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.0)
            .args(["proxy", "--cleanup", "--proxy-chain-prefix", PROXY_PREFIX])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        kubelet::testing::remove_bridge(BRIDGE);
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let binary = match args.binary {
        Some(path) => path,
        None => find_binary()?,
    };
    let _host = HostState(&binary);
    println!("startup benchmark: {} (embedded store)\n", binary.display());
    let mut ready_times = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..args.runs.max(1) {
        let dir = tempfile::Builder::new()
            .prefix("ferrokube-startup-")
            .tempdir()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let started = Instant::now();
        let child = Command::new(&binary)
            .args(["up", "--data-dir"])
            .arg(dir.path())
            .arg("--listen")
            .arg(addr.to_string())
            .args(["--cni-bridge", BRIDGE, "--proxy-chain-prefix", PROXY_PREFIX])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Server(Some(child));
        wait_ready(&mut server, addr)?;
        ready_times.push(started.elapsed());
        std::thread::sleep(IDLE);
        rss.push(rss_mib(server.id())?);
    }
    ready_times.sort();
    rss.sort_by(f64::total_cmp);
    let median = ready_times[ready_times.len() / 2];
    let worst = ready_times[ready_times.len() - 1];
    let rss_worst = rss[rss.len() - 1];
    let rows = [
        Row::aim(
            "embedded",
            "spawn to /readyz, median",
            millis(median),
            format!("< {}", millis(READY_AIM)),
            median < READY_AIM,
        ),
        Row::aim(
            "embedded",
            "spawn to /readyz, worst",
            millis(worst),
            format!("< {}", millis(READY_AIM)),
            worst < READY_AIM,
        ),
        Row::aim(
            "embedded",
            &format!("idle RSS after {}s, worst", IDLE.as_secs()),
            format!("{rss_worst:.1} MiB"),
            format!("< {RSS_AIM_MIB:.0} MiB"),
            rss_worst < RSS_AIM_MIB,
        ),
    ];
    print!("{}", table(&rows));
    Ok(())
}

/// The release `ferrokube`, built first: one merely found beside the
/// bench may predate the tree (a measurement of old code).
fn find_binary() -> anyhow::Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("bench/ sits in the workspace")?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--bin", "ferrokube"])
        .current_dir(workspace)
        .status()?;
    if !status.success() {
        bail!("cargo build --release --bin ferrokube failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    Ok(target.join("release").join("ferrokube"))
}

fn wait_ready(server: &mut Server, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = server.try_wait()? {
            bail!("ferrokube exited during startup: {status}");
        }
        if ready(addr) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("ferrokube did not answer /readyz within 30 s")
}

fn ready(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}

/// `VmRSS` from `/proc/PID/status`, in MiB.
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss_kib(&status)
        .map(|kib| kib as f64 / 1024.0)
        .with_context(|| format!("no VmRSS in {path}"))
}

fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::parse_vm_rss_kib;

    #[test]
    fn vm_rss_is_read_in_kib_from_proc_status() {
        let status = "Name:\tferrokube\nVmPeak:\t  100 kB\nVmRSS:\t   23456 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss_kib(status), Some(23456));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
    }
}
