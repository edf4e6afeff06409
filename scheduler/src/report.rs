//! Telling users why a pod is not scheduled, as kube-scheduler does: the
//! pod's `PodScheduled=False` condition (reason `Unschedulable` or
//! `SchedulerError`) and a `FailedScheduling` Warning Event, repeated
//! events counted on the same Event object.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
pub const REASON_SCHEDULER_ERROR: &str = "SchedulerError";
pub const EVENT_FAILED_SCHEDULING: &str = "FailedScheduling";
pub const EVENT_SCHEDULED: &str = "Scheduled";

/// (pod key, reason) → (event name, message, count).
type LastEvents = HashMap<(String, String), (String, String, i32)>;

/// The last event written per pod and reason, to count repeats.
#[derive(Default)]
pub struct Recorder {
    last: Mutex<LastEvents>,
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Whether the pod already carries this PodScheduled condition.
fn has_condition(pod: &Pod, reason: &str, message: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some(reason)
                    && c.message.as_deref() == Some(message)
            })
        })
}

/// Sets `PodScheduled=False` (and, after preemption, `nominatedNodeName`).
pub async fn set_unschedulable(
    client: &kube::Client,
    pod: &Pod,
    reason: &str,
    message: &str,
    nominated_node: Option<&str>,
) -> Result<(), kube::Error> {
    if has_condition(pod, reason, message) && nominated_node.is_none() {
        return Ok(());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let mut status = json!({"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": reason,
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": now(),
    }]});
    if let Some(n) = nominated_node {
        status["nominatedNodeName"] = json!(n);
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": status})),
    )
    .await
    .map(|_| ())
}

impl Recorder {
    /// Writes (or counts again) an Event about `pod`.
    pub async fn event(
        &self,
        client: &kube::Client,
        pod: &Pod,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let key = (format!("{ns}/{name}"), reason.to_string());
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        let previous = {
            let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            last.get(&key).cloned()
        };
        if let Some((event_name, last_message, count)) = previous
            && last_message == message
        {
            let patch = json!({"count": count + 1, "lastTimestamp": now()});
            if api
                .patch(&event_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .is_ok()
            {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                last.insert(key, (event_name, last_message, count + 1));
                return Ok(());
            }
        }
        let ts = jiff::Timestamp::now();
        let event_name = format!("{name}.{:x}", ts.as_nanosecond());
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(event_name.clone()),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(ns.clone()),
                name: Some(name.clone()),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some(crate::framework::config::DEFAULT_SCHEDULER_NAME.into()),
                host: None,
            }),
            reporting_component: Some(crate::framework::config::DEFAULT_SCHEDULER_NAME.into()),
            reporting_instance: Some(crate::framework::config::DEFAULT_SCHEDULER_NAME.into()),
            first_timestamp: Some(Time(ts)),
            last_timestamp: Some(Time(ts)),
            count: Some(1),
            ..Event::default()
        };
        api.create(&PostParams::default(), &ev).await?;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(key, (event_name, message.to_string(), 1));
        Ok(())
    }

    /// Drops the counters of a deleted pod.
    pub fn forget(&self, pod_key: &str) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.retain(|(k, _), _| k != pod_key);
    }
}
