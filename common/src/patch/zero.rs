//! The zero object of each built-in kind, as Kubernetes' field manager sees
//! it: the Go struct `New()` returns, converted to JSON. A create is
//! recorded as the change from this object to the new one
//! (`scope.Creater.New` in `handlers/create.go`), so a field the zero object
//! already has (`spec`, `spec.containers: null`, `spec.template`) is not
//! itself owned by the creator, while one it lacks (`metadata.labels`,
//! `spec.strategy.rollingUpdate`) is: that is the `".": {}` beside its
//! children in `managedFields`.
//!
//! Derived from `k8s.io/api`'s `types.go` by Go's JSON rules: a field is
//! present unless it is `omitempty` and zero; structs are never omitted
//! (so they recurse); nil pointers, slices and maps are `null` when not
//! `omitempty`; `metav1.Time` is `null`. Kinds not listed (custom
//! resources) start from the empty object.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// `(apiVersion, kind, zero object)` of every built-in kind served.
fn table() -> Vec<(&'static str, &'static str, Value)> {
    let meta = || json!({"creationTimestamp": null});
    let pod_template = || json!({"metadata": meta(), "spec": {"containers": null}});
    let node_info = json!({"architecture": "", "bootID": "", "containerRuntimeVersion": "",
        "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "",
        "operatingSystem": "", "osImage": "", "systemUUID": ""});
    let kinds = [
        (
            "v1",
            "Pod",
            json!({"spec": {"containers": null}, "status": {}}),
        ),
        ("v1", "Namespace", json!({"spec": {}, "status": {}})),
        (
            "v1",
            "Node",
            json!({"spec": {}, "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": node_info}}),
        ),
        (
            "v1",
            "Service",
            json!({"spec": {}, "status": {"loadBalancer": {}}}),
        ),
        ("v1", "Endpoints", json!({})),
        ("v1", "ConfigMap", json!({})),
        ("v1", "Secret", json!({})),
        ("v1", "ServiceAccount", json!({})),
        (
            "v1",
            "Event",
            json!({"eventTime": null, "firstTimestamp": null, "involvedObject": {},
                "lastTimestamp": null, "reportingComponent": "", "reportingInstance": "",
                "source": {}}),
        ),
        ("v1", "PersistentVolume", json!({"spec": {}, "status": {}})),
        (
            "v1",
            "PersistentVolumeClaim",
            json!({"spec": {"resources": {}}, "status": {}}),
        ),
        (
            "apps/v1",
            "Deployment",
            json!({"spec": {"selector": null, "strategy": {}, "template": pod_template()},
                "status": {}}),
        ),
        (
            "apps/v1",
            "ReplicaSet",
            json!({"spec": {"selector": null, "template": pod_template()},
                "status": {"replicas": 0}}),
        ),
        (
            "apps/v1",
            "DaemonSet",
            json!({"spec": {"selector": null, "template": pod_template(), "updateStrategy": {}},
                "status": {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                    "numberMisscheduled": 0, "numberReady": 0}}),
        ),
        (
            "apps/v1",
            "StatefulSet",
            json!({"spec": {"selector": null, "serviceName": "", "template": pod_template(),
                "updateStrategy": {}}, "status": {"availableReplicas": 0, "replicas": 0}}),
        ),
        (
            "batch/v1",
            "Job",
            json!({"spec": {"template": pod_template()}, "status": {}}),
        ),
        (
            "batch/v1",
            "CronJob",
            json!({"spec": {"jobTemplate": {"metadata": meta(),
                "spec": {"template": pod_template()}}, "schedule": ""}, "status": {}}),
        ),
        ("coordination.k8s.io/v1", "Lease", json!({"spec": {}})),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            json!({"addressType": "", "endpoints": null, "ports": null}),
        ),
        (
            "events.k8s.io/v1",
            "Event",
            json!({"deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null,
                "deprecatedSource": {}, "eventTime": null, "regarding": {}}),
        ),
        (
            "networking.k8s.io/v1",
            "Ingress",
            json!({"spec": {}, "status": {"loadBalancer": {}}}),
        ),
        ("networking.k8s.io/v1", "IngressClass", json!({"spec": {}})),
        ("scheduling.k8s.io/v1", "PriorityClass", json!({"value": 0})),
    ];
    kinds
        .into_iter()
        .map(|(api_version, kind, mut zero)| {
            // Every kind's metadata is the same ObjectMeta.
            if let Value::Object(m) = &mut zero {
                m.insert("metadata".into(), meta());
            }
            (api_version, kind, zero)
        })
        .collect()
}

/// The zero object of `apiVersion`/`kind`; the empty object for a kind
/// without a Go type here (custom resources are unstructured).
pub(crate) fn zero_object(api_version: &str, kind: &str) -> &'static Value {
    static TABLE: OnceLock<Vec<(&str, &str, Value)>> = OnceLock::new();
    static EMPTY_OBJECT: OnceLock<Value> = OnceLock::new();
    TABLE
        .get_or_init(table)
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, zero)| zero)
        .unwrap_or_else(|| EMPTY_OBJECT.get_or_init(|| json!({})))
}

/// [`zero_object`] of the kind `obj` names.
pub(crate) fn zero_of(obj: &Value) -> &'static Value {
    let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default();
    zero_object(text("apiVersion"), text("kind"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_zero_object_parses_with_its_metadata() {
        for (api_version, kind, _) in table() {
            let zero = zero_object(api_version, kind);
            assert_eq!(
                zero["metadata"],
                json!({"creationTimestamp": null}),
                "{api_version} {kind}: {zero}"
            );
        }
        assert_eq!(
            zero_object("apps/v1", "Deployment")["spec"],
            json!({
                "selector": null,
                "strategy": {},
                "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}
            })
        );
        assert_eq!(
            zero_object("v1", "ConfigMap"),
            &json!({"metadata": {"creationTimestamp": null}})
        );
        assert_eq!(zero_object("example.com/v1", "Widget"), &json!({}));
        assert_eq!(
            zero_of(&json!({"apiVersion": "events.k8s.io/v1", "kind": "Event"}))["regarding"],
            json!({})
        );
    }
}
