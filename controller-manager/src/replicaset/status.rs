//! ReplicaSet status (`calculateStatus` in Kubernetes'
//! `replica_set_utils.go`), written through the status subresource only
//! when it changed.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::Error;
use crate::pods::{is_available, is_ready};

pub fn calculate(rs: &ReplicaSet, active: &[&Pod], now: jiff::Timestamp) -> ReplicaSetStatus {
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
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(count(&|p| is_ready(p))),
        available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
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
