//! Restarts and their back-off: which exits restart under which
//! `restartPolicy`, the kubelet's back-off (10 s doubling to 5 min), when
//! a container is due to (re)start, and the `CrashLoopBackOff` waiting
//! state with Kubernetes' message while a restart waits.

use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use tokio::time::Instant;

use super::{Worker, earliest};
use crate::status::RunState;

pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A duration as Go prints it (`10s`, `1m20s`, `5m0s`), as Kubernetes'
/// back-off messages show it.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// The next back-off delay after `current`.
pub fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(BACKOFF_MAX)
}

/// Whether a container that exited with `code` runs again.
pub fn should_restart(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

impl Worker {
    /// Starts `c` if it never ran or its back-off has expired; notes in
    /// `wake` when a pending back-off expires.
    pub(super) async fn start_if_due(&mut self, c: &Container, wake: &mut Option<Instant>) {
        let (due, attempt, first) = {
            let Some(slot) = self.slots.get(&c.name) else {
                return;
            };
            let never_ran = slot.current.is_none()
                && slot.record.last_terminated.is_none()
                && !matches!(slot.record.state, RunState::Terminated(_));
            let due = match (&slot.record.state, slot.next_start) {
                (RunState::Running { .. }, _) => false,
                (_, Some(at)) if at > Instant::now() => {
                    earliest(wake, at);
                    false
                }
                (_, Some(_)) => true,
                (RunState::Waiting { .. }, None) => never_ran,
                (RunState::Terminated(_), None) => false,
            };
            let attempt = if slot.current.is_some() {
                slot.record.restart_count + 1
            } else {
                slot.record.restart_count
            };
            (due, attempt, slot.current.is_none())
        };
        if due {
            self.start_container(c, attempt, first).await;
            if let Some(at) = self.slots.get(&c.name).and_then(|s| s.next_start) {
                earliest(wake, at);
            }
        }
    }

    /// Containers in back-off show CrashLoopBackOff while they wait.
    pub(super) fn show_crash_loops(&mut self) {
        for slot in self.slots.values_mut() {
            if let (RunState::Terminated(t), Some(at)) = (&slot.record.state, slot.next_start)
                && at > Instant::now()
            {
                let t = t.clone();
                slot.record.last_terminated = Some(t);
                slot.record.state = RunState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: Some(format!(
                        "back-off {} restarting failed container={} pod={}_{}({})",
                        go_duration(slot.delay),
                        slot.record.name,
                        self.pod_ref.name,
                        self.pod_ref.namespace,
                        self.pod_ref.uid,
                    )),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_to_five_minutes() {
        let mut d = BACKOFF_INITIAL;
        let mut seen = vec![];
        for _ in 0..7 {
            seen.push(d.as_secs());
            d = next_backoff(d);
        }
        assert_eq!(seen, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn back_off_reads_as_go_prints_durations() {
        let secs = |s| go_duration(Duration::from_secs(s));
        assert_eq!(secs(10), "10s");
        assert_eq!(secs(80), "1m20s");
        assert_eq!(secs(300), "5m0s");
        assert_eq!(secs(3700), "1h1m40s");
    }

    #[test]
    fn restart_policy_decides_restarts() {
        for (policy, code, want) in [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 2, true),
            ("Never", 0, false),
            ("Never", 1, false),
        ] {
            assert_eq!(should_restart(policy, code), want, "{policy} {code}");
        }
    }
}
