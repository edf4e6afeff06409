//! Decoding objects without `metadata.managedFields`, for watches whose
//! readers never look at them (controllers, the scheduler, the kubelet).
//!
//! The managed fields are close to half of a created pod's JSON and most
//! of the work of decoding it. kube-controller-manager and kube-scheduler
//! drop them from their informers' caches after decoding (client-go's
//! `TransformStripManagedFields`); skipping them while decoding saves the
//! decoding too. `Lean<K>` is `K` decoded so, for any `K`, by
//! [`common::lean::without_managed_fields`].

use std::borrow::Cow;
use std::fmt::Debug;

use futures::{Stream, StreamExt};
use kube::api::ObjectMeta;
use kube::runtime::watcher as runtime;
use kube::{Api, Resource};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};

/// `K`, decoded without `metadata.managedFields`.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct Lean<K>(pub K);

impl<'de, K: Deserialize<'de>> Deserialize<'de> for Lean<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        common::lean::without_managed_fields(deserializer).map(Lean)
    }
}

impl<K: Resource> Resource for Lean<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

/// `kube_runtime`'s watcher over `api`, its objects decoded without their
/// managed fields.
pub fn watcher<K>(
    api: Api<Lean<K>>,
    config: runtime::Config,
) -> impl Stream<Item = Result<runtime::Event<K>, runtime::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    runtime::watcher(api, config).map(|e| e.map(unwrap))
}

fn unwrap<K>(event: runtime::Event<Lean<K>>) -> runtime::Event<K> {
    use runtime::Event;
    match event {
        Event::Apply(Lean(o)) => Event::Apply(o),
        Event::Delete(Lean(o)) => Event::Delete(o),
        Event::Init => Event::Init,
        Event::InitApply(Lean(o)) => Event::InitApply(o),
        Event::InitDone => Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::Lean;
    use k8s_openapi::api::core::v1::Pod;
    use kube::core::ObjectList;
    use kube::core::WatchEvent;
    use serde_json::json;

    /// A pod with managed fields (the adapter's own cases are tested in
    /// `common::lean`; here, that `Lean` uses it inside events and lists).
    fn pod() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-1", "managedFields": [{"manager": "kubectl"}]},
            "status": {"phase": "Running"}
        })
    }

    #[test]
    fn watch_events_and_lists_decode_lean() {
        let event = json!({"type": "MODIFIED", "object": pod()}).to_string();
        match serde_json::from_str::<WatchEvent<Lean<Pod>>>(&event).expect("decodes") {
            WatchEvent::Modified(Lean(p)) => {
                assert_eq!(p.metadata.managed_fields, None);
                assert_eq!(p.metadata.name.as_deref(), Some("web-1"));
            }
            other => panic!("unexpected event {other:?}"),
        }
        // The object first, then its type: serde buffers the object.
        let late_tag = json!({"object": pod(), "type": "ADDED"}).to_string();
        let Ok(WatchEvent::Added(Lean(p))) =
            serde_json::from_str::<WatchEvent<Lean<Pod>>>(&late_tag)
        else {
            panic!("not decoded as ADDED");
        };
        assert_eq!(p.metadata.managed_fields, None);
        assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Running"));
        let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7"},
            "items": [pod(), pod()]});
        let list: ObjectList<Lean<Pod>> = serde_json::from_value(list).expect("decodes");
        assert_eq!(list.items.len(), 2);
        assert!(
            list.items
                .iter()
                .all(|p| p.0.metadata.managed_fields.is_none())
        );
    }

    #[test]
    fn bad_input_is_still_an_error() {
        let wrong = json!({"metadata": {"name": 5}}).to_string();
        assert!(serde_json::from_str::<Lean<Pod>>(&wrong).is_err());
        assert!(serde_json::from_str::<Lean<Pod>>("{\"metadata\": {").is_err());
    }
}
