//! Environment variables that are not literals: `envFrom` (configMaps and
//! secrets, with `prefix`) and `valueFrom` (`fieldRef` against the pod,
//! `resourceFieldRef` against the container's limits, `configMapKeyRef`,
//! `secretKeyRef`), resolved as the kubelet does: envFrom first, then
//! `env` in order, later names winning.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::{Api, Client};

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot get {kind} {name}: {source}")]
    Fetch {
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Kubernetes' wording: `configmap "x" not found`.
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: &'static str, name: String },
    /// `couldn't find key k in ConfigMap ns/name`, as the kubelet says it.
    #[error("couldn't find key {key} in {} {namespace}/{name}", if *.kind == "configmap" { "ConfigMap" } else { "Secret" })]
    MissingKey {
        kind: &'static str,
        namespace: String,
        name: String,
        key: String,
    },
}

/// A configMap's or secret's data as strings, `None` if it does not exist.
async fn object_data(
    client: &Client,
    namespace: &str,
    kind: &'static str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, EnvError> {
    let fetch = |source| EnvError::Fetch {
        kind,
        name: name.into(),
        source: Box::new(source),
    };
    if kind == "configmap" {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        Ok(api
            .get_opt(name)
            .await
            .map_err(fetch)?
            .map(|cm| cm.data.unwrap_or_default()))
    } else {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        Ok(api.get_opt(name).await.map_err(fetch)?.map(|secret| {
            let mut data: BTreeMap<String, String> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            data.extend(secret.string_data.unwrap_or_default());
            data
        }))
    }
}

/// A `resourceFieldRef` value: the container's limit (or request) in the
/// divisor's units, rounded up, as the kubelet reports it.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> Option<String> {
    let resources = container.resources.as_ref();
    let (kind, name) = resource.split_once('.')?;
    let map = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => None,
    };
    let quantity = map.and_then(|m| m.get(name)).map(|q| q.0.as_str());
    match name {
        "cpu" => {
            // Unset limits report the node's capacity in Kubernetes; we
            // report 1 core's worth, the minimum a container gets.
            let millis = quantity
                .and_then(crate::quantity::cpu_millis)
                .unwrap_or(1000);
            let divisor = divisor
                .and_then(crate::quantity::cpu_millis)
                .filter(|d| *d > 0)
                .unwrap_or(1000);
            Some(((millis + divisor - 1) / divisor).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let bytes = quantity.and_then(crate::quantity::memory_bytes)?;
            let divisor = divisor
                .and_then(crate::quantity::memory_bytes)
                .filter(|d| *d > 0)
                .unwrap_or(1);
            Some(((bytes + divisor - 1) / divisor).to_string())
        }
        _ => None,
    }
}

/// Every non-literal variable of `container`, in precedence order.
pub async fn resolve(
    client: &Client,
    pod: &Pod,
    container: &Container,
    host_ip: &str,
    pod_ip: Option<&str>,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out = Vec::new();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (kind, name, optional) = if let Some(r) = &source.config_map_ref {
            ("configmap", r.name.clone(), r.optional.unwrap_or(false))
        } else if let Some(r) = &source.secret_ref {
            ("secret", r.name.clone(), r.optional.unwrap_or(false))
        } else {
            continue;
        };
        match object_data(client, &namespace, kind, &name).await? {
            Some(data) => out.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v))),
            None if optional => {}
            None => return Err(EnvError::NotFound { kind, name }),
        }
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(field) = &from.field_ref {
            if let Some(value) = field_value(pod, &field.field_path, host_ip, pod_ip) {
                out.push((var.name.clone(), value));
            }
            continue;
        }
        if let Some(r) = &from.resource_field_ref {
            let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
            if let Some(value) = resource_value(container, &r.resource, divisor) {
                out.push((var.name.clone(), value));
            }
            continue;
        }
        let (kind, name, key, optional) = if let Some(r) = &from.config_map_key_ref {
            (
                "configmap",
                r.name.clone(),
                r.key.clone(),
                r.optional.unwrap_or(false),
            )
        } else if let Some(r) = &from.secret_key_ref {
            (
                "secret",
                r.name.clone(),
                r.key.clone(),
                r.optional.unwrap_or(false),
            )
        } else {
            continue;
        };
        let data = object_data(client, &namespace, kind, &name).await?;
        match data.as_ref().and_then(|d| d.get(&key)) {
            Some(value) => out.push((var.name.clone(), value.clone())),
            None if optional => {}
            None if data.is_none() => return Err(EnvError::NotFound { kind, name }),
            None => {
                return Err(EnvError::MissingKey {
                    kind,
                    namespace: namespace.clone(),
                    name,
                    key,
                });
            }
        }
    }
    Ok(out)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn messages_use_kubernetes_wording() {
        let missing = EnvError::NotFound {
            kind: "configmap",
            name: "x".into(),
        };
        assert_eq!(missing.to_string(), "configmap \"x\" not found");
        let key = EnvError::MissingKey {
            kind: "secret",
            namespace: "ns".into(),
            name: "s".into(),
            key: "k".into(),
        };
        assert_eq!(key.to_string(), "couldn't find key k in Secret ns/s");
    }

    #[test]
    fn resource_fields_use_limits_and_divisors_rounding_up() {
        use k8s_openapi::api::core::v1::ResourceRequirements;
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let c = Container {
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity("500m".into())),
                    ("memory".to_string(), Quantity("64Mi".into())),
                ])),
                ..Default::default()
            }),
            ..Container::default()
        };
        for (resource, divisor, want) in [
            ("limits.cpu", None, Some("1")),
            ("limits.cpu", Some("1m"), Some("500")),
            ("limits.memory", None, Some("67108864")),
            ("limits.memory", Some("1Mi"), Some("64")),
            ("limits.gpu", None, None),
        ] {
            assert_eq!(
                resource_value(&c, resource, divisor).as_deref(),
                want,
                "{resource}"
            );
        }
    }

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
