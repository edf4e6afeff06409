//! Events the kubelet records about pods (`Unhealthy`, `Killing`,
//! `FailedPostStartHook`…), as core/v1 Events from `source.component:
//! kubelet`. Repeats of the same event (same object, field path, reason
//! and message) bump `count` and `lastTimestamp` of the first one, as
//! client-go's event correlator does, so a probe failing every second
//! does not flood the API. Recording never blocks the caller and never
//! fails it: a lost event is logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Remembered events beyond this are forgotten (a repeat then starts a new Event).
const MAX_REMEMBERED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an event is about: a pod, or one of its containers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Involved {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `spec.containers{name}` / `spec.initContainers{name}`.
    pub field_path: Option<String>,
}

impl Involved {
    /// Kubernetes' field path of a container.
    pub fn container(pod: &crate::containers::PodRef, container: &str, init: bool) -> Involved {
        let list = if init { "initContainers" } else { "containers" };
        Involved {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            field_path: Some(format!("spec.{list}{{{container}}}")),
        }
    }
}

type Key = (Involved, &'static str, String);

/// Records events for one node.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    node: String,
    seen: Arc<Mutex<HashMap<Key, (String, i32)>>>,
}

impl Recorder {
    pub fn new(client: Client, node: String) -> Recorder {
        Recorder {
            client,
            node,
            seen: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Records an event in the background.
    pub fn record(&self, about: Involved, kind: EventType, reason: &'static str, message: String) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.write(about.clone(), kind, reason, message).await {
                tracing::warn!(pod = %about.name, reason, error = %e, "cannot record event");
            }
        });
    }

    async fn write(
        &self,
        about: Involved,
        kind: EventType,
        reason: &'static str,
        message: String,
    ) -> Result<(), kube::Error> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &about.namespace);
        let now = Timestamp::now();
        let key = (about.clone(), reason, message.clone());
        let repeat = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.get_mut(&key).map(|(name, count)| {
                *count += 1;
                (name.clone(), *count)
            })
        };
        if let Some((name, count)) = repeat {
            let patch = json!({"count": count, "lastTimestamp": crate::status::seconds(now)});
            match events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Expired or deleted: start over with a new Event.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!("{}.{:x}", about.name, now.as_nanosecond());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(about.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(about.namespace.clone()),
                name: Some(about.name.clone()),
                uid: Some(about.uid.clone()),
                field_path: about.field_path.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(kind.as_str().into()),
            count: Some(1),
            first_timestamp: Some(crate::status::seconds(now)),
            last_timestamp: Some(crate::status::seconds(now)),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Event::default()
        };
        events.create(&PostParams::default(), &event).await?;
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(key, (name, 1));
        Ok(())
    }
}
