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

use serde_json::Value;

const META: &str = r#""metadata":{"creationTimestamp":null}"#;
const POD_TEMPLATE: &str = r#"{"metadata":{"creationTimestamp":null},"spec":{"containers":null}}"#;

/// `(apiVersion, kind, zero object without metadata)`; metadata is the same
/// for every kind and added by [`zero_object`].
const ZERO: &[(&str, &str, &str)] = &[
    ("v1", "Pod", r#"{"spec":{"containers":null},"status":{}}"#),
    ("v1", "Namespace", r#"{"spec":{},"status":{}}"#),
    (
        "v1",
        "Node",
        r#"{"spec":{},"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":0}},"nodeInfo":{"architecture":"","bootID":"","containerRuntimeVersion":"","kernelVersion":"","kubeProxyVersion":"","kubeletVersion":"","machineID":"","operatingSystem":"","osImage":"","systemUUID":""}}}"#,
    ),
    (
        "v1",
        "Service",
        r#"{"spec":{},"status":{"loadBalancer":{}}}"#,
    ),
    ("v1", "Endpoints", "{}"),
    ("v1", "ConfigMap", "{}"),
    ("v1", "Secret", "{}"),
    ("v1", "ServiceAccount", "{}"),
    (
        "v1",
        "Event",
        r#"{"eventTime":null,"firstTimestamp":null,"involvedObject":{},"lastTimestamp":null,"reportingComponent":"","reportingInstance":"","source":{}}"#,
    ),
    ("v1", "PersistentVolume", r#"{"spec":{},"status":{}}"#),
    (
        "v1",
        "PersistentVolumeClaim",
        r#"{"spec":{"resources":{}},"status":{}}"#,
    ),
    (
        "apps/v1",
        "Deployment",
        r#"{"spec":{"selector":null,"strategy":{},"template":POD_TEMPLATE},"status":{}}"#,
    ),
    (
        "apps/v1",
        "ReplicaSet",
        r#"{"spec":{"selector":null,"template":POD_TEMPLATE},"status":{"replicas":0}}"#,
    ),
    (
        "apps/v1",
        "DaemonSet",
        r#"{"spec":{"selector":null,"template":POD_TEMPLATE,"updateStrategy":{}},"status":{"currentNumberScheduled":0,"desiredNumberScheduled":0,"numberMisscheduled":0,"numberReady":0}}"#,
    ),
    (
        "apps/v1",
        "StatefulSet",
        r#"{"spec":{"selector":null,"serviceName":"","template":POD_TEMPLATE,"updateStrategy":{}},"status":{"availableReplicas":0,"replicas":0}}"#,
    ),
    (
        "batch/v1",
        "Job",
        r#"{"spec":{"template":POD_TEMPLATE},"status":{}}"#,
    ),
    (
        "batch/v1",
        "CronJob",
        r#"{"spec":{"jobTemplate":{"metadata":{"creationTimestamp":null},"spec":{"template":POD_TEMPLATE}},"schedule":""},"status":{}}"#,
    ),
    ("coordination.k8s.io/v1", "Lease", r#"{"spec":{}}"#),
    (
        "discovery.k8s.io/v1",
        "EndpointSlice",
        r#"{"addressType":"","endpoints":null,"ports":null}"#,
    ),
    (
        "events.k8s.io/v1",
        "Event",
        r#"{"deprecatedFirstTimestamp":null,"deprecatedLastTimestamp":null,"deprecatedSource":{},"eventTime":null,"regarding":{}}"#,
    ),
    (
        "networking.k8s.io/v1",
        "Ingress",
        r#"{"spec":{},"status":{"loadBalancer":{}}}"#,
    ),
    ("networking.k8s.io/v1", "IngressClass", r#"{"spec":{}}"#),
    ("scheduling.k8s.io/v1", "PriorityClass", r#"{"value":0}"#),
];

/// The zero object of `apiVersion`/`kind`; the empty object for a kind
/// without a Go type here (custom resources are unstructured).
pub(crate) fn zero_object(api_version: &str, kind: &str) -> &'static Value {
    // In the order of `ZERO`.
    static TABLE: OnceLock<Vec<Value>> = OnceLock::new();
    static EMPTY: OnceLock<Value> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        ZERO.iter()
            .map(|&(_, _, rest)| {
                let text = rest.replace("POD_TEMPLATE", POD_TEMPLATE);
                let body = text.strip_prefix('{').unwrap_or(&text);
                let separator = if body == "}" { "" } else { "," };
                let json = format!("{{{META}{separator}{body}");
                // The table is ours and checked by a test; a typo would
                // only lose the `.` members of that kind.
                serde_json::from_str(&json).unwrap_or_else(|_| Value::Object(Default::default()))
            })
            .collect()
    });
    ZERO.iter()
        .position(|&(v, k, _)| v == api_version && k == kind)
        .and_then(|i| table.get(i))
        .unwrap_or_else(|| EMPTY.get_or_init(|| Value::Object(Default::default())))
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
        for &(api_version, kind, _) in ZERO {
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
