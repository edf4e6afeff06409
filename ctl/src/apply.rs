//! `fkctl apply -f FILE`: every document of a (multi-document) YAML or
//! JSON manifest is sent as a server-side apply patch (`kubectl apply
//! --server-side`), so the server merges it and records field ownership.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde::Deserialize;

use crate::CtlError;
use crate::discovery::Discovery;

/// The field manager recorded for fkctl's changes (kubectl uses `kubectl`).
pub const FIELD_MANAGER: &str = "fkctl";

/// The documents of a manifest, empty ones skipped; `path` names errors.
pub fn documents(path: &str, text: &str) -> Result<Vec<serde_json::Value>, CtlError> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(doc).map_err(|e| CtlError::Manifest {
            path: path.to_string(),
            index,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        // A `kind: List` carries its objects in `items`, as kubectl accepts.
        if value.get("kind").and_then(|k| k.as_str()) == Some("List") {
            out.extend(
                value
                    .get("items")
                    .and_then(|i| i.as_array())
                    .cloned()
                    .unwrap_or_default(),
            );
        } else {
            out.push(value);
        }
    }
    Ok(out)
}

/// Applies every object in `path`; returns kubectl's one line per object
/// (`pod/web serverside-applied`).
pub async fn apply(
    client: &kube::Client,
    discovery: &Discovery,
    path: &str,
    default_namespace: &str,
    force_conflicts: bool,
) -> Result<Vec<String>, CtlError> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|source| CtlError::Read {
        path: path.to_string(),
        source,
    })?;
    let mut lines = Vec::new();
    for (index, doc) in documents(path, &text)?.into_iter().enumerate() {
        let manifest_error = |message: String| CtlError::Manifest {
            path: path.to_string(),
            index,
            message,
        };
        let obj: DynamicObject =
            serde_json::from_value(doc.clone()).map_err(|e| manifest_error(e.to_string()))?;
        let types = obj
            .types
            .as_ref()
            .ok_or_else(|| manifest_error("apiVersion and kind must be set".into()))?;
        let resource = discovery
            .for_kind(&types.api_version, &types.kind)
            .ok_or_else(|| {
                manifest_error(format!(
                    "no matches for kind {:?} in version {:?}",
                    types.kind, types.api_version
                ))
            })?;
        let name = obj
            .metadata
            .name
            .clone()
            .ok_or_else(|| manifest_error("metadata.name must be set".into()))?;
        let ar = resource.api_resource();
        let api: Api<DynamicObject> = if resource.namespaced {
            let ns = obj
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(default_namespace);
            Api::namespaced_with(client.clone(), ns, &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = force_conflicts;
        api.patch(&name, &params, &Patch::Apply(&doc)).await?;
        lines.push(format!("{}/{name} serverside-applied", resource.display()));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_split_into_documents_skipping_empty_ones_and_unpacking_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
        let docs = documents("m.yaml", text).expect("valid");
        let names: Vec<&str> = docs
            .iter()
            .filter_map(|d| d["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, vec!["a", "b"]);
        let Err(e) = documents("m.yaml", "a: [1\n") else {
            panic!("broken YAML must be refused");
        };
        assert!(e.to_string().starts_with("m.yaml: document 0:"), "{e}");
    }
}
