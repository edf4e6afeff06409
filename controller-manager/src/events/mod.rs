//! Emits core/v1 Events (what `kubectl describe` and `kubectl get events`
//! read) as client-go's `record.EventRecorder` does: recording only queues
//! the event; a background sink passes it through the [`Correlator`]
//! (aggregation, deduplication, spam filter) and creates or updates it on
//! the API server. Recording never waits on the API server and never fails
//! a reconcile; when the queue is full the event is dropped, as client-go's
//! broadcaster drops them.

mod correlator;

pub use correlator::{Correlator, Outcome, event_key, event_name};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::json;
use tokio::sync::mpsc;

/// client-go's `maxQueuedEvents`.
const QUEUE: usize = 1000;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    component: &'static str,
}

impl Recorder {
    /// A recorder whose events name `component` as their source. Its sink
    /// runs until every clone of the recorder is dropped. Must be called
    /// inside a tokio runtime.
    pub fn new(client: Client, component: &'static str) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(sink(client, rx));
        Recorder { tx, component }
    }

    /// Records a `Normal` event about `obj`.
    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        message: String,
    ) {
        self.emit(obj, NORMAL, reason, message);
    }

    /// Records a `Warning` event about `obj`.
    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        message: String,
    ) {
        self.emit(obj, WARNING, reason, message);
    }

    /// Queues an event of `type_` (`Normal` or `Warning`) about `obj`.
    pub fn emit<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let event = self.make(obj, type_, reason, message, jiff::Timestamp::now());
        if let Err(e) = self.tx.try_send(event) {
            tracing::debug!(reason, error = %e, "event queue full; dropping the event");
        }
    }

    fn make<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: &str,
        reason: &str,
        message: String,
        now: jiff::Timestamp,
    ) -> Event {
        let meta = obj.meta();
        let name = meta.name.clone().unwrap_or_default();
        // Events about cluster-scoped objects live in `default`.
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        Event {
            metadata: ObjectMeta {
                name: Some(event_name(&name, now)),
                namespace: Some(ns),
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
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some(self.component.to_string()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some(self.component.to_string()),
            reporting_instance: None,
            ..Event::default()
        }
    }
}

/// Correlates queued events and writes them, one at a time (client-go's
/// `recordToSink`).
async fn sink(client: Client, mut rx: mpsc::Receiver<Event>) {
    let mut correlator = Correlator::default();
    while let Some(event) = rx.recv().await {
        let now = event
            .last_timestamp
            .as_ref()
            .map_or_else(jiff::Timestamp::now, |t| t.0);
        let written = match correlator.correlate(event, now) {
            Outcome::Skip => continue,
            Outcome::Create(e) => create(&client, e).await,
            Outcome::Update(e) => update(&client, e).await,
        };
        if let Some(e) = written {
            correlator.written(&e);
        }
    }
}

async fn create(client: &Client, mut event: Event) -> Option<Event> {
    let ns = event.metadata.namespace.clone().unwrap_or_default();
    event.metadata.resource_version = None;
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &event).await {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::warn!(reason = ?event.reason, error = %e, "cannot record event");
            None
        }
    }
}

/// Bumps count, lastTimestamp and message of an existing event; if it has
/// gone (deleted, or expired by its TTL) the event is created afresh.
async fn update(client: &Client, event: Event) -> Option<Event> {
    let ns = event.metadata.namespace.clone().unwrap_or_default();
    let name = event.metadata.name.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    let patch = json!({
        "count": event.count,
        "lastTimestamp": event.last_timestamp,
        "message": event.message,
    });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(e) => Some(e),
        Err(kube::Error::Api(s)) if s.code == 404 => create(client, event).await,
        Err(e) => {
            tracing::warn!(reason = ?event.reason, error = %e, "cannot update event");
            None
        }
    }
}

/// An error as Kubernetes prints it in event messages: a `Status`
/// error's message (`pods "x" is forbidden: ...`), else the error itself.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}
