//! ferrokube benchmarks. Each prints its figures beside the aim, with any
//! baseline it is judged against measured in the same run:
//!
//! - `api`: pod creates per second and latency through the API server, list
//!   latency of 10,000 pods, and the raw put rate of the same backend.
//! - `startup`: time from spawning `ferrokube up` to `/readyz`, and the
//!   idle server's resident memory.
//! - `scheduler`: pods bound per second onto hollow nodes, beside the
//!   scheduling algorithm's own rate.
//! - `controllers`: a Deployment of 1,000 replicas to 1,000 available on
//!   hollow nodes; the ReplicaSet controller's pod create rate beside the
//!   API server's.
//! - `pod-startup`: pod creation to Running through the kubelet on a real
//!   containerd, one pod and 30 at once, beside the raw container start.
//! - `recovery`: the embedded store's reopening after a crash under load, after
//!   a crash while idle, and after a clean shutdown.
//! - `proxy`: 1,000 Services × 10 endpoints into a real `nft -f` (and fewer into iptables-restore)
//!   (in a private network namespace): from scratch, and per endpoint change.

mod api;
mod controllers;
mod lean_client;
mod pod_startup;
mod proxy;
mod recovery;
mod report;
mod scheduler;
mod startup;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "bench", about = "ferrokube benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// API create/list throughput and latency against the raw storage rate.
    Api(api::Args),
    /// Startup time to /readyz and idle RSS of `ferrokube up`.
    Startup(startup::Args),
    /// Pods bound/s onto hollow nodes against the algorithm-only rate.
    Scheduler(scheduler::Args),
    /// A Deployment of 1,000 replicas: controller create rate against the API's.
    Controllers(controllers::Args),
    /// Proxy rule programming: from scratch and per endpoint change.
    Proxy(proxy::Args),
    /// Pod creation to Running on a real containerd against the raw start.
    PodStartup(pod_startup::Args),
    /// The embedded store's reopening after a crash, under load and idle.
    Recovery(recovery::Args),
}

/// The storage backends the benchmarks run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Embedded,
    Etcd,
    Both,
}

// Requests allocate many small JSON values; mimalloc handles that churn
// with far less CPU than glibc's malloc (measured with `bench api`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // As `ferrokube` does (src/main.rs): no transparent huge pages.
    let _ = nix::sys::prctl::set_thp_disable(true);
    let cli = Cli::parse();
    // Off unless asked (`RUST_LOG=kubelet=debug` times the pod start's stages).
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Api(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(api::run(args))
        }
        Command::Startup(args) => startup::run(args),
        Command::Scheduler(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(scheduler::run(args)),
        Command::Controllers(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(controllers::run(args)),
        Command::Proxy(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(proxy::run(args)),
        Command::PodStartup(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(pod_startup::run(args)),
        Command::Recovery(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(recovery::run(args)),
    }
}
