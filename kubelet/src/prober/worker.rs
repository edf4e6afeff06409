//! One probe worker: a task that probes one container attempt every
//! `periodSeconds`, as `pkg/kubelet/prober/worker.go` does. The first run
//! is at once (after `initialDelaySeconds` from the container's start);
//! liveness and readiness wait until the container has `started` (the
//! startup probe succeeded, or there is none); a result is reported only
//! after `successThreshold`/`failureThreshold` equal results in a row, and
//! only when it differs from the last one reported; a
//! failed liveness or startup probe ends the worker, since its container
//! is about to be killed and the next attempt gets fresh workers.

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Kind, Outcome, Prober, Report, ReportEvent, Settings};

/// A running worker; dropping it stops the worker.
#[derive(Debug)]
pub struct ProbeWorker {
    task: JoinHandle<()>,
}

impl Drop for ProbeWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Who is probed and where results go.
pub struct Subject {
    pub container: String,
    pub container_id: String,
    /// When the attempt started (the initial delay counts from here).
    pub started_at: Instant,
    /// Whether the container has started; liveness and readiness wait for it.
    pub started: watch::Receiver<bool>,
    pub reports: mpsc::UnboundedSender<Report>,
}

/// Starts a worker for `kind`.
pub fn spawn<P: Prober>(
    kind: Kind,
    settings: Settings,
    prober: P,
    subject: Subject,
) -> ProbeWorker {
    ProbeWorker {
        task: tokio::spawn(run(kind, settings, prober, subject)),
    }
}

async fn run<P: Prober>(kind: Kind, settings: Settings, prober: P, subject: Subject) {
    let send = |event| {
        subject
            .reports
            .send(Report {
                container: subject.container.clone(),
                container_id: subject.container_id.clone(),
                kind,
                event,
            })
            .is_ok()
    };
    let mut ticker = tokio::time::interval(settings.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Option<bool> = None;
    let mut run_length = 0u32;
    // Like Kubernetes' results manager, only changes are passed on.
    let mut reported: Option<bool> = None;
    loop {
        ticker.tick().await;
        let started = *subject.started.borrow();
        match kind {
            // Nothing left to find out once the container has started.
            Kind::Startup if started => return,
            Kind::Liveness | Kind::Readiness if !started => continue,
            _ => {}
        }
        if subject.started_at.elapsed() < settings.initial_delay {
            continue;
        }
        let success = match prober.probe().await {
            Outcome::Success => true,
            Outcome::Failure(output) => {
                if !send(ReportEvent::Unhealthy(format!(
                    "{} probe failed: {output}",
                    kind.title()
                ))) {
                    return;
                }
                false
            }
            Outcome::Error(error) => {
                tracing::debug!(container = %subject.container, probe = kind.lower(), %error, "probe errored");
                if !send(ReportEvent::Unhealthy(format!(
                    "{} probe errored: {error}",
                    kind.title()
                ))) {
                    return;
                }
                continue;
            }
        };
        if last == Some(success) {
            run_length = run_length.saturating_add(1);
        } else {
            last = Some(success);
            run_length = 1;
        }
        let threshold = if success {
            settings.success_threshold
        } else {
            settings.failure_threshold
        };
        if run_length < threshold || reported == Some(success) {
            continue;
        }
        reported = Some(success);
        if !send(ReportEvent::Result(success)) {
            return;
        }
        if !success && matches!(kind, Kind::Liveness | Kind::Startup) {
            return;
        }
        if success && kind == Kind::Startup {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// Answers from a script (then repeats its last answer) and records when.
    #[derive(Clone)]
    struct Scripted {
        answers: Arc<Mutex<VecDeque<Outcome>>>,
        calls: Arc<Mutex<Vec<Instant>>>,
    }

    impl Scripted {
        fn new(answers: &[Outcome]) -> Scripted {
            Scripted {
                answers: Arc::new(Mutex::new(answers.iter().cloned().collect())),
                calls: Arc::new(Mutex::new(Vec::new())),
            }
        }
        fn call_offsets(&self, from: Instant) -> Vec<u64> {
            self.calls
                .lock()
                .expect("lock")
                .iter()
                .map(|t| t.duration_since(from).as_secs())
                .collect()
        }
    }

    impl Prober for Scripted {
        async fn probe(&self) -> Outcome {
            self.calls.lock().expect("lock").push(Instant::now());
            let mut answers = self.answers.lock().expect("lock");
            if answers.len() > 1 {
                answers.pop_front().expect("answer")
            } else {
                answers.front().cloned().unwrap_or(Outcome::Success)
            }
        }
    }

    fn settings(delay: u64, period: u64, success: u32, failure: u32) -> Settings {
        Settings {
            initial_delay: Duration::from_secs(delay),
            period: Duration::from_secs(period),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    struct Harness {
        start: Instant,
        started: watch::Sender<bool>,
        reports: mpsc::UnboundedReceiver<Report>,
        _worker: ProbeWorker,
    }

    fn harness(kind: Kind, s: Settings, prober: Scripted, started: bool) -> Harness {
        let (started_tx, started_rx) = watch::channel(started);
        let (tx, rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        let worker = spawn(
            kind,
            s,
            prober,
            Subject {
                container: "c".into(),
                container_id: "id".into(),
                started_at: start,
                started: started_rx,
                reports: tx,
            },
        );
        Harness {
            start,
            started: started_tx,
            reports: rx,
            _worker: worker,
        }
    }

    /// Results (not Unhealthy events) with the second they arrived at.
    async fn results_until(h: &mut Harness, secs: u64) -> Vec<(u64, bool)> {
        let deadline = h.start + Duration::from_secs(secs);
        let mut out = Vec::new();
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, h.reports.recv()).await {
            if let ReportEvent::Result(ok) = r.event {
                out.push((h.start.elapsed().as_secs(), ok));
            }
        }
        out
    }

    fn fail() -> Outcome {
        Outcome::Failure("boom".into())
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_reports_failure_after_the_threshold_and_stops() {
        let prober = Scripted::new(&[Outcome::Success, Outcome::Success, fail()]);
        let mut h = harness(Kind::Liveness, settings(5, 2, 1, 3), prober.clone(), true);
        let results = results_until(&mut h, 60).await;
        // Runs at 6, 8 (success), 10, 12, 14 (failures): the third failure counts.
        assert_eq!(results, vec![(6, true), (14, false)]);
        assert_eq!(prober.call_offsets(h.start), vec![6, 8, 10, 12, 14]);
    }

    #[tokio::test(start_paused = true)]
    async fn every_failure_is_reported_as_unhealthy_with_the_output() {
        let prober = Scripted::new(&[fail()]);
        let mut h = harness(Kind::Readiness, settings(0, 1, 1, 2), prober, true);
        let first = h.reports.recv().await.expect("report");
        assert_eq!(
            first.event,
            ReportEvent::Unhealthy("Readiness probe failed: boom".into())
        );
        let second = h.reports.recv().await.expect("report");
        assert!(matches!(second.event, ReportEvent::Unhealthy(_)));
        let third = h.reports.recv().await.expect("report");
        assert_eq!(third.event, ReportEvent::Result(false));
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_flips_both_ways_with_its_thresholds() {
        let prober = Scripted::new(&[
            Outcome::Success,
            Outcome::Success,
            fail(),
            Outcome::Success,
            fail(),
            fail(),
            Outcome::Success,
            Outcome::Success,
        ]);
        let mut h = harness(Kind::Readiness, settings(0, 10, 2, 2), prober, true);
        let results = results_until(&mut h, 75).await;
        // Runs at 0,10 ok → ready at 10; a lone failure at 20 changes
        // nothing; 40,50 fail → unready at 50; 60,70 ok → ready at 70.
        assert_eq!(results, vec![(10, true), (50, false), (70, true)]);
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_and_readiness_wait_for_the_container_to_start() {
        let prober = Scripted::new(&[Outcome::Success]);
        let mut h = harness(Kind::Liveness, settings(0, 1, 1, 1), prober.clone(), false);
        assert_eq!(results_until(&mut h, 5).await, vec![]);
        assert!(
            prober.call_offsets(h.start).is_empty(),
            "no probe before start"
        );
        h.started.send(true).expect("send");
        let results = results_until(&mut h, 7).await;
        assert_eq!(results.first(), Some(&(5, true)));
    }

    #[tokio::test(start_paused = true)]
    async fn startup_stops_after_its_first_success() {
        let prober = Scripted::new(&[fail(), fail(), Outcome::Success]);
        let mut h = harness(Kind::Startup, settings(0, 3, 1, 5), prober.clone(), false);
        let results = results_until(&mut h, 30).await;
        assert_eq!(results, vec![(6, true)]);
        assert_eq!(prober.call_offsets(h.start), vec![0, 3, 6]);
    }

    #[tokio::test(start_paused = true)]
    async fn startup_failure_threshold_gives_up_on_the_container() {
        let prober = Scripted::new(&[fail()]);
        let mut h = harness(Kind::Startup, settings(0, 2, 1, 3), prober.clone(), false);
        let results = results_until(&mut h, 30).await;
        assert_eq!(results, vec![(4, false)]);
        assert_eq!(prober.call_offsets(h.start).len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_thrown_away_without_breaking_a_run() {
        let prober = Scripted::new(&[
            fail(),
            Outcome::Error("no port".into()),
            fail(),
            Outcome::Success,
        ]);
        let mut h = harness(Kind::Liveness, settings(0, 1, 1, 2), prober, true);
        let results = results_until(&mut h, 10).await;
        // The error between the two failures neither resets nor counts.
        assert_eq!(results, vec![(2, false)]);
    }

    #[test]
    fn settings_take_kubernetes_defaults() {
        let s = Settings::of(
            &k8s_openapi::api::core::v1::Probe::default(),
            Kind::Liveness,
        );
        assert_eq!(s, settings(0, 10, 1, 3));
        let probe = k8s_openapi::api::core::v1::Probe {
            period_seconds: Some(0),
            success_threshold: Some(4),
            ..Default::default()
        };
        assert_eq!(Settings::of(&probe, Kind::Liveness).success_threshold, 1);
        assert_eq!(Settings::of(&probe, Kind::Readiness).success_threshold, 4);
        assert_eq!(Settings::of(&probe, Kind::Readiness).period.as_secs(), 1);
    }
}
