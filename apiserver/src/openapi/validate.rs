//! Strict field validation (`fieldValidation=Strict|Warn`): unknown and
//! duplicate fields in a request body, reported as kube-apiserver's JSON
//! decoder (sigs.k8s.io/json) reports them.
//!
//! Kubernetes finds these while decoding into Go structs; we walk the body
//! against the published schemas instead, so both agree on what a field is.
//! Paths follow the Go decoder: `spec.containers[0].imagee` (no leading dot,
//! `.key` for map keys, `[i]` for list items); an unknown field's value is
//! skipped, not searched; opaque values (`RawExtension`, `FieldsV1`,
//! `x-kubernetes-preserve-unknown-fields`) are not searched either; errors
//! are deduplicated and capped at 100.
//!
//! Messages, exactly as Kubernetes words them:
//! - each error: `unknown field "spec.foo"` / `duplicate field "spec.replicas"`;
//! - Strict: 400 BadRequest, message
//!   `Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.foo", unknown field "spec.bar"`
//!   ([`strict_decoding_message`] builds the part after the colon);
//! - Warn: one `Warning: 299 - "unknown field \"spec.foo\""` header per
//!   error ([`warning_header_value`]).
//!
//! Create and update decode the body itself ([`strict_errors`] on the raw
//! bytes). PATCH differs (kube-apiserver `handlers/patch.go`): duplicates
//! come from the raw patch ([`duplicate_fields`]; for a JSON patch each is
//! prefixed `json patch `), unknown fields from the patched object
//! ([`unknown_fields`]; for the scale subresource, the patched `Scale`),
//! duplicates first; Strict then answers 422 Invalid
//! (`errors.NewInvalid` with an empty kind and name) whose message starts
//! with a space:
//! ` "" is invalid: patch: Invalid value: "<patched JSON>": strict decoding error: unknown field "spec.foo"`
//! (for a strategic merge patch the quoted value is Go's `%+v` of the patch
//! map, `"map[spec:map[foo:1]]"`).
//! Server-side apply (`application/apply-patch+yaml`) differs again:
//! after applying, Kubernetes checks the YAML body's repeated keys
//! ([`yaml_duplicate_keys`]; `Strict` answers 400
//! `error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  line 8: key "a" already set in map`,
//! `Warn` one warning per key), and its typed conversion refuses unknown
//! fields. We check the applied object's unknown fields as a create does,
//! then the repeated keys.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::schemas::{self, Gvk, V3_REF_PREFIX};

/// sigs.k8s.io/json stops collecting strict errors after this many.
const MAX_ERRORS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrictErrorKind {
    Unknown,
    Duplicate,
}

/// One strict decoding error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StrictError {
    pub kind: StrictErrorKind,
    /// `spec.containers[0].imagee`.
    pub path: String,
}

impl fmt::Display for StrictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StrictErrorKind::Unknown => "unknown field",
            StrictErrorKind::Duplicate => "duplicate field",
        };
        // Go's strconv.Quote; paths are JSON keys, so escaping `"` and `\`
        // covers what occurs in practice.
        write!(f, "{what} \"{}\"", escape(&self.path))
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `strict decoding error: unknown field "a", duplicate field "b"`.
pub fn strict_decoding_message(errors: &[StrictError]) -> String {
    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("strict decoding error: {}", list.join(", "))
}

/// The value of one `Warning` header for `fieldValidation=Warn`:
/// `299 - "unknown field \"spec.foo\""`.
pub fn warning_header_value(error: &StrictError) -> String {
    format!("299 - \"{}\"", escape(&error.to_string()))
}

/// What a schema says about the fields below a value.
#[derive(Debug)]
enum Node {
    /// A scalar, or an opaque object: nothing below is checked.
    Opaque,
    Object {
        /// Sorted by name: a binary search is cheaper than hashing each key.
        props: Box<[(Box<str>, usize)]>,
        /// The schema of map values (`additionalProperties`).
        values: Option<usize>,
    },
    Array(usize),
    /// A schema that is only a `$ref` to another.
    Alias(usize),
}

/// The fields of every published kind, kept compact (no descriptions): this
/// lives as long as the server.
#[derive(Debug, Default)]
struct Index {
    nodes: Vec<Node>,
    named: HashMap<String, usize>,
    roots: Vec<(Gvk, usize)>,
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let kinds: Vec<Gvk> = schemas::all_kinds().collect();
        let defs = schemas::definitions(&kinds, &[]);
        let mut index = Index::default();
        for g in kinds {
            if let Some(name) = schemas::schema_name(g.group, g.version, g.kind) {
                let id = index.named_node(&name, &defs);
                index.roots.push((g, id));
            }
        }
        index
    })
}

impl Index {
    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn named_node(&mut self, name: &str, defs: &BTreeMap<String, Value>) -> usize {
        if let Some(id) = self.named.get(name) {
            return *id;
        }
        // Reserve the slot first: schemas may be recursive.
        let id = self.push(Node::Opaque);
        self.named.insert(name.to_string(), id);
        let node = match defs.get(name) {
            Some(schema) => self.node_for(schema, defs),
            None => Node::Opaque,
        };
        self.nodes[id] = node;
        id
    }

    fn child(&mut self, schema: &Value, defs: &BTreeMap<String, Value>) -> usize {
        if let Some(name) = schema.get("$ref").and_then(Value::as_str) {
            let name = name.strip_prefix(V3_REF_PREFIX).unwrap_or(name);
            return self.named_node(name, defs);
        }
        let node = self.node_for(schema, defs);
        self.push(node)
    }

    fn node_for(&mut self, schema: &Value, defs: &BTreeMap<String, Value>) -> Node {
        if let Some(name) = schema.get("$ref").and_then(Value::as_str) {
            let name = name.strip_prefix(V3_REF_PREFIX).unwrap_or(name);
            return Node::Alias(self.named_node(name, defs));
        }
        if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            return Node::Opaque;
        }
        if let Some(items) = schema.get("items") {
            return Node::Array(self.child(items, defs));
        }
        let values = match schema.get("additionalProperties") {
            Some(v @ Value::Object(_)) => Some(self.child(v, defs)),
            // `additionalProperties: true` accepts anything.
            Some(Value::Bool(true)) => return Node::Opaque,
            _ => None,
        };
        match schema.get("properties").and_then(Value::as_object) {
            Some(props) => {
                let mut props: Vec<(Box<str>, usize)> = props
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), self.child(v, defs)))
                    .collect();
                props.sort_by(|a, b| a.0.cmp(&b.0));
                Node::Object {
                    props: props.into(),
                    values,
                }
            }
            None if values.is_some() => Node::Object {
                props: Box::default(),
                values,
            },
            // `type: object` without properties is how RawExtension,
            // FieldsV1 and JSON say "anything".
            None => Node::Opaque,
        }
    }

    /// The node at `id`, following aliases (bounded, in case of a cycle).
    fn resolve(&self, mut id: usize) -> Option<&Node> {
        for _ in 0..8 {
            match self.nodes.get(id)? {
                Node::Alias(next) => id = *next,
                node => return Some(node),
            }
        }
        None
    }

    fn root(&self, group: &str, version: &str, kind: &str) -> Option<usize> {
        self.roots
            .iter()
            .find(|(g, _)| g.group == group && g.version == version && g.kind == kind)
            .map(|(_, id)| *id)
    }
}

/// Where the walk is in the schema.
#[derive(Debug, Clone, Copy)]
enum At {
    Node(usize),
    /// No schema (an unknown kind): only duplicates are looked for, as the
    /// Go decoder does when decoding into `map[string]interface{}`.
    Untyped,
}

/// Every body of every write goes through a walk: the path is one buffer
/// grown and truncated as the walk descends, not a string per field.
struct Walk<'a> {
    index: &'a Index,
    at: At,
    path: &'a mut String,
    errors: &'a mut Vec<StrictError>,
    seen: &'a mut HashSet<StrictError>,
}

impl Walk<'_> {
    fn save(&mut self, kind: StrictErrorKind, field: &str) {
        let path = if self.path.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.path)
        };
        let error = StrictError { kind, path };
        if self.errors.len() < MAX_ERRORS && self.seen.insert(error.clone()) {
            self.errors.push(error);
        }
    }

    fn child(&mut self, at: At) -> Walk<'_> {
        Walk {
            index: self.index,
            at,
            path: &mut *self.path,
            errors: &mut *self.errors,
            seen: &mut *self.seen,
        }
    }
}

/// The keys of one JSON object seen so far: a short list for the usual
/// handful, a hash set once an object is large (no quadratic blow-up on a
/// hostile body with many keys). Keys borrow from the body unless escaped.
enum Keys<'de> {
    Few(Vec<Cow<'de, str>>),
    Many(HashSet<Cow<'de, str>>),
}

impl<'de> Keys<'de> {
    const FEW: usize = 16;

    /// Records `key`; false if it was already there.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        match self {
            Keys::Few(v) if v.contains(&key) => false,
            Keys::Few(v) if v.len() < Self::FEW => {
                v.push(key);
                true
            }
            Keys::Few(v) => {
                let mut set: HashSet<Cow<'de, str>> = v.drain(..).collect();
                set.insert(key);
                *self = Keys::Many(set);
                true
            }
            Keys::Many(set) => set.insert(key),
        }
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// The `Visitor` methods of a walk that looks only into maps and lists.
macro_rules! scalars_have_no_fields {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }
    };
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if let At::Node(id) = self.at
            && matches!(self.index.resolve(id), Some(Node::Opaque) | None)
        {
            d.deserialize_ignored_any(IgnoredAny)?;
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    scalars_have_no_fields!();

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let item = match (self.at, self.at_node()) {
            (At::Untyped, _) => Some(At::Untyped),
            (_, Some(Node::Array(item))) => Some(At::Node(*item)),
            // A list where the schema wants something else is a type error
            // for the decoder to report, not a field error.
            _ => None,
        };
        let Some(item) = item else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let mut i = 0usize;
        let len = self.path.len();
        let mut digits = itoa::Buffer::new();
        loop {
            self.path.push('[');
            self.path.push_str(digits.format(i));
            self.path.push(']');
            let more = seq.next_element_seed(self.child(item))?.is_some();
            self.path.truncate(len);
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Keys::Few(Vec::new());
        while let Some(key) = map.next_key_seed(Key)? {
            let duplicate = !keys.insert(key.clone());
            let child = match (self.at, self.at_node()) {
                (At::Untyped, _) => Some(At::Untyped),
                (_, Some(Node::Object { props, values })) => {
                    let prop = props
                        .binary_search_by(|(name, _)| (**name).cmp(&*key))
                        .ok()
                        .map(|i| &props[i].1);
                    match prop.or(values.as_ref()) {
                        Some(id) => Some(At::Node(*id)),
                        None => {
                            self.save(StrictErrorKind::Unknown, &key);
                            None
                        }
                    }
                }
                _ => None,
            };
            if duplicate && child.is_some() {
                self.save(StrictErrorKind::Duplicate, &key);
            }
            match child {
                Some(at) => {
                    let len = self.path.len();
                    if len > 0 {
                        self.path.push('.');
                    }
                    self.path.push_str(&key);
                    let walked = map.next_value_seed(self.child(at));
                    self.path.truncate(len);
                    walked?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

impl Walk<'_> {
    fn at_node(&self) -> Option<&Node> {
        match self.at {
            At::Node(id) => self.index.resolve(id),
            At::Untyped => None,
        }
    }
}

fn walk<'de, D: Deserializer<'de>>(at: At, d: D) -> Result<Vec<StrictError>, D::Error> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut path = String::new();
    let w = Walk {
        index: index(),
        at,
        path: &mut path,
        errors: &mut errors,
        seen: &mut seen,
    };
    w.deserialize(d)?;
    Ok(errors)
}

fn root(group: &str, version: &str, kind: &str) -> At {
    index()
        .root(group, version, kind)
        .map_or(At::Untyped, At::Node)
}

/// Unknown fields of `value` as an object of `group/version, Kind`, in the
/// order of its keys (a `serde_json::Value` keeps them sorted). Empty for a
/// kind without a published schema.
pub fn unknown_fields(group: &str, version: &str, kind: &str, value: &Value) -> Vec<String> {
    let at = match root(group, version, kind) {
        At::Untyped => return Vec::new(),
        at => at,
    };
    walk(at, value)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.kind == StrictErrorKind::Unknown)
        .map(|e| e.path)
        .collect()
}

/// Duplicate keys anywhere in a raw JSON body, as paths, in document order.
/// Malformed JSON yields the duplicates found before the syntax error; the
/// decoder reports the syntax error itself.
pub fn duplicate_fields(raw: &[u8]) -> Vec<String> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let mut path = String::new();
    let w = Walk {
        index: index(),
        at: At::Untyped,
        path: &mut path,
        errors: &mut errors,
        seen: &mut seen,
    };
    let _syntax_error_reported_by_the_decoder = w.deserialize(&mut de);
    errors.into_iter().map(|e| e.path).collect()
}

/// Unknown and duplicate fields of a raw JSON body in document order, as the
/// Go decoder reports them; for a kind without a schema, duplicates only.
pub fn strict_errors(
    group: &str,
    version: &str,
    kind: &str,
    raw: &[u8],
) -> Result<Vec<StrictError>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let errors = walk(root(group, version, kind), &mut de)?;
    de.end()?;
    Ok(errors)
}

/// Duplicate keys of a YAML (or JSON) server-side apply body, as
/// sigs.k8s.io/yaml's strict decoding reports them, in document order:
/// `line 3: key "replicas" already set in map` (the line of the repeated
/// key; Go's `%#v` of the key). A syntax error ends the search: the decoder
/// reports it.
pub fn yaml_duplicate_keys(raw: &[u8]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    // Each walk stops at the first duplicate it has not reported yet, so
    // that the YAML parser marks the error with that key's line.
    while found.len() < MAX_ERRORS {
        let repeated = std::cell::RefCell::new(None);
        let walk = YamlWalk {
            skip: found.len(),
            seen: &std::cell::Cell::new(0),
            repeated: &repeated,
        };
        let Err(error) = walk.deserialize(serde_yaml_ng::Deserializer::from_slice(raw)) else {
            break;
        };
        let (Some(key), Some(at)) = (repeated.into_inner(), error.location()) else {
            break;
        };
        found.push(format!("line {}: key {key} already set in map", at.line()));
    }
    found
}

/// Walks a YAML document for repeated keys; see [`yaml_duplicate_keys`].
#[derive(Clone, Copy)]
struct YamlWalk<'a> {
    /// Duplicates already reported, passed over.
    skip: usize,
    seen: &'a std::cell::Cell<usize>,
    /// The repeated key, in Go's `%#v`, when the walk stopped at one.
    repeated: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for YamlWalk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for YamlWalk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    scalars_have_no_fields!();
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Keys::Few(Vec::new());
        while map
            .next_key_seed(YamlKey {
                walk: self,
                keys: &mut keys,
            })?
            .is_some()
        {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// A mapping key: checked against the mapping's earlier keys while the
/// parser is on it, so that an error carries its line.
struct YamlKey<'a, 'k> {
    walk: YamlWalk<'a>,
    keys: &'k mut Keys<'static>,
}

impl YamlKey<'_, '_> {
    /// `shown` is the key as Go's `%#v` prints it; `tagged` tells a
    /// string `"1"` from the number 1, as Go's decoder does.
    fn check<E: serde::de::Error>(
        self,
        tagged: String,
        shown: impl FnOnce() -> String,
    ) -> Result<(), E> {
        if self.keys.insert(Cow::Owned(tagged)) {
            return Ok(());
        }
        let seen = self.walk.seen.get();
        self.walk.seen.set(seen + 1);
        if seen < self.walk.skip {
            return Ok(());
        }
        *self.walk.repeated.borrow_mut() = Some(shown());
        Err(E::custom("key already set in map"))
    }
}

impl<'de> DeserializeSeed<'de> for YamlKey<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for YamlKey<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.check(format!("s{v}"), || {
            // Go's %#v of a string: double-quoted with Go escapes, which
            // for keys in practice means `"` and `\`.
            format!("\"{}\"", escape(v))
        })
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.check(format!("i{v}"), || v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.check(format!("i{v}"), || v.to_string())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.check(format!("b{v}"), || v.to_string())
    }
    // Other keys (floats, nulls, collections) are rare enough to pass.
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_unknowns(v: Value) -> Vec<String> {
        unknown_fields("", "v1", "Pod", &v)
    }

    #[test]
    fn unknown_fields_are_reported_with_go_decoder_paths() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
                vec![],
            ),
            (
                json!({"spec": {"containers": [{"name": "c", "imagee": "i"}]}}),
                vec!["spec.containers[0].imagee"],
            ),
            (
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "portz": []}]}}),
                vec!["spec.containers[1].portz"],
            ),
            (json!({"spex": {"anything": {"below": 1}}}), vec!["spex"]),
            (
                json!({"metadata": {"labels": {"any-key": "v"}, "annotations": {"x": "y"}, "nmae": "x"}}),
                vec!["metadata.nmae"],
            ),
            (
                json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": 5}}, "ports": [{"containerPort": 80, "hostPortt": 1}]}]}}),
                vec!["spec.containers[0].ports[0].hostPortt"],
            ),
            (
                json!({"spec": {"containers": [{"name": "c", "livenessProbe": {"httpGet": {"port": "http", "pathh": "/"}}}]}}),
                vec!["spec.containers[0].livenessProbe.httpGet.pathh"],
            ),
            (
                json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [{"fieldsV1": {"f:spec": {"f:anything": {}}}, "manager": "m"}]}}),
                vec![],
            ),
            (
                json!({"spec": {"overhead": {"cpu": "1"}, "nodeSelector": {"a": "b"}}}),
                vec![],
            ),
            (
                json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "pathh": "p"}]}}]}}),
                vec!["spec.volumes[0].configMap.items[0].pathh"],
            ),
            (
                json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "In", "valuez": []}]}]}}}}}),
                vec![
                    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].valuez",
                ],
            ),
            (
                json!({"status": {"conditions": [{"type": "Ready", "statuss": "True"}]}}),
                vec!["status.conditions[0].statuss"],
            ),
        ];
        for (value, want) in cases {
            assert_eq!(pod_unknowns(value.clone()), want, "{value}");
        }
    }

    #[test]
    fn opaque_values_are_not_searched() {
        let event = json!({"involvedObject": {"kind": "Pod"}, "metadata": {}, "related": {"fieldPath": "x"}});
        assert!(unknown_fields("", "v1", "Event", &event).is_empty());
        let evict = json!({"deleteOptions": {"dryRun": ["All"]}, "metadata": {"name": "p"}});
        assert!(unknown_fields("policy", "v1", "Eviction", &evict).is_empty());
    }

    #[test]
    fn int_or_string_and_quantity_fields_accept_both_forms() {
        let d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}, "template": {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": 0.5}}}]}}}});
        assert!(unknown_fields("apps", "v1", "Deployment", &d).is_empty());
        let bad = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}, "replicass": 1}});
        assert_eq!(
            unknown_fields("apps", "v1", "Deployment", &bad),
            ["spec.replicass", "spec.template.spec.containers[0].imagee"]
        );
    }

    #[test]
    fn unknown_kinds_have_nothing_to_check() {
        assert!(unknown_fields("example.com", "v1", "Widget", &json!({"x": 1})).is_empty());
    }

    #[test]
    fn duplicate_fields_are_found_in_raw_json_at_every_depth() {
        let cases: &[(&str, &[&str])] = &[
            (r#"{"a":1,"b":2}"#, &[]),
            (r#"{"a":1,"a":2}"#, &["a"]),
            (
                r#"{"spec":{"replicas":1,"replicas":2}}"#,
                &["spec.replicas"],
            ),
            (r#"{"items":[{"x":1},{"x":1,"x":2}]}"#, &["items[1].x"]),
            (r#"{"a":1,"a":2,"a":3}"#, &["a"]),
            (r#"{"a":1,"a":"#, &["a"]),
        ];
        for (raw, want) in cases {
            assert_eq!(duplicate_fields(raw.as_bytes()), *want, "{raw}");
        }
    }

    #[test]
    fn strict_errors_keep_document_order_and_both_kinds() {
        let raw =
            br#"{"kind":"Pod","spec":{"zzz":1,"containers":[{"name":"a","name":"b"}],"aaa":2}}"#;
        let errors = strict_errors("", "v1", "Pod", raw).expect("valid json");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                r#"unknown field "spec.zzz""#,
                r#"duplicate field "spec.containers[0].name""#,
                r#"unknown field "spec.aaa""#
            ]
        );
        assert!(strict_errors("", "v1", "Pod", b"{").is_err());
    }

    #[test]
    fn messages_match_kubernetes() {
        let errors = vec![
            StrictError {
                kind: StrictErrorKind::Unknown,
                path: "spec.foo".into(),
            },
            StrictError {
                kind: StrictErrorKind::Duplicate,
                path: "spec.bar".into(),
            },
        ];
        assert_eq!(
            strict_decoding_message(&errors),
            r#"strict decoding error: unknown field "spec.foo", duplicate field "spec.bar""#
        );
        assert_eq!(
            warning_header_value(&errors[0]),
            r#"299 - "unknown field \"spec.foo\"""#
        );
    }

    #[test]
    fn errors_are_capped_at_one_hundred_and_deduplicated() {
        let mut body = serde_json::Map::new();
        for i in 0..150 {
            body.insert(format!("f{i}"), json!(1));
        }
        assert_eq!(pod_unknowns(Value::Object(body)).len(), MAX_ERRORS);
        let raw = br#"{"x":1,"x":2}"#;
        let errors = strict_errors("", "v1", "Pod", raw).expect("valid json");
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn yaml_duplicate_keys_are_reported_by_line_as_sigs_yaml_does() {
        let body = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  paused: true
  replicas: 1
  paused: false
  template:
    spec:
      containers:
      - name: c
        image: nginx
        imagePullPolicy: Always
        imagePullPolicy: Never
      - name: d
        image: nginx
";
        assert_eq!(
            yaml_duplicate_keys(body.as_bytes()),
            [
                r#"line 8: key "paused" already set in map"#,
                r#"line 15: key "imagePullPolicy" already set in map"#
            ]
        );
        assert_eq!(
            yaml_duplicate_keys(br#"{"a": 1, "b": {"a": 2, "q\"": 1, "q\"": 2}, "a": 3}"#),
            [
                r#"line 1: key "q\"" already set in map"#,
                r#"line 1: key "a" already set in map"#
            ]
        );
        assert_eq!(
            yaml_duplicate_keys(b"1: a\n'1': b\n1: c\n"),
            ["line 3: key 1 already set in map"]
        );
        assert!(yaml_duplicate_keys(b"a: 1\nb: {a: 2}\n").is_empty());
        assert!(yaml_duplicate_keys(b"a: [1\n").is_empty());
    }
}
