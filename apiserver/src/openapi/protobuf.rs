//! The swagger 2.0 document in gnostic's protobuf encoding
//! (`openapi_v2.Document`), which is the only form kubectl up to 1.28 reads
//! from `/openapi/v2` (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`);
//! those versions load it before `explain`, `create` and `apply` and fail
//! without it.
//!
//! Only what kubectl reads is encoded: paths with their operations,
//! parameters, responses and vendor extensions, and the definitions with
//! `$ref`, type, format, description, required, properties, items,
//! additionalProperties, allOf and vendor extensions. Field numbers are
//! those of gnostic's `openapiv2/OpenAPIv2.proto`; vendor extension values
//! travel as YAML text (JSON is YAML), as gnostic encodes them.

use serde_json::{Map, Value};

/// The media type kubectl asks `/openapi/v2` for.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn json_str(&mut self, field: u32, v: Option<&Value>) {
        if let Some(s) = v.and_then(Value::as_str) {
            self.string(field, s);
        }
    }

    fn strings(&mut self, field: u32, v: Option<&Value>) {
        for s in v.and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = s.as_str() {
                self.bytes(field, s.as_bytes());
            }
        }
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }
}

/// `NamedAny { name = 1; Any value = 2 }` with `Any { string yaml = 2 }`.
fn named_any(name: &str, value: &Value) -> Msg {
    let mut any = Msg::default();
    any.string(2, &value.to_string());
    let mut m = Msg::default();
    m.string(1, name);
    m.message(2, any);
    m
}

fn vendor_extensions(out: &mut Msg, field: u32, obj: &Map<String, Value>) {
    for (k, v) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        out.message(field, named_any(k, v));
    }
}

fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(obj) = v.as_object() else {
        return m;
    };
    m.json_str(1, obj.get("$ref"));
    m.json_str(2, obj.get("format"));
    m.json_str(4, obj.get("description"));
    m.strings(19, obj.get("required"));
    for e in obj
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut any = Msg::default();
        any.string(2, &e.to_string());
        m.message(20, any);
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Msg::default();
            item.key(2, 0);
            item.varint(u64::from(*b));
            m.message(21, item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Msg::default();
            item.message(1, schema(s));
            m.message(21, item);
        }
        _ => {}
    }
    if let Some(t) = obj.get("type").and_then(Value::as_str) {
        let mut ty = Msg::default();
        ty.string(1, t);
        m.message(22, ty);
    }
    if let Some(items) = obj.get("items") {
        let mut it = Msg::default();
        it.message(1, schema(items));
        m.message(23, it);
    }
    for s in obj
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(s));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (name, s) in props {
            p.message(1, named(name, schema(s)));
        }
        m.message(25, p);
    }
    vendor_extensions(&mut m, 31, obj);
    m
}

/// The `Named*` messages: `{ string name = 1; T value = 2 }`.
fn named(name: &str, value: Msg) -> Msg {
    let mut m = Msg::default();
    m.string(1, name);
    m.message(2, value);
    m
}

/// `ParametersItem { Parameter parameter = 1 }`, `Parameter { BodyParameter
/// body_parameter = 1; NonBodyParameter non_body_parameter = 2 }`.
fn parameter(p: &Value) -> Msg {
    let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
    let unique = p
        .get("uniqueItems")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut param = Msg::default();
    match text("in") {
        "body" => {
            let mut b = Msg::default();
            b.string(1, text("description"));
            b.string(2, text("name"));
            b.string(3, "body");
            b.boolean(4, required);
            if let Some(s) = p.get("schema") {
                b.message(5, schema(s));
            }
            param.message(1, b);
        }
        "path" => {
            let mut s = Msg::default();
            s.boolean(1, required);
            s.string(2, "path");
            s.string(3, text("description"));
            s.string(4, text("name"));
            s.string(5, text("type"));
            s.boolean(19, unique);
            let mut nb = Msg::default();
            nb.message(4, s);
            param.message(2, nb);
        }
        _ => {
            let mut s = Msg::default();
            s.boolean(1, required);
            s.string(2, text("in"));
            s.string(3, text("description"));
            s.string(4, text("name"));
            s.string(6, text("type"));
            s.boolean(20, unique);
            let mut nb = Msg::default();
            nb.message(3, s);
            param.message(2, nb);
        }
    }
    let mut item = Msg::default();
    item.message(1, param);
    item
}

fn operation(op: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(obj) = op.as_object() else {
        return m;
    };
    m.strings(1, obj.get("tags"));
    m.json_str(3, obj.get("description"));
    m.json_str(5, obj.get("operationId"));
    m.strings(6, obj.get("produces"));
    m.strings(7, obj.get("consumes"));
    for p in obj
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(8, parameter(p));
    }
    if let Some(responses) = obj.get("responses").and_then(Value::as_object) {
        let mut rs = Msg::default();
        for (code, r) in responses {
            let mut resp = Msg::default();
            resp.json_str(1, r.get("description"));
            if let Some(s) = r.get("schema") {
                let mut item = Msg::default();
                item.message(1, schema(s));
                resp.message(2, item);
            }
            let mut value = Msg::default();
            value.message(1, resp);
            rs.message(1, named(code, value));
        }
        m.message(9, rs);
    }
    m.strings(10, obj.get("schemes"));
    vendor_extensions(&mut m, 13, obj);
    m
}

fn path_item(item: &Value) -> Msg {
    let mut m = Msg::default();
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (8, "patch"),
    ] {
        if let Some(op) = item.get(method) {
            m.message(field, operation(op));
        }
    }
    for p in item
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(9, parameter(p));
    }
    m
}

/// Encodes a swagger 2.0 JSON document (as [`super::document::v2_document`]
/// builds it) as an `openapi_v2.Document`.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut d = Msg::default();
    d.json_str(1, doc.get("swagger"));
    if let Some(info) = doc.get("info") {
        let mut i = Msg::default();
        i.json_str(1, info.get("title"));
        i.json_str(2, info.get("version"));
        d.message(2, i);
    }
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (path, item) in paths {
            p.message(2, named(path, path_item(item)));
        }
        d.message(8, p);
    }
    if let Some(defs) = doc.get("definitions").and_then(Value::as_object) {
        let mut ds = Msg::default();
        for (name, s) in defs {
            ds.message(1, named(name, schema(s)));
        }
        d.message(9, ds);
    }
    d.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn varints_and_keys_follow_the_protobuf_wire_format() {
        let mut m = Msg::default();
        m.varint(300);
        assert_eq!(m.0, [0xac, 0x02]);
        let mut m = Msg::default();
        m.string(1, "v1");
        assert_eq!(m.0, [0x0a, 2, b'v', b'1']);
        let mut m = Msg::default();
        m.string(1, "");
        m.boolean(4, false);
        assert!(m.0.is_empty(), "proto3 defaults are not written");
    }

    #[test]
    fn schemas_encode_refs_types_and_extensions() {
        let s = schema(&json!({
            "type": "object",
            "properties": {"a": {"$ref": "#/definitions/x.Y"}},
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}],
        }));
        let bytes = &s.0;
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"#/definitions/x.Y"));
        assert!(has(b"x-kubernetes-group-version-kind"));
        assert!(has(br#"[{"group":"","kind":"Pod","version":"v1"}]"#));
        // TypeItem (field 22, wire type 2) holding "object".
        assert!(has(&[0xb2, 0x01, 8, 0x0a, 6]));
        assert!(has(b"object"));
    }

    #[test]
    fn the_whole_v2_document_encodes() {
        let doc = super::super::document::v2_document();
        let bytes = encode(&doc);
        assert!(bytes.len() > 100_000);
        assert_eq!(&bytes[..5], &[0x0a, 3, b'2', b'.', b'0']);
    }
}
