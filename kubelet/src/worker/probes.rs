//! The pod worker's side of probes and hooks: after a container attempt
//! starts, its `postStart` hook (a failure kills it) and then one worker
//! per probe; probe reports turn into the container's `started` and
//! `ready` flags, `Unhealthy` events, and, for a failed liveness or
//! startup probe, a kill (preStop, SIGTERM, grace, SIGKILL) whose exit the
//! restart policy then handles like any other; before pod termination,
//! every running container's `preStop` hook.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Worker, should_restart};
use crate::events::{EventType, Involved};
use crate::hooks;
use crate::prober::worker::Subject;
use crate::prober::{self, ContainerProber, Kind, ProbeTarget, ProbeWorker, Report, ReportEvent};
use crate::status::RunState;

/// The probes of one running container attempt.
pub(super) struct Probing {
    container_id: String,
    _workers: Vec<ProbeWorker>,
    started_tx: watch::Sender<bool>,
    has_startup: bool,
    has_readiness: bool,
    startup_ok: bool,
    readiness_ok: bool,
}

impl Probing {
    fn started(&self) -> bool {
        !self.has_startup || self.startup_ok
    }

    fn ready(&self) -> bool {
        self.started() && (!self.has_readiness || self.readiness_ok)
    }
}

fn probe_of(c: &Container, kind: Kind) -> Option<&Probe> {
    match kind {
        Kind::Liveness => c.liveness_probe.as_ref(),
        Kind::Readiness => c.readiness_probe.as_ref(),
        Kind::Startup => c.startup_probe.as_ref(),
    }
}

impl Worker {
    pub(super) fn container_spec(&self, name: &str) -> Option<Container> {
        let spec = self.pod.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
    }

    pub(super) fn target(&self, c: &Container, id: &str) -> ProbeTarget {
        ProbeTarget {
            runtime: self.ctx.runtime.clone(),
            container_id: id.to_string(),
            pod_ip: self.pod_ip.clone(),
            ports: c.ports.clone().unwrap_or_default(),
            scratch_dir: self.ctx.data_dir.join("exec"),
            http: self.http.clone(),
        }
    }

    fn involved(&self, name: &str) -> Involved {
        Involved::container(&self.pod_ref, name, self.is_init(name))
    }

    /// The grace period of a kill for a failed probe: the probe's own
    /// `terminationGracePeriodSeconds`, else the pod's, else 30 s.
    fn probe_grace(&self, probe: Option<&Probe>) -> Duration {
        let seconds = probe
            .and_then(|p| p.termination_grace_period_seconds)
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        Duration::from_secs(seconds.max(0) as u64)
    }

    /// Runs `postStart`, then starts the attempt's probe workers. A failed
    /// hook kills the attempt instead.
    pub(super) async fn after_start(&mut self, c: &Container, id: &str, started_at: Timestamp) {
        if c.lifecycle.as_ref().is_some_and(|l| l.post_start.is_some()) {
            let target = self.target(c, id);
            if let Err(message) = hooks::post_start(c, &target).await {
                tracing::warn!(pod = %self.pod_ref.name, container = %c.name, error = %message, "postStart hook failed");
                // Kubernetes keeps the hook's output out of the event: it may hold secrets.
                let about = self.involved(&c.name);
                self.events.record(
                    about.clone(),
                    EventType::Warning,
                    "FailedPostStartHook",
                    "PostStartHook failed".into(),
                );
                self.kill(c, id, "FailedPostStartHook".into(), self.probe_grace(None));
                return;
            }
        }
        self.start_probes(c, id, started_at);
    }

    /// One worker per probe the container has; adopted containers too.
    pub(super) fn start_probes(&mut self, c: &Container, id: &str, started_at: Timestamp) {
        let elapsed = Timestamp::now().duration_since(started_at).unsigned_abs();
        let started_instant = Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(Instant::now);
        let has_startup = c.startup_probe.is_some();
        let (started_tx, started_rx) = watch::channel(!has_startup);
        let mut workers = Vec::new();
        for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
            let Some(probe) = probe_of(c, kind) else {
                continue;
            };
            let settings = prober::Settings::of(probe, kind);
            let prober = ContainerProber {
                action: prober::handlers::Action::of_probe(probe),
                timeout: settings.timeout,
                target: self.target(c, id),
            };
            workers.push(prober::spawn(
                kind,
                settings,
                prober,
                Subject {
                    container: c.name.clone(),
                    container_id: id.to_string(),
                    started_at: started_instant,
                    started: started_rx.clone(),
                    reports: self.probe_tx.clone(),
                },
            ));
        }
        let probing = Probing {
            container_id: id.to_string(),
            _workers: workers,
            started_tx,
            has_startup,
            has_readiness: c.readiness_probe.is_some(),
            startup_ok: false,
            readiness_ok: false,
        };
        if let Some(slot) = self.slots.get_mut(&c.name) {
            slot.record.started = probing.started();
            slot.record.ready = probing.ready();
            slot.probing = Some(probing);
        }
    }

    /// Stops an attempt's probes (it exited or is being killed).
    pub(super) fn stop_probes(&mut self, name: &str) {
        if let Some(slot) = self.slots.get_mut(name) {
            slot.probing = None;
            slot.record.started = false;
            slot.record.ready = false;
        }
    }

    pub(super) fn on_probe(&mut self, report: Report) {
        let current = self
            .slots
            .get(&report.container)
            .and_then(|s| s.probing.as_ref())
            .is_some_and(|p| p.container_id == report.container_id);
        if !current {
            return;
        }
        match report.event {
            ReportEvent::Unhealthy(message) => {
                let about = self.involved(&report.container);
                self.events
                    .record(about, EventType::Warning, "Unhealthy", message);
            }
            ReportEvent::Result(ok) => {
                let Some(slot) = self.slots.get_mut(&report.container) else {
                    return;
                };
                let Some(probing) = slot.probing.as_mut() else {
                    return;
                };
                match report.kind {
                    Kind::Startup => {
                        probing.startup_ok = ok;
                        if ok {
                            let _ = probing.started_tx.send(true);
                        }
                    }
                    Kind::Readiness => probing.readiness_ok = ok,
                    Kind::Liveness => {}
                }
                slot.record.started = probing.started();
                slot.record.ready = probing.ready();
                if !ok && matches!(report.kind, Kind::Liveness | Kind::Startup) {
                    self.kill_for_probe(&report.container, &report.container_id, report.kind);
                }
            }
        }
    }

    fn kill_for_probe(&mut self, name: &str, id: &str, kind: Kind) {
        let Some(c) = self.container_spec(name) else {
            return;
        };
        let restarts = should_restart(&self.restart_policy(), 1);
        let mut message = format!("Container {name} failed {} probe", kind.lower());
        if restarts {
            message.push_str(", will be restarted");
        }
        let grace = self.probe_grace(probe_of(&c, kind));
        self.kill(&c, id, message, grace);
    }

    /// Kills a running attempt in the background (`Killing` event, preStop,
    /// SIGTERM, grace, SIGKILL); its exit arrives as any other exit does.
    fn kill(&mut self, c: &Container, id: &str, message: String, grace: Duration) {
        let about = self.involved(&c.name);
        self.events
            .record(about.clone(), EventType::Normal, "Killing", message);
        self.stop_probes(&c.name);
        let target = self.target(c, id);
        let events = self.events.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let outcome = hooks::stop(&c, &target, grace).await;
            if let Some(error) = outcome.pre_stop_error {
                tracing::warn!(container = %c.name, %error, "preStop hook failed");
                events.record(
                    about,
                    EventType::Warning,
                    "FailedPreStopHook",
                    "PreStopHook failed".into(),
                );
            }
        });
    }

    /// Runs the `preStop` hooks of all running containers at once, within
    /// `grace`; returns how long they took.
    pub(super) async fn run_pre_stop_hooks(&mut self, grace: Duration) -> Duration {
        let began = Instant::now();
        let mut runs = Vec::new();
        for slot in self.slots.values() {
            let RunState::Running { id, .. } = &slot.record.state else {
                continue;
            };
            let Some(c) = self.container_spec(&slot.record.name) else {
                continue;
            };
            let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()) else {
                continue;
            };
            let target = self.target(&c, id);
            let about = self.involved(&c.name);
            runs.push(async move {
                let result = hooks::run(&handler, &target, Some(grace)).await;
                (about, result)
            });
        }
        if runs.is_empty() {
            return Duration::ZERO;
        }
        let names: Vec<String> = self.slots.keys().cloned().collect();
        for name in names {
            self.stop_probes(&name);
        }
        for (about, result) in futures::future::join_all(runs).await {
            if let Err(error) = result {
                tracing::warn!(pod = %about.name, %error, "preStop hook failed");
                self.events.record(
                    about,
                    EventType::Warning,
                    "FailedPreStopHook",
                    "PreStopHook failed".into(),
                );
            }
        }
        began.elapsed()
    }
}
