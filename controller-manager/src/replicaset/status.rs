//! ReplicaSet status (`calculateStatus` in Kubernetes'
//! `replica_set_utils.go`), written through the status subresource only
//! when it changed.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::pods::{is_available, is_ready};

const REPLICA_FAILURE: &str = "ReplicaFailure";

/// `manage_error` is why creating or deleting pods failed in this sync:
/// it becomes the `ReplicaFailure` condition (FailedCreate/FailedDelete),
/// which goes once a sync succeeds.
pub fn calculate(
    rs: &ReplicaSet,
    active: &[&Pod],
    manage_error: Option<String>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    let fully_labeled = count(&|p| {
        let labels = p.labels();
        template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    });
    let mut conditions = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let had_conditions = !conditions.is_empty();
    let has_failure = conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(message) if !has_failure => {
            let want = spec.and_then(|s| s.replicas).unwrap_or(1);
            let reason = if (active.len() as i32) < want {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_transition_time: Some(Time(now)),
            });
        }
        None if has_failure => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(count(&|p| is_ready(p))),
        available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        // An emptied list is kept as `[]` so the merge patch clears it.
        conditions: (had_conditions || !conditions.is_empty()).then_some(conditions),
        terminating_replicas: rs.status.as_ref().and_then(|s| s.terminating_replicas),
    }
}

fn same(a: &ReplicaSetStatus, b: &ReplicaSetStatus) -> bool {
    let z = |v: Option<i32>| v.unwrap_or(0);
    a.replicas == b.replicas
        && z(a.fully_labeled_replicas) == z(b.fully_labeled_replicas)
        && z(a.ready_replicas) == z(b.ready_replicas)
        && z(a.available_replicas) == z(b.available_replicas)
        && a.observed_generation == b.observed_generation
        && a.conditions.as_deref().unwrap_or_default()
            == b.conditions.as_deref().unwrap_or_default()
}

pub async fn write(
    client: &Client,
    rs: &ReplicaSet,
    status: &ReplicaSetStatus,
) -> Result<(), Error> {
    if rs.status.as_ref().is_some_and(|old| same(old, status)) {
        return Ok(());
    }
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &rs.namespace().unwrap_or_default());
    match api
        .patch_status(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(replicas: i32, conditions: serde_json::Value) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "rs"},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"replicas": 0, "conditions": conditions},
        }))
        .expect("rs")
    }

    fn failure(s: &ReplicaSetStatus) -> Option<(String, String)> {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .map(|c| {
                (
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                )
            })
    }

    #[test]
    fn a_failed_create_sets_replica_failure_until_a_sync_succeeds() {
        let now = jiff::Timestamp::now();
        let quota = "pods \"rs-x\" is forbidden: exceeded quota".to_string();
        let s = calculate(&rs(2, json!([])), &[], Some(quota.clone()), now);
        assert_eq!(failure(&s), Some(("FailedCreate".into(), quota)));
        let mut failed = rs(2, json!([]));
        failed.status = Some(s);
        let healed = calculate(&failed, &[], None, now);
        assert_eq!(failure(&healed), None);
        assert_eq!(healed.conditions, Some(vec![]), "cleared, not omitted");
        assert!(!same(failed.status.as_ref().expect("status"), &healed));
    }
}
