//! Deployment status and conditions (`sync.go` `calculateStatus`,
//! `progress.go` `syncRolloutStatus`), in the form `kubectl rollout status`
//! reads: observedGeneration, updated/available counts and the
//! `Progressing` condition's reason.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::rollout::Sync;
use super::util::{self, status_of};
use crate::Error;

fn condition(status: &DeploymentStatus, type_: &str) -> Option<DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Sets a condition, keeping `lastTransitionTime` when the status is
/// unchanged and `lastUpdateTime` when nothing changed at all.
fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(old) = conds.iter_mut().find(|o| o.type_ == c.type_) {
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
            if old.reason == c.reason && old.message == c.message {
                return;
            }
        }
        *old = c;
    } else {
        conds.push(c);
    }
}

fn cond(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    let now = Some(Time(jiff::Timestamp::now()));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: now.clone(),
        last_transition_time: now,
    }
}

impl Sync {
    pub fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let want = util::replicas(&self.d);
        let sum = |f: fn((i32, i32, i32)) -> i32| {
            self.sets.iter().map(|rs| f(status_of(rs))).sum::<i32>()
        };
        let available = sum(|s| s.2);
        let mut s = self.d.status.clone().unwrap_or_default();
        s.observed_generation = self.d.metadata.generation;
        s.replicas = Some(sum(|s| s.0));
        s.updated_replicas = Some(new.map_or(0, |n| status_of(&self.sets[n]).0));
        s.ready_replicas = Some(sum(|s| s.1));
        s.available_replicas = Some(available);
        s.unavailable_replicas = Some((want - available).max(0));
        let c = if available >= want - util::max_unavailable(&self.d) {
            cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
            )
        } else {
            cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
            )
        };
        set_condition(&mut s, c);
        s
    }

    /// Status without rollout progress (deleting or scaling).
    pub async fn sync_status(&mut self) -> Result<(), Error> {
        let new = self.new_index_public();
        self.sync_status_with(new).await
    }

    pub async fn sync_status_with(&mut self, new: Option<usize>) -> Result<(), Error> {
        let mut s = self.calculate_status(new);
        let paused = self
            .d
            .spec
            .as_ref()
            .and_then(|sp| sp.paused)
            .unwrap_or(false);
        if paused {
            set_condition(
                &mut s,
                cond(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused".into(),
                ),
            );
        } else if condition(&s, "Progressing")
            .is_some_and(|c| c.reason.as_deref() == Some("DeploymentPaused"))
        {
            set_condition(
                &mut s,
                cond(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed".into(),
                ),
            );
        }
        self.write(s).await
    }

    /// `getNewReplicaSet` in `sync.go`: creating the new set is progress,
    /// recorded at once. Otherwise a rollout whose first look already saw the
    /// new set's pods would find no progress to record, keep the finished
    /// rollout's `NewReplicaSetAvailable`, and never time out.
    pub async fn record_new_replica_set(&mut self, name: &str) -> Result<(), Error> {
        let mut s = self.d.status.clone().unwrap_or_default();
        set_condition(
            &mut s,
            cond(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
            ),
        );
        self.write(s).await
    }

    /// Status with the `Progressing` condition (`syncRolloutStatus`).
    pub async fn sync_rollout_status(&mut self, new: Option<usize>) -> Result<(), Error> {
        let old = self.d.status.clone().unwrap_or_default();
        let mut s = self.calculate_status(new);
        let want = util::replicas(&self.d);
        let name = new.map(|n| self.sets[n].name_any()).unwrap_or_default();
        let complete = s.updated_replicas == Some(want)
            && s.replicas == Some(want)
            && s.available_replicas == Some(want);
        let old_pods =
            |x: &DeploymentStatus| x.replicas.unwrap_or(0) - x.updated_replicas.unwrap_or(0);
        let progressing = s.updated_replicas > old.updated_replicas
            || old_pods(&s) < old_pods(&old)
            || s.ready_replicas > old.ready_replicas
            || s.available_replicas > old.available_replicas
            || condition(&old, "Progressing").is_none();
        let deadline = self
            .d
            .spec
            .as_ref()
            .and_then(|sp| sp.progress_deadline_seconds)
            .unwrap_or(600);
        let prev = condition(&s, "Progressing");
        if new.is_some() && complete {
            set_condition(
                &mut s,
                cond(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{name}\" has successfully progressed."),
                ),
            );
        } else if progressing {
            let mut c = cond(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{name}\" is progressing."),
            );
            // Kubernetes refreshes lastUpdateTime on every progress step so
            // the deadline counts from the last one.
            if let Some(p) = prev.as_ref().filter(|p| p.status == "True") {
                c.last_transition_time = p.last_transition_time.clone();
            }
            let conds = s.conditions.get_or_insert_with(Vec::new);
            conds.retain(|x| x.type_ != "Progressing");
            conds.push(c);
        } else if prev.as_ref().is_some_and(|p| {
            p.reason.as_deref() != Some("NewReplicaSetAvailable")
                && p.last_update_time.as_ref().is_some_and(|t| {
                    t.0.as_second() + i64::from(deadline) < jiff::Timestamp::now().as_second()
                })
        }) {
            set_condition(
                &mut s,
                cond(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    format!("ReplicaSet \"{name}\" has timed out progressing."),
                ),
            );
        }
        self.write(s).await
    }

    async fn write(&mut self, s: DeploymentStatus) -> Result<(), Error> {
        if self.d.status.as_ref() == Some(&s) {
            return Ok(());
        }
        let api: Api<Deployment> = Api::namespaced(
            self.ctx.client.clone(),
            &self.d.namespace().unwrap_or_default(),
        );
        match api
            .patch_status(
                &self.d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": s})),
            )
            .await
        {
            Ok(d) => {
                self.d.status = d.status;
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
