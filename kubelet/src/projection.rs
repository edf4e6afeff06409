//! The file payloads of the API-backed volumes: `configMap`, `secret`,
//! `downwardAPI` and `projected` (whose sources are those three plus
//! `serviceAccountToken`), with Kubernetes' modes (`defaultMode` 0644,
//! per-item `mode`) and messages (`configmap "x" not found`). The payload
//! is then written by the [atomic writer](crate::atomic_writer).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, ProjectedVolumeSource, Secret,
};
use kube::{Api, Client};

use crate::atomic_writer::{FileProjection, Payload};

/// `DownwardAPIVolumeSourceDefaultMode` and friends: 0644.
pub const DEFAULT_MODE: i32 = 0o644;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("cannot get {kind} {name:?}: {source}")]
    Fetch {
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Kubernetes' wording, as `kubectl describe` shows it.
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: &'static str, name: String },
    #[error("configmap references non-existent config key: {key}")]
    MissingConfigMapKey { key: String },
    #[error("references non-existent secret key: {key}")]
    MissingSecretKey { key: String },
    #[error("unsupported fieldPath: {0}")]
    UnsupportedField(String),
    #[error(
        "resourceFieldRef {resource} of container {container:?}: unknown container or resource"
    )]
    BadResource { container: String, resource: String },
    #[error(transparent)]
    Token(#[from] crate::tokens::TokenError),
}

/// A configMap's or secret's data as bytes; `None` when it does not exist.
pub async fn object_data(
    client: &Client,
    namespace: &str,
    kind: &'static str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, ProjectionError> {
    let fetch = |source| ProjectionError::Fetch {
        kind,
        name: name.into(),
        source: Box::new(source),
    };
    if kind == "configmap" {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        Ok(api.get_opt(name).await.map_err(fetch)?.map(|cm| {
            let mut data: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            data.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            data
        }))
    } else {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        Ok(api.get_opt(name).await.map_err(fetch)?.map(|s| {
            let mut data: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            data.extend(
                s.string_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes())),
            );
            data
        }))
    }
}

fn mode_of(mode: Option<i32>, default: i32) -> u32 {
    (mode.unwrap_or(default) & 0o7777) as u32
}

/// The files of a configMap or secret source: every key, or `items`
/// (`optional` skips what is missing, as Kubernetes does).
pub fn key_files(
    kind: &'static str,
    data: Option<&BTreeMap<String, Vec<u8>>>,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: i32,
) -> Result<Payload, ProjectionError> {
    let Some(data) = data else {
        return if optional {
            Ok(Payload::new())
        } else {
            Err(ProjectionError::NotFound {
                kind,
                name: name.into(),
            })
        };
    };
    let mut out = Payload::new();
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        for (k, v) in data {
            out.insert(
                k.clone(),
                FileProjection {
                    data: v.clone(),
                    mode: mode_of(None, default_mode),
                },
            );
        }
        return Ok(out);
    };
    for item in items {
        match data.get(&item.key) {
            Some(v) => {
                out.insert(
                    item.path.clone(),
                    FileProjection {
                        data: v.clone(),
                        mode: mode_of(item.mode, default_mode),
                    },
                );
            }
            None if optional => {}
            None if kind == "configmap" => {
                return Err(ProjectionError::MissingConfigMapKey {
                    key: item.key.clone(),
                });
            }
            None => {
                return Err(ProjectionError::MissingSecretKey {
                    key: item.key.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// `fieldpath.FormatMap`: sorted `key="value"` lines, Go-quoted, no
/// trailing newline.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `%q` for the strings labels and annotations hold.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One downwardAPI item's content: the fields a volume may project
/// (metadata only, as Kubernetes validates) or a container's resource.
pub fn downward_value(pod: &Pod, item: &DownwardAPIVolumeFile) -> Result<String, ProjectionError> {
    if let Some(field) = &item.field_ref {
        let meta = &pod.metadata;
        return match field.field_path.as_str() {
            "metadata.labels" => Ok(format_map(meta.labels.as_ref())),
            "metadata.annotations" => Ok(format_map(meta.annotations.as_ref())),
            path @ ("metadata.name" | "metadata.namespace" | "metadata.uid") => {
                Ok(crate::env::field_value(pod, path, "", None).unwrap_or_default())
            }
            path if path.starts_with("metadata.labels['")
                || path.starts_with("metadata.annotations['") =>
            {
                Ok(crate::env::field_value(pod, path, "", None).unwrap_or_default())
            }
            other => Err(ProjectionError::UnsupportedField(other.into())),
        };
    }
    if let Some(r) = &item.resource_field_ref {
        let container_name = r.container_name.clone().unwrap_or_default();
        let bad = || ProjectionError::BadResource {
            container: container_name.clone(),
            resource: r.resource.clone(),
        };
        let container = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == container_name)
            .ok_or_else(bad)?;
        let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
        return crate::env::resource_value(container, &r.resource, divisor).ok_or_else(bad);
    }
    Ok(String::new())
}

/// The files of downwardAPI `items`.
pub fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
) -> Result<Payload, ProjectionError> {
    let mut out = Payload::new();
    for item in items {
        out.insert(
            item.path.clone(),
            FileProjection {
                data: downward_value(pod, item)?.into_bytes(),
                mode: mode_of(item.mode, default_mode),
            },
        );
    }
    Ok(out)
}

/// The payload of a projected volume, and when its token (if any) must be
/// refreshed, in seconds since the epoch.
pub async fn projected(
    client: &Client,
    pod: &Pod,
    source: &ProjectedVolumeSource,
) -> Result<(Payload, Option<i64>), ProjectionError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let default_mode = source.default_mode.unwrap_or(DEFAULT_MODE);
    let mut out = Payload::new();
    let mut refresh_at = None;
    for projection in source.sources.iter().flatten() {
        if let Some(cm) = &projection.config_map {
            let data = object_data(client, &namespace, "configmap", &cm.name).await?;
            out.extend(key_files(
                "configmap",
                data.as_ref(),
                &cm.name,
                cm.items.as_deref(),
                cm.optional.unwrap_or(false),
                default_mode,
            )?);
        }
        if let Some(secret) = &projection.secret {
            let data = object_data(client, &namespace, "secret", &secret.name).await?;
            out.extend(key_files(
                "secret",
                data.as_ref(),
                &secret.name,
                secret.items.as_deref(),
                secret.optional.unwrap_or(false),
                default_mode,
            )?);
        }
        if let Some(downward) = &projection.downward_api {
            out.extend(downward_files(
                pod,
                downward.items.as_deref().unwrap_or_default(),
                default_mode,
            )?);
        }
        if let Some(token) = &projection.service_account_token {
            let issued = crate::tokens::request(client, pod, token).await?;
            refresh_at =
                Some(refresh_at.map_or(issued.refresh_at, |r: i64| r.min(issued.refresh_at)));
            out.insert(
                token.path.clone(),
                FileProjection {
                    data: issued.token.into_bytes(),
                    mode: mode_of(None, default_mode),
                },
            );
        }
    }
    Ok((out, refresh_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ])
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn keys_become_files_with_kubernetes_modes_and_messages() {
        let all = key_files("configmap", Some(&data()), "cm", None, false, 0o644).expect("files");
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(all["a"].mode, 0o644);
        let items = [item("b", "dir/b", Some(0o400))];
        let some =
            key_files("secret", Some(&data()), "s", Some(&items), false, 0o644).expect("files");
        assert_eq!(some["dir/b"].data, b"2");
        assert_eq!(some["dir/b"].mode, 0o400);
        let missing =
            key_files("configmap", None, "cfg", None, false, 0o644).expect_err("missing configmap");
        assert_eq!(missing.to_string(), "configmap \"cfg\" not found");
        assert!(
            key_files("configmap", None, "cfg", None, true, 0o644)
                .expect("optional")
                .is_empty()
        );
        let key = key_files(
            "configmap",
            Some(&data()),
            "cm",
            Some(&[item("z", "z", None)]),
            false,
            0o644,
        )
        .expect_err("missing key");
        assert_eq!(
            key.to_string(),
            "configmap references non-existent config key: z"
        );
    }

    #[test]
    fn downward_api_files_format_maps_like_kubernetes() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                         "labels": {"b": "two", "a": "one \"q\""}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}]},
        }))
        .expect("pod");
        let file = |field: Option<&str>, resource: Option<(&str, &str)>| DownwardAPIVolumeFile {
            path: "f".into(),
            field_ref: field.map(|f| k8s_openapi::api::core::v1::ObjectFieldSelector {
                field_path: f.into(),
                api_version: None,
            }),
            resource_field_ref: resource.map(|(c, r)| {
                k8s_openapi::api::core::v1::ResourceFieldSelector {
                    container_name: Some(c.into()),
                    resource: r.into(),
                    divisor: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                        "1Mi".into(),
                    )),
                }
            }),
            mode: None,
        };
        let value = |f| downward_value(&pod, &f).expect("value");
        assert_eq!(
            value(file(Some("metadata.labels"), None)),
            "a=\"one \\\"q\\\"\"\nb=\"two\""
        );
        assert_eq!(value(file(Some("metadata.namespace"), None)), "ns");
        assert_eq!(value(file(Some("metadata.labels['b']"), None)), "two");
        assert_eq!(value(file(None, Some(("c", "limits.memory")))), "64");
        assert!(downward_value(&pod, &file(Some("status.podIP"), None)).is_err());
        assert!(downward_value(&pod, &file(None, Some(("nope", "limits.memory")))).is_err());
    }
}
