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
use super::zero::zero_of;

mod serialized;
pub use serialized::{Unsupported, created_managed_fields_of};

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
    let zero = Zero::Present(zero_of(new));
    let mut fields = Vec::with_capacity(2048);
    fields.push(b'{');
    let mut first = true;
    for (key, child) in top {
        let field = schema::field(root.node, key);
        let mark = (fields.len(), first);
        match key.as_str() {
            // The strategies reset status on create; the field manager
            // ignores it for ownership.
            "status" => continue,
            // Identity is owned by no manager: a member is dropped, not
            // what lies below it.
            "apiVersion" | "kind" if !is_granular(child, root, key) => continue,
            "metadata" => {
                separate(&mut fields, &mut first);
                member_key(&mut fields, "f:", key);
                fields.push(b'{');
                // Metadata itself is never owned, only what it holds.
                let written = match child {
                    Value::Object(m) if is_granular_map(field, child) => {
                        members(m, field, zero.child(key), &mut fields, false, |k, v| {
                            is_metadata_stripped(k) && !is_granular(v, field, k)
                        })
                    }
                    _ => false,
                };
                if written {
                    fields.push(b'}');
                    continue;
                }
            }
            _ => {
                separate(&mut fields, &mut first);
                member_key(&mut fields, "f:", key);
                match entry(child, field, zero.child(key), &mut fields) {
                    Written::Entry => continue,
                    Written::Leaf => {
                        fields.extend_from_slice(b"{}");
                        continue;
                    }
                    Written::Nothing => {}
                }
            }
        }
        // Nothing owned: the member goes too.
        fields.truncate(mark.0);
        first = mark.1;
    }
    if first {
        return None;
    }
    fields.push(b'}');
    Some(envelope(&fields, req))
}

/// The managed fields entry around the `fieldsV1` JSON `fields`.
fn envelope(fields: &[u8], req: &ManagerRequest<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len() + 160);
    out.extend_from_slice(b"[{\"apiVersion\":");
    write_key(&mut out, "", req.api_version);
    out.extend_from_slice(b",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":");
    out.extend_from_slice(fields);
    out.extend_from_slice(b",\"manager\":");
    write_key(&mut out, "", req.manager);
    out.extend_from_slice(b",\"operation\":\"Update\",\"time\":");
    write_key(&mut out, "", req.now);
    out.extend_from_slice(b"}]");
    out
}

/// Metadata members no manager owns (identity and bookkeeping).
fn is_metadata_stripped(key: &str) -> bool {
    STRIPPED_METADATA.contains(&key)
}

/// Where a value of the new object stands against the kind's zero object.
#[derive(Clone, Copy)]
enum Zero<'z> {
    /// The zero object lacks it: the create adds it, and every granular
    /// map or list in it is a member itself (`".": {}`).
    Absent,
    /// The zero object has this value at the same place: not added itself,
    /// and a leaf equal to it is not even changed.
    Present(&'z Value),
}

impl<'z> Zero<'z> {
    fn child(self, key: &str) -> Zero<'z> {
        match self {
            Zero::Present(Value::Object(m)) => m.get(key).map_or(Zero::Absent, Zero::Present),
            _ => Zero::Absent,
        }
    }
}

/// What [`entry`] wrote for a value.
enum Written {
    /// Its entry `{...}`.
    Entry,
    /// Nothing: the value is a leaf, whose entry is `{}`.
    Leaf,
    /// Nothing, and the create owns nothing here: its member goes.
    Nothing,
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

/// Writes the entry `{...}` of a granular `v`; for a leaf, writes nothing
/// and tells whether the create owns it.
fn entry(v: &Value, field: Field, zero: Zero<'_>, out: &mut Vec<u8>) -> Written {
    let added = matches!(zero, Zero::Absent);
    match v {
        Value::Object(m) if !m.is_empty() && is_granular_map(field, v) => {
            out.push(b'{');
            if added {
                out.extend_from_slice(b"\".\":{}");
            }
            if !members(m, field, zero, out, added, |_, _| false) && !added {
                return Written::Nothing;
            }
            out.push(b'}');
            Written::Entry
        }
        Value::Array(list) if !list.is_empty() && is_granular_list(field, v) => {
            let Some(items) = index_items(field, list) else {
                return leaf(v, zero);
            };
            let items: Vec<(String, &Value)> = items
                .into_iter()
                .map(|(element, item)| (element.serialize(), item))
                .collect();
            let item_field = Field {
                node: field.node,
                shape: Shape::Plain,
            };
            list_entry(out, added, items, |out, item| match item {
                // Zero objects hold no list items: each is added.
                Value::Object(m)
                    if field.shape != Shape::Set
                        && !m.is_empty()
                        && is_granular_map(item_field, item) =>
                {
                    out.extend_from_slice(b"{\".\":{}");
                    members(m, item_field, Zero::Absent, out, true, |_, _| false);
                    out.push(b'}');
                }
                _ => out.extend_from_slice(b"{}"),
            });
            Written::Entry
        }
        _ => leaf(v, zero),
    }
}

/// Writes a granular list's entry from its items' path elements, in the
/// encoding's key order; a duplicate counts once, as its first item (the
/// sort is stable). `body` writes one item's entry.
fn list_entry<T>(
    out: &mut Vec<u8>,
    added: bool,
    mut items: Vec<(String, T)>,
    mut body: impl FnMut(&mut Vec<u8>, &T),
) {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|later, earlier| later.0 == earlier.0);
    out.push(b'{');
    if added {
        out.extend_from_slice(b"\".\":{},");
    }
    for (i, (element, item)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        member_key(out, "", element);
        body(out, item);
    }
    out.push(b'}');
}

fn leaf(v: &Value, zero: Zero<'_>) -> Written {
    let empty = v.as_object().is_some_and(Map::is_empty);
    match zero {
        Zero::Present(z) if z == v || empty && is_zero_struct(z) => Written::Nothing,
        _ => Written::Leaf,
    }
}

/// Whether the zero object's `z` is what an empty object stands for: Go
/// encodes a zero struct with its non-omitempty fields as null
/// (`ObjectMeta` is `{"creationTimestamp":null}`) where our types leave
/// them out, and the field-set comparison sees no change between the two.
fn is_zero_struct(z: &Value) -> bool {
    z.as_object()
        .is_some_and(|m| m.values().all(Value::is_null))
}

/// Writes the members of a granular map, comma-separated (after a comma if
/// `started`: the entry already holds `"."`), except those `skip` names
/// and those the create does not own; answers whether any was written.
fn members(
    m: &Map<String, Value>,
    field: Field,
    zero: Zero<'_>,
    out: &mut Vec<u8>,
    started: bool,
    skip: impl Fn(&str, &Value) -> bool,
) -> bool {
    let mut first = !started;
    let start = out.len();
    for (key, child) in m {
        if skip(key, child) {
            continue;
        }
        let mark = (out.len(), first);
        separate(out, &mut first);
        member_key(out, "f:", key);
        match entry(child, schema::field(field.node, key), zero.child(key), out) {
            Written::Entry => {}
            Written::Leaf => out.extend_from_slice(b"{}"),
            Written::Nothing => {
                out.truncate(mark.0);
                first = mark.1;
            }
        }
    }
    out.len() > start
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

/// Whether any byte of `bytes` is one JSON escapes (a control character,
/// `"` or `\\`), checked eight bytes at a time: this runs for every member
/// key of every created object.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Whether any byte of `x` is zero (the classic SWAR test).
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // The same test for "any byte below 0x20" (`hasless`).
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0;
        if control
            || has_zero(x ^ (ONES * u64::from(b'"')))
            || has_zero(x ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Writes `"<prefix><text>"` with `text` escaped as serde_json escapes it.
fn write_key(out: &mut Vec<u8>, prefix: &str, text: &str) {
    // Field names almost never need escaping: check before the byte loop.
    if !needs_escape(text.as_bytes()) {
        write_plain_key(out, prefix, text);
        return;
    }
    out.reserve(prefix.len() + 2 * text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(prefix.as_bytes());
    for &b in text.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// [`write_key`] of a `text` known to need no escaping.
fn write_plain_key(out: &mut Vec<u8>, prefix: &str, text: &str) {
    debug_assert!(!needs_escape(text.as_bytes()), "{text:?} needs escaping");
    out.reserve(prefix.len() + text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// [`member_key`] of a struct field's name, as a type's `Serialize` names
/// it: a Rust-generated identifier, which never needs escaping.
fn field_member_key(out: &mut Vec<u8>, prefix: &str, name: &'static str) {
    write_plain_key(out, prefix, name);
    out.push(b':');
}

#[cfg(test)]
mod tests {
    use super::{created_managed_fields, created_managed_fields_of, needs_escape};
    use crate::patch::zero::zero_of;
    use crate::patch::{ManagerRequest, update_managed_fields};
    use serde_json::{Value, json};

    #[test]
    fn keys_are_escaped_as_serde_json_escapes_strings() {
        for text in [
            "plain",
            "k:{\"name\":\"web\"}",
            "back\\slash",
            "nl\n\r\t\u{8}\u{c}",
            "\u{1}\u{1f}x",
            "é\u{7f}",
        ] {
            let mut out = Vec::new();
            super::write_key(&mut out, "", text);
            assert_eq!(
                String::from_utf8(out).expect("utf-8"),
                serde_json::to_string(text).expect("encodes")
            );
        }
    }

    #[test]
    fn the_word_wise_escape_check_agrees_with_the_byte_loop() {
        let naive = |b: &[u8]| b.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        // Every byte value at every position of a 19-byte key (two words
        // and a remainder), among bytes that need no escaping.
        for byte in 0..=255u8 {
            for at in 0..19 {
                let mut key = *b"containerPort-name1";
                key[at] = byte;
                assert_eq!(needs_escape(&key), naive(&key), "{byte:#x} at {at}");
            }
        }
        for key in [
            "",
            "a",
            "f:metadata",
            "k:{\"name\":\"web\"}",
            "\u{7f}\u{80}é",
            "tab\there",
        ] {
            assert_eq!(
                needs_escape(key.as_bytes()),
                naive(key.as_bytes()),
                "{key:?}"
            );
        }
    }

    const REQ: ManagerRequest<'static> = ManagerRequest {
        manager: "kubectl-\"client\"-side\\apply",
        api_version: "v1",
        subresource: None,
        now: "2026-12-05T02:00:00Z",
    };

    /// What the general path records for the same create, encoded: the
    /// field-set comparison with the kind's zero object
    /// (`compare(zero, new)`), which is independent of this module.
    fn general(obj: &Value) -> Option<Vec<u8>> {
        let mut recorded = obj.clone();
        update_managed_fields(Some(zero_of(obj)), &mut recorded, &REQ);
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
        assert_serialized_walk_agrees(&obj);
    }

    /// The walk over a typed object writes what the tree writer writes
    /// for the same object as JSON.
    fn assert_serialized_walk_agrees(obj: &Value) {
        use k8s_openapi::api::{apps, batch, core, scheduling};
        fn check<T>(obj: &Value)
        where
            T: serde::Serialize + serde::de::DeserializeOwned + k8s_openapi::Resource,
        {
            // Odd shapes that no typed object holds have nothing to compare.
            let Ok(typed) = serde_json::from_value::<T>(obj.clone()) else {
                return;
            };
            let walked =
                created_managed_fields_of(&typed, T::API_VERSION, T::KIND, &REQ).expect("walked");
            let tree =
                created_managed_fields(&serde_json::to_value(&typed).expect("encodes"), &REQ);
            assert_eq!(
                walked.as_deref().map(String::from_utf8_lossy),
                tree.as_deref().map(String::from_utf8_lossy),
                "object: {obj}"
            );
        }
        match obj["kind"].as_str() {
            Some("Pod") => check::<core::v1::Pod>(obj),
            Some("ConfigMap") => check::<core::v1::ConfigMap>(obj),
            Some("Service") => check::<core::v1::Service>(obj),
            Some("Deployment") => check::<apps::v1::Deployment>(obj),
            Some("ReplicaSet") => check::<apps::v1::ReplicaSet>(obj),
            Some("StatefulSet") => check::<apps::v1::StatefulSet>(obj),
            Some("PriorityClass") => check::<scheduling::v1::PriorityClass>(obj),
            Some("Job") => check::<batch::v1::Job>(obj),
            _ => {}
        }
    }

    /// Go encodes a zero struct with its non-omitempty fields as null
    /// (`ObjectMeta` is `{"creationTimestamp":null}`); our types encode it
    /// as `{}`. Where the zero object holds such a struct, an empty one is
    /// no change: `kubectl create job` sends the template's metadata so.
    #[test]
    fn an_empty_struct_where_the_zero_object_has_its_nulls_is_not_owned() {
        for metadata in [json!({}), json!({"creationTimestamp": null})] {
            let job = json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "j"},
                "spec": {"template": {"metadata": metadata,
                    "spec": {"containers": [{"name": "j", "image": "busybox"}]}}}});
            assert_same(job.clone());
            let text = created_managed_fields(&job, &REQ).expect("records the spec");
            let entry: Value = serde_json::from_slice(&text).expect("JSON");
            let template = &entry[0]["fieldsV1"]["f:spec"]["f:template"];
            assert!(template.get("f:metadata").is_none(), "{template}");
            assert!(template["f:spec"]["f:containers"].is_object(), "{template}");
        }
    }

    #[test]
    fn members_serialized_out_of_order_are_written_sorted() {
        #[derive(serde::Serialize)]
        struct Widget {
            kind: &'static str,
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            spec: Spec,
            metadata: Value,
        }
        #[derive(serde::Serialize)]
        struct Spec {
            zeta: u8,
            alpha: Value,
            empty: Value,
            mid: Vec<u8>,
        }
        let widget = Widget {
            kind: "Widget",
            api_version: "example.com/v1",
            spec: Spec {
                zeta: 1,
                alpha: json!({"y": 1, "x": {"b": true, "a": null}}),
                empty: json!({}),
                mid: vec![1, 2],
            },
            metadata: json!({"name": "w", "labels": {"b": "1", "a": "2"}}),
        };
        let walked = created_managed_fields_of(&widget, "example.com/v1", "Widget", &REQ)
            .expect("walked")
            .expect("records");
        let tree = created_managed_fields(&serde_json::to_value(&widget).expect("encodes"), &REQ)
            .expect("records");
        assert_eq!(
            String::from_utf8_lossy(&walked),
            String::from_utf8_lossy(&tree)
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

    /// `kubectl create deployment nginx --image=nginx` on a real cluster
    /// (kube-apiserver 1.23): the object as stored, and its entry.
    #[test]
    fn a_created_deployment_records_what_kubernetes_records() {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": "default", "uid": "u",
                "generation": 1, "creationTimestamp": "2022-02-16T15:53:28Z",
                "labels": {"app": "nginx"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "nginx"}},
                "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}],
                        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst", "securityContext": {},
                        "schedulerName": "default-scheduler"}},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
            "status": {}
        });
        let want = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {},
                "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}},
                    "f:type": {}},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {
                        "f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {},
                            "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {},
                            "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                        "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                        "f:securityContext": {}, "f:terminationGracePeriodSeconds": {}}}}
        });
        let text = created_managed_fields(&deployment, &REQ).expect("an entry");
        let entry: Value = serde_json::from_slice(&text).expect("JSON");
        assert_eq!(entry[0]["fieldsV1"], want);
        assert_same(deployment);
    }

    /// A StatefulSet's container ports and a ConfigMap's data, as a real
    /// cluster records them: a map or list the zero object lacks is owned
    /// itself, at every depth.
    #[test]
    fn added_maps_and_lists_are_members_at_every_depth() {
        let set = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "iab"},
            "spec": {"serviceName": "iab", "template": {"spec": {"containers": [{"name": "iab",
                "ports": [{"containerPort": 80, "name": "iab", "protocol": "TCP"}]}]}}}
        });
        let text = created_managed_fields(&set, &REQ).expect("an entry");
        let entry: Value = serde_json::from_slice(&text).expect("JSON");
        assert_eq!(
            entry[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
            json!({"k:{\"name\":\"iab\"}": {".": {}, "f:name": {}, "f:ports": {".": {},
                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {},
                    "f:containerPort": {}, "f:name": {}, "f:protocol": {}}}}})
        );
        assert_same(set);
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"a": "1"}});
        let text = created_managed_fields(&config, &REQ).expect("an entry");
        let entry: Value = serde_json::from_slice(&text).expect("JSON");
        assert_eq!(
            entry[0]["fieldsV1"],
            json!({"f:data": {".": {}, "f:a": {}}})
        );
        // A leaf equal to the zero object's is not changed, so not owned;
        // a custom resource's spec is added like any absent field.
        let class = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "p"}, "value": 0, "description": "d"});
        let text = created_managed_fields(&class, &REQ).expect("an entry");
        let entry: Value = serde_json::from_slice(&text).expect("JSON");
        assert_eq!(entry[0]["fieldsV1"], json!({"f:description": {}}));
        assert_same(class);
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {"size": 1}});
        let text = created_managed_fields(&widget, &REQ).expect("an entry");
        let entry: Value = serde_json::from_slice(&text).expect("JSON");
        assert_eq!(
            entry[0]["fieldsV1"],
            json!({"f:spec": {".": {}, "f:size": {}}})
        );
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
