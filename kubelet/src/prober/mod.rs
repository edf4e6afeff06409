//! Container probes as Kubernetes' prober runs them
//! (`pkg/kubelet/prober`): liveness, readiness and startup probes, each
//! run by its own worker task ([`worker`]) against one container attempt,
//! by exec in the container, HTTP GET or TCP connect to the pod
//! ([`handlers`]). Workers report threshold-crossing results and every
//! failure (for the `Unhealthy` event) to the pod worker, which owns the
//! container's `ready` and `started` flags and restarts containers whose
//! liveness or startup probe failed.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;

pub mod handlers;
mod tls;
pub mod worker;

pub use handlers::{ContainerProber, ProbeTarget};
pub use worker::{ProbeWorker, spawn};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    /// As Kubernetes writes it in events (`Liveness probe failed: …`).
    pub fn title(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    /// As Kubernetes writes it in the Killing event (`failed liveness probe`).
    pub fn lower(self) -> &'static str {
        match self {
            Kind::Liveness => "liveness",
            Kind::Readiness => "readiness",
            Kind::Startup => "startup",
        }
    }
}

/// What one probe run found.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    /// The container answered badly; the text is the probe's output.
    Failure(String),
    /// The probe itself could not run (bad port name, runtime error): the
    /// result is thrown away, as Kubernetes' worker does.
    Error(String),
}

/// Runs one probe once. The real one is [`ContainerProber`]; tests script one.
pub trait Prober: Send + Sync + 'static {
    fn probe(&self) -> impl Future<Output = Outcome> + Send;
}

/// A probe's timing and thresholds, with Kubernetes' defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Settings {
    pub fn of(probe: &Probe, kind: Kind) -> Settings {
        let secs = |v: Option<i32>, default: u64, min: u64| {
            Duration::from_secs(v.map_or(default, |v| (v.max(0) as u64).max(min)))
        };
        let count = |v: Option<i32>, default: u32| v.map_or(default, |v| v.max(1) as u32);
        Settings {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            // Validation pins liveness and startup to 1.
            success_threshold: match kind {
                Kind::Readiness => count(probe.success_threshold, 1),
                Kind::Liveness | Kind::Startup => 1,
            },
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// What a probe worker tells the pod worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub container: String,
    /// The containerd ID of the attempt probed: reports about an attempt
    /// that has since been replaced are stale.
    pub container_id: String,
    pub kind: Kind,
    pub event: ReportEvent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReportEvent {
    /// A run failed: the `Unhealthy` event's message.
    Unhealthy(String),
    /// The result crossed its threshold and is now this.
    Result(bool),
}
