//! The managed fields of a create, written straight as JSON text.
//!
//! A create records one `Update` entry that owns every field the new object
//! sets (`compare(&{}, new).added` minus what no manager owns). Building it
//! as a tree of JSON maps, encoding it and freeing it was the largest part
//! of a pod create's work in the API server; this writes the same bytes
//! from one walk, without building the tree. The API server splices them
//! into the encoded object; [`super::update_managed_fields`] parses them
//! into the tree for the creates it records.

use serde_json::{Map, Value};

use super::apply::ManagerRequest;
use super::managed::STRIPPED_METADATA;
use super::schema::{self, Field, Shape, TypeHint};
use super::typed::{index_items, is_granular_list, is_granular_map};

/// The JSON of `metadata.managedFields` that [`super::update_managed_fields`]
/// records for a create of `new` by `req` (no subresource, and `new` without
/// managed fields of its own), byte for byte as encoding that entry gives;
/// `None` when the create records nothing.
pub fn created_managed_fields(new: &Value, req: &ManagerRequest<'_>) -> Option<Vec<u8>> {
    let Value::Object(top) = new else {
        return None;
    };
    let kind = top.get("kind").and_then(Value::as_str).unwrap_or_default();
    let root = TypeHint::for_kind(kind).root();
    let mut fields = Vec::with_capacity(2048);
    fields.push(b'{');
    let mut first = true;
    for (key, child) in top {
        let field = schema::field(root.node, key);
        match key.as_str() {
            // The strategies reset status on create; the field manager
            // ignores it for ownership.
            "status" => {}
            "metadata" => {
                let mark = (fields.len(), first);
                separate(&mut fields, &mut first);
                member_key(&mut fields, "f:", key);
                fields.push(b'{');
                let written = match child {
                    Value::Object(m) if is_granular_map(field, child) => {
                        members(m, field, &mut fields, |k, v| {
                            STRIPPED_METADATA.contains(&k) && !is_granular(v, field, k)
                        })
                    }
                    _ => false,
                };
                if written {
                    fields.push(b'}');
                } else {
                    // Only unowned members: the entry goes too.
                    fields.truncate(mark.0);
                    first = mark.1;
                }
            }
            // Identity is owned by no manager: a member is dropped, not
            // what lies below it.
            "apiVersion" | "kind" if !is_granular(child, root, key) => {}
            _ => {
                separate(&mut fields, &mut first);
                member_key(&mut fields, "f:", key);
                if !entry(child, field, &mut fields) {
                    fields.extend_from_slice(b"{}");
                }
            }
        }
    }
    if first {
        return None;
    }
    fields.push(b'}');
    let mut out = Vec::with_capacity(fields.len() + 160);
    out.extend_from_slice(b"[{\"apiVersion\":");
    write_key(&mut out, "", req.api_version);
    out.extend_from_slice(b",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":");
    out.extend_from_slice(&fields);
    out.extend_from_slice(b",\"manager\":");
    write_key(&mut out, "", req.manager);
    out.extend_from_slice(b",\"operation\":\"Update\",\"time\":");
    write_key(&mut out, "", req.now);
    out.extend_from_slice(b"}]");
    Some(out)
}

/// Whether `parent`'s child `key` with value `v` has entries below it.
fn is_granular(v: &Value, parent: Field, key: &str) -> bool {
    let field = schema::field(parent.node, key);
    match v {
        Value::Object(m) => !m.is_empty() && is_granular_map(field, v),
        Value::Array(list) => {
            !list.is_empty() && is_granular_list(field, v) && index_items(field, list).is_some()
        }
        _ => false,
    }
}

/// Writes the entry `{...}` of a granular `v` and answers true; writes
/// nothing and answers false for a leaf, whose entry is `{}`.
fn entry(v: &Value, field: Field, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Object(m) if !m.is_empty() && is_granular_map(field, v) => {
            out.push(b'{');
            members(m, field, out, |_, _| false);
            out.push(b'}');
            true
        }
        Value::Array(list) if !list.is_empty() && is_granular_list(field, v) => {
            let Some(items) = index_items(field, list) else {
                return false;
            };
            let mut items: Vec<(String, &Value)> = items
                .into_iter()
                .map(|(element, item)| (element.serialize(), item))
                .collect();
            // The encoding's key order; a duplicate counts once, as its
            // first item (the sort is stable).
            items.sort_by(|a, b| a.0.cmp(&b.0));
            items.dedup_by(|later, earlier| later.0 == earlier.0);
            let item_field = Field {
                node: field.node,
                shape: Shape::Plain,
            };
            out.push(b'{');
            for (i, (element, item)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                member_key(out, "", element);
                match item {
                    Value::Object(m)
                        if field.shape != Shape::Set
                            && !m.is_empty()
                            && is_granular_map(item_field, item) =>
                    {
                        out.extend_from_slice(b"{\".\":{},");
                        members(m, item_field, out, |_, _| false);
                        out.push(b'}');
                    }
                    _ => out.extend_from_slice(b"{}"),
                }
            }
            out.push(b'}');
            true
        }
        _ => false,
    }
}

/// Writes the members of a granular map, comma-separated, except those
/// `skip` names; answers whether any was written.
fn members(
    m: &Map<String, Value>,
    field: Field,
    out: &mut Vec<u8>,
    skip: impl Fn(&str, &Value) -> bool,
) -> bool {
    let mut first = true;
    for (key, child) in m {
        if skip(key, child) {
            continue;
        }
        separate(out, &mut first);
        member_key(out, "f:", key);
        if !entry(child, schema::field(field.node, key), out) {
            out.extend_from_slice(b"{}");
        }
    }
    !first
}

fn separate(out: &mut Vec<u8>, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
}

/// Writes `"<prefix><text>":`.
fn member_key(out: &mut Vec<u8>, prefix: &str, text: &str) {
    write_key(out, prefix, text);
    out.push(b':');
}

/// Writes `"<prefix><text>"` with `text` escaped as serde_json escapes it.
fn write_key(out: &mut Vec<u8>, prefix: &str, text: &str) {
    out.push(b'"');
    out.extend_from_slice(prefix.as_bytes());
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::created_managed_fields;
    use crate::patch::{ManagerRequest, update_managed_fields};

    const REQ: ManagerRequest<'static> = ManagerRequest {
        manager: "kubectl-\"client\"-side\\apply",
        api_version: "v1",
        subresource: None,
        now: "2026-12-05T02:00:00Z",
    };

    /// What the general path records for the same create, encoded: the
    /// field-set comparison with an empty object (`compare(&{}, new)`),
    /// which is independent of this module.
    fn general(obj: &Value) -> Option<Vec<u8>> {
        let mut recorded = obj.clone();
        update_managed_fields(Some(&json!({})), &mut recorded, &REQ);
        recorded
            .pointer("/metadata/managedFields")
            .map(|m| serde_json::to_vec(m).expect("encodes"))
    }

    fn assert_same(obj: Value) {
        let text = created_managed_fields(&obj, &REQ);
        let expected = general(&obj);
        assert_eq!(
            text.as_deref().map(String::from_utf8_lossy),
            expected.as_deref().map(String::from_utf8_lossy),
            "object: {obj}"
        );
    }

    #[test]
    fn a_defaulted_pod_records_what_the_general_path_records() {
        assert_same(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default", "uid": "u-1",
                "creationTimestamp": "2026-12-05T00:00:00Z",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"example.com/build": "1", "quote\"d": "x", "tab\tand\u{1}ctl": "y"},
                "finalizers": ["example.com/a", "example.com/b", "example.com/a"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": "u-2", "controller": true}]},
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx", "args": ["a", "b"],
                     "ports": [{"containerPort": 80}, {"containerPort": 80, "protocol": "UDP"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}, {"name": "B"}],
                     "resources": {"requests": {"cpu": "100m"}, "limits": {}},
                     "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
                    {"name": "side", "image": "busybox", "securityContext": {}}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "nodeSelector": {"disk": "ssd"},
                "securityContext": {},
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "priority": 0,
                "hostNetwork": false,
                "imagePullSecrets": []},
            "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}
        }));
    }

    #[test]
    fn other_kinds_and_odd_shapes_record_what_the_general_path_records() {
        assert_same(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "generation": 1, "labels": {}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
        }));
        assert_same(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "protocol": "TCP"}],
                "selector": {"app": "web"}, "clusterIPs": ["10.0.0.1"], "type": "ClusterIP"}
        }));
        assert_same(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default"},
            "data": {"a.conf": "x\ny", "b\\c": "\"q\"", "ünï": "ç"}
        }));
        // A keyed list with an item missing its key is atomic: a leaf.
        assert_same(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"image": "nginx"}], "initContainers": [null]}
        }));
        // An unknown kind walks untyped.
        assert_same(json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "labels": {"a": "b"}},
            "spec": {"items": [{"name": "x"}, 1, "two", null], "nested": {"deep": {"er": true}}}
        }));
    }

    #[test]
    fn a_create_with_only_unowned_fields_records_nothing() {
        let bare = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default", "uid": "u"}});
        assert_same(bare.clone());
        assert_eq!(created_managed_fields(&bare, &REQ), None);
        assert_same(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "status": {"x": 1}}),
        );
        assert_same(json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}));
        assert_same(json!("not an object"));
    }
}
