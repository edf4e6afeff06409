//! Renders the OpenAPI documents: one v3 document per group/version (what
//! `/openapi/v3/apis/<group>/<version>` serves), the v3 index, and the single
//! swagger 2.0 document of `/openapi/v2`.

use std::collections::BTreeMap;

use common::resources::{RESOURCES, ResourceInfo};
use serde_json::{Map, Value, json};

use super::paths::{Body, Operation, PRETTY, PathItem, QueryParam, path_items, tag};
use super::schemas::{self, Gvk, V3_REF_PREFIX};

const V2_REF_PREFIX: &str = "#/definitions/";
const RESPONSE_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const WATCH_RESPONSE_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// The `info` block; the version follows `/version`'s major.minor.
fn info() -> Value {
    json!({"title": "Kubernetes", "version": crate::discovery::GIT_VERSION})
}

/// `api/v1` for core, `apis/<group>/<version>` otherwise: the keys of the v3
/// index and the suffix of each document's URL.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Every group/version served, as `(group, version)`, core first.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Parses an index key back into `(group, version)`, for served ones only.
pub fn parse_gv_path(path: &str) -> Option<(&'static str, &'static str)> {
    group_versions()
        .into_iter()
        .find(|(g, v)| gv_path(g, v) == path)
}

fn resources_of(group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

/// The kinds whose schemas a set of resources needs: each kind, plus the
/// kinds their subresources speak.
fn kinds_of(resources: &[&ResourceInfo]) -> (Vec<Gvk>, Vec<Gvk>) {
    let mut kinds = Vec::new();
    let mut lists = Vec::new();
    for r in resources {
        let g = Gvk {
            group: r.group,
            version: r.version,
            kind: r.kind,
        };
        kinds.push(g);
        lists.push(g);
        for sub in r.subresources {
            let extra = match *sub {
                "scale" => Gvk {
                    group: "autoscaling",
                    version: "v1",
                    kind: "Scale",
                },
                "binding" => Gvk {
                    group: "",
                    version: "v1",
                    kind: "Binding",
                },
                _ => continue,
            };
            if !kinds.contains(&extra) {
                kinds.push(extra);
            }
        }
    }
    (kinds, lists)
}

/// The OpenAPI v3 document of one group/version, or `None` if not served.
pub fn v3_document(group: &str, version: &str) -> Option<Value> {
    let resources = resources_of(group, version);
    if resources.is_empty() {
        return None;
    }
    let (kinds, lists) = kinds_of(&resources);
    let mut defs = schemas::definitions(&kinds, &lists);
    defs.values_mut().for_each(schemas::wrap_refs_in_all_of);
    let items = path_items(&resources, &schemas::schema_name);
    let mut paths = Map::new();
    for item in &items {
        paths.insert(item.path.clone(), path_item_v3(item));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}
            }
        },
        "security": [{"BearerToken": []}],
    }))
}

/// The swagger 2.0 document covering every served group/version.
pub fn v2_document() -> Value {
    let resources: Vec<&ResourceInfo> = RESOURCES.iter().collect();
    let (kinds, lists) = kinds_of(&resources);
    let mut defs = schemas::definitions(&kinds, &lists);
    let mut paths = Map::new();
    for item in path_items(&resources, &schemas::schema_name) {
        paths.insert(item.path.clone(), path_item_v2(&item));
    }
    for def in defs.values_mut() {
        schemas::rewrite_refs(def, V3_REF_PREFIX, V2_REF_PREFIX);
    }
    let defs: BTreeMap<String, Value> = defs;
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths,
        "definitions": defs,
        "securityDefinitions": {
            "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}
        },
        "security": [{"BearerToken": []}],
    })
}

/// The `/openapi/v3` index, given each group/version's content hash.
pub fn v3_index(hashes: &[(String, String)]) -> Value {
    let mut paths = Map::new();
    for (key, hash) in hashes {
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// FNV-1a, hex: a stable content hash for the `?hash=` cache key (kubectl
/// keeps downloaded documents on disk keyed by that URL).
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016X}")
}

fn path_params(item: &PathItem, kind: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if item.named {
        out.push(("name", format!("name of the {kind}")));
    }
    if item.namespaced {
        out.push((
            "namespace",
            "object name and auth scope, such as for teams and projects".to_string(),
        ));
    }
    out
}

fn query_v3(p: &QueryParam) -> Value {
    json!({"name": p.name, "in": "query", "description": p.description, "schema": {"type": p.ty, "uniqueItems": true}})
}

fn query_v2(p: &QueryParam) -> Value {
    json!({"name": p.name, "in": "query", "description": p.description, "type": p.ty, "uniqueItems": true})
}

fn kind_of_path(item: &PathItem) -> &str {
    item.ops.first().map_or("", |o| o.gvk.kind)
}

fn path_item_v3(item: &PathItem) -> Value {
    let mut out = Map::new();
    for op in &item.ops {
        out.insert(op.method.into(), operation_v3(op));
    }
    let mut params: Vec<Value> = path_params(item, kind_of_path(item))
        .into_iter()
        .map(|(name, description)| json!({"name": name, "in": "path", "description": description, "required": true, "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    params.push(query_v3(&PRETTY));
    out.insert("parameters".into(), Value::Array(params));
    Value::Object(out)
}

fn response_types(op: &Operation) -> &'static [&'static str] {
    if op.action == "list" {
        WATCH_RESPONSE_TYPES
    } else {
        RESPONSE_TYPES
    }
}

fn operation_v3(op: &Operation) -> Value {
    let schema_ref = json!({"$ref": format!("{V3_REF_PREFIX}{}", op.response)});
    let content: Map<String, Value> = response_types(op)
        .iter()
        .map(|t| (t.to_string(), json!({"schema": schema_ref})))
        .collect();
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "OK", "content": content}),
    );
    for code in op.also {
        let description = if *code == "201" {
            "Created"
        } else {
            "Accepted"
        };
        responses.insert(
            code.to_string(),
            json!({"description": description, "content": content}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut out = json!({
        "tags": [tag(op.gvk.group, op.gvk.version)],
        "description": op.description,
        "operationId": op.operation_id,
        "parameters": op.params.iter().map(query_v3).collect::<Vec<_>>(),
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk.to_json(),
    });
    if let Some((body, schema)) = &op.body {
        let schema_ref = json!({"schema": {"$ref": format!("{V3_REF_PREFIX}{schema}")}});
        let (types, required): (&[&str], bool) = match body {
            Body::Patch => (PATCH_TYPES, true),
            Body::DeleteOptions => (&["*/*"], false),
            Body::Object => (&["*/*"], true),
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), schema_ref.clone()))
            .collect();
        out["requestBody"] = json!({"content": content, "required": required});
    }
    out
}

fn path_item_v2(item: &PathItem) -> Value {
    let mut out = Map::new();
    for op in &item.ops {
        out.insert(op.method.into(), operation_v2(op));
    }
    let mut params: Vec<Value> = path_params(item, kind_of_path(item))
        .into_iter()
        .map(|(name, description)| json!({"name": name, "in": "path", "description": description, "required": true, "type": "string", "uniqueItems": true}))
        .collect();
    params.push(query_v2(&PRETTY));
    out.insert("parameters".into(), Value::Array(params));
    Value::Object(out)
}

fn operation_v2(op: &Operation) -> Value {
    let schema_ref = json!({"$ref": format!("{V2_REF_PREFIX}{}", op.response)});
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": "OK", "schema": schema_ref}),
    );
    for code in op.also {
        let description = if *code == "201" {
            "Created"
        } else {
            "Accepted"
        };
        responses.insert(
            code.to_string(),
            json!({"description": description, "schema": schema_ref}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut params: Vec<Value> = Vec::new();
    let mut consumes: &[&str] = &["*/*"];
    if let Some((body, schema)) = &op.body {
        if *body == Body::Patch {
            consumes = PATCH_TYPES;
        }
        params.push(json!({"name": "body", "in": "body", "required": *body != Body::DeleteOptions, "schema": {"$ref": format!("{V2_REF_PREFIX}{schema}")}}));
    }
    params.extend(op.params.iter().map(query_v2));
    json!({
        "tags": [tag(op.gvk.group, op.gvk.version)],
        "description": op.description,
        "operationId": op.operation_id,
        "consumes": consumes,
        "produces": response_types(op),
        "schemes": ["https"],
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk.to_json(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| all_refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| all_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn v3_patch_operations_satisfy_kubectls_query_param_verifier() {
        let doc = v3_document("apps", "v1").expect("apps/v1");
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let params = patch["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(
            patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_some()
        );
    }

    #[test]
    fn v3_documents_resolve_every_ref_inside_themselves() {
        for (g, v) in group_versions() {
            let doc = v3_document(g, v).expect("served");
            let mut refs = Vec::new();
            all_refs(&doc, &mut refs);
            for r in refs {
                let name = r.strip_prefix(V3_REF_PREFIX).expect("v3 ref");
                assert!(
                    doc["components"]["schemas"].get(name).is_some(),
                    "{g}/{v}: dangling {r}"
                );
            }
        }
        assert!(v3_document("apps", "v2").is_none());
    }

    #[test]
    fn v2_document_uses_definitions_refs_and_body_parameters() {
        let doc = v2_document();
        assert_eq!(doc["swagger"], "2.0");
        let mut refs = Vec::new();
        all_refs(&doc, &mut refs);
        for r in &refs {
            let name = r
                .strip_prefix(V2_REF_PREFIX)
                .unwrap_or_else(|| panic!("v2 ref {r}"));
            assert!(doc["definitions"].get(name).is_some(), "dangling {r}");
        }
        let create = &doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"];
        let params = create["parameters"].as_array().expect("parameters");
        assert_eq!(params[0]["in"], "body");
        assert_eq!(
            params[0]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Pod"
        );
        assert!(params.iter().any(|p| p["name"] == "fieldValidation"));
        assert_eq!(
            doc["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
    }

    #[test]
    fn index_keys_are_group_version_paths() {
        assert_eq!(gv_path("", "v1"), "api/v1");
        assert_eq!(gv_path("apps", "v1"), "apis/apps/v1");
        assert_eq!(parse_gv_path("apis/batch/v1"), Some(("batch", "v1")));
        assert_eq!(parse_gv_path("apis/batch"), None);
        let index = v3_index(&[("api/v1".into(), "AB".into())]);
        assert_eq!(
            index,
            json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=AB"}}})
        );
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }
}
