//! Emits core/v1 Events (what `kubectl describe` and `kubectl get events`
//! read), named `<object>.<hex nanoseconds>` as Kubernetes' recorder does.
//! Failing to record an event never fails a reconcile.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Resource};

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
}

impl Recorder {
    pub fn new(client: Client, component: &'static str) -> Recorder {
        Recorder { client, component }
    }

    /// Records a `Normal` event about `obj`.
    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        message: String,
    ) {
        let meta = obj.meta();
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let name = meta.name.clone().unwrap_or_default();
        let now = jiff::Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::kind(&()).into_owned()),
                name: Some(name),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some("Normal".into()),
            source: Some(EventSource {
                component: Some(self.component.to_string()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            reporting_component: Some(self.component.to_string()),
            reporting_instance: Some(self.component.to_string()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(reason, error = %e, "cannot record event");
        }
    }
}
