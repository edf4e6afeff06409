//! Init containers: run one at a time, in spec order, each to success,
//! before any app container starts (`computeInitContainerActions` in
//! `kuberuntime_manager.go`). A failed init container is restarted with
//! the usual back-off unless `restartPolicy` is `Never`, which fails the
//! pod. A pod whose app containers already ran (a kubelet restart) counts
//! as initialized and does not run its init containers again.

use k8s_openapi::api::core::v1::Container;
use tokio::time::Instant;

use super::Worker;
use crate::status::RunState;

/// Whether an init container that exited with `code` runs again.
pub fn should_restart_init(policy: &str, code: i32) -> bool {
    code != 0 && policy != "Never"
}

impl Worker {
    pub(super) fn init_containers(&self) -> Vec<Container> {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.clone())
            .unwrap_or_default()
    }

    pub(super) fn is_init(&self, name: &str) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.name == name))
    }

    /// Whether the pod counts as initialized before this worker runs any
    /// init container: its app containers already ran, or its last status
    /// said so.
    pub(super) fn initialized_before(&self) -> bool {
        let app_ran = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .filter_map(|c| self.slots.get(&c.name))
            .any(|s| s.current.is_some() || s.record.last_terminated.is_some());
        let said_so = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Initialized" && c.status == "True")
            })
            && !self.init_containers().is_empty()
            && self.pod.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Pending");
        app_ran || said_so
    }

    /// Advances initialization: starts the first init container that has
    /// not succeeded when it is due. True once every one has succeeded.
    pub(super) async fn sync_init(&mut self, wake: &mut Option<Instant>) -> bool {
        if self.initialized {
            return true;
        }
        let policy = self.restart_policy();
        for c in self.init_containers() {
            let Some(slot) = self.slots.get(&c.name) else {
                continue;
            };
            match &slot.record.state {
                RunState::Terminated(t) if t.exit_code == 0 => continue,
                // Failed under `Never`: the pod has failed; nothing more runs.
                RunState::Terminated(t) if !should_restart_init(&policy, t.exit_code) => {
                    return false;
                }
                _ => {}
            }
            self.start_if_due(&c, wake).await;
            return false;
        }
        self.initialized = true;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_init_containers_restart_unless_never() {
        for (policy, code, want) in [
            ("Always", 0, false),
            ("Always", 1, true),
            ("OnFailure", 2, true),
            ("OnFailure", 0, false),
            ("Never", 1, false),
        ] {
            assert_eq!(should_restart_init(policy, code), want, "{policy} {code}");
        }
    }
}
