//! Environment variables from the downward API (`valueFrom.fieldRef`),
//! resolved against the pod as the kubelet does. `configMapKeyRef`,
//! `secretKeyRef` and `resourceFieldRef` are not resolved yet.

use k8s_openapi::api::core::v1::{Container, Pod};

/// The value of a `fieldRef` path, or `None` if unsupported.
pub fn field_value(pod: &Pod, path: &str, host_ip: &str, pod_ip: Option<&str>) -> Option<String> {
    let meta = &pod.metadata;
    if let Some(key) = path
        .strip_prefix("metadata.labels['")
        .and_then(|k| k.strip_suffix("']"))
    {
        return meta.labels.as_ref()?.get(key).cloned();
    }
    if let Some(key) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|k| k.strip_suffix("']"))
    {
        return meta.annotations.as_ref()?.get(key).cloned();
    }
    let spec = pod.spec.as_ref();
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.hostIP" | "status.hostIPs" => Some(host_ip.into()),
        "status.podIP" | "status.podIPs" => pod_ip.map(str::to_string),
        _ => None,
    }
}

/// The container's `fieldRef` env vars, resolved, as name/value pairs.
pub fn field_refs(
    pod: &Pod,
    container: &Container,
    host_ip: &str,
    pod_ip: Option<&str>,
) -> Vec<(String, String)> {
    container
        .env
        .iter()
        .flatten()
        .filter_map(|var| {
            let path = &var.value_from.as_ref()?.field_ref.as_ref()?.field_path;
            Some((var.name.clone(), field_value(pod, path, host_ip, pod_ip)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn field_paths_resolve_against_the_pod() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        for (path, want) in [
            ("metadata.name", Some("p")),
            ("metadata.namespace", Some("ns")),
            ("metadata.labels['app']", Some("web")),
            ("status.hostIP", Some("10.0.0.1")),
            ("status.podIP", Some("10.88.0.2")),
            ("spec.unknown", None),
        ] {
            assert_eq!(
                field_value(&pod, path, "10.0.0.1", Some("10.88.0.2")).as_deref(),
                want,
                "{path}"
            );
        }
    }
}
