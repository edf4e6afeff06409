//! Pod termination: the running containers' preStop hooks (inside the
//! grace period), SIGTERM to every running container, the grace period
//! (`deletionGracePeriodSeconds`, else `terminationGracePeriodSeconds`,
//! else 30 s), SIGKILL for what is left, then removal of containers,
//! network and cgroup, and finally the real delete of the Pod object with
//! `gracePeriodSeconds=0` and a UID precondition.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};
use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Exit, RETRY, Worker};
use crate::containers;
use crate::events::{EventType, Involved};
use crate::status::RunState;

impl Worker {
    /// SIGTERM, the grace period, SIGKILL; then cleanup and, unless the
    /// object is already gone, the final status and the real delete.
    pub(super) async fn terminate(
        &mut self,
        exits: &mut mpsc::UnboundedReceiver<Exit>,
        gone: bool,
    ) {
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        let rt = self.ctx.runtime.clone();
        // Kubernetes announces each stop before its preStop hook runs.
        for slot in self.slots.values() {
            if let RunState::Running { .. } = slot.record.state {
                let name = &slot.record.name;
                self.events.record(
                    Involved::container(&self.pod_ref, name, self.is_init(name)),
                    EventType::Normal,
                    "Killing",
                    format!("Stopping container {name}"),
                );
            }
        }
        // As `killContainer`: hooks eat into the grace period, but SIGTERM
        // still gets at least two seconds.
        let hooks_took = self.run_pre_stop_hooks(Duration::from_secs(grace)).await;
        let after_hooks = if hooks_took.is_zero() {
            Duration::from_secs(grace)
        } else {
            Duration::from_secs(grace)
                .saturating_sub(hooks_took)
                .max(crate::hooks::MIN_GRACE_AFTER_HOOK)
        };
        let running: Vec<String> = self
            .slots
            .values()
            .filter(|s| matches!(s.record.state, RunState::Running { .. }))
            .map(|s| s.record.name.clone())
            .collect();
        let mut remaining = running.len();
        for slot in self.slots.values() {
            if let (RunState::Running { id, .. }, true) = (&slot.record.state, remaining > 0)
                && let Err(e) = rt.kill_task(id, Signal::SIGTERM).await
            {
                tracing::warn!(container = %id, error = %e, "SIGTERM failed");
            }
        }
        let deadline = Instant::now() + after_hooks;
        while remaining > 0 {
            match tokio::time::timeout_at(deadline, exits.recv()).await {
                Ok(Some(exit)) => {
                    if running.contains(&exit.name) {
                        remaining -= 1;
                    }
                    self.record_terminated(exit).await;
                }
                Ok(None) | Err(_) => break,
            }
        }
        if remaining > 0 {
            for slot in self.slots.values() {
                if let RunState::Running { id, .. } = &slot.record.state {
                    let _ = rt.kill_task(id, Signal::SIGKILL).await;
                }
            }
            let kill_deadline = Instant::now() + Duration::from_secs(10);
            while remaining > 0 {
                match tokio::time::timeout_at(kill_deadline, exits.recv()).await {
                    Ok(Some(exit)) => {
                        remaining -= 1;
                        self.record_terminated(exit).await;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        if !gone {
            let _ = self.report().await;
        }
        self.cleanup().await;
        if gone {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.pod_ref.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.pod_ref.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        loop {
            match pods.delete(&self.pod_ref.name, &params).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => break,
                Err(e) => {
                    tracing::warn!(pod = %self.pod_ref.name, error = %e, "cannot delete pod; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        tracing::info!(pod = %self.pod_ref.name, "pod terminated and deleted");
    }

    async fn record_terminated(&mut self, exit: Exit) {
        let _ = containers::record_exit(&self.ctx.runtime, &exit.terminated).await;
        if let Some(slot) = self.slots.get_mut(&exit.name) {
            slot.record.state = RunState::Terminated(exit.terminated);
        }
    }

    /// Removes every container of the pod, its network and its cgroup.
    async fn cleanup(&mut self) {
        let rt = &self.ctx.runtime;
        match containers::find(rt, &self.pod_ref.uid).await {
            Ok(found) => {
                for f in found {
                    if let Err(e) = containers::remove(rt, &f.id).await {
                        tracing::warn!(container = %f.id, error = %e, "cannot remove container");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(pod = %self.pod_ref.name, error = %e, "cannot list containers")
            }
        }
        let path = self.ctx.data_dir.join("netns").join(&self.pod_ref.uid);
        if let Some(cni) = &self.ctx.cni
            && path.exists()
            && let Err(e) = cni.del(&self.pod_ref.uid, &path).await
        {
            tracing::warn!(pod = %self.pod_ref.name, error = %e, "CNI teardown failed");
        }
        if let Err(e) = crate::netns::remove(&path) {
            tracing::warn!(pod = %self.pod_ref.name, error = %e, "cannot remove netns");
        }
        crate::cgroups::remove_pod(&self.ctx.cgroup_parent, &self.pod_ref.uid).await;
        let pod_dir = self.pod_dir();
        crate::volumes::unmount_all(&pod_dir);
        match std::fs::remove_dir_all(&pod_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %pod_dir.display(), error = %e, "cannot remove pod dir")
            }
        }
    }
}
