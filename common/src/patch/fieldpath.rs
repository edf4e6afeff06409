//! Field paths and field sets as `structured-merge-diff` models them: the
//! currency of `metadata.managedFields`.
//!
//! A path is a chain of elements — a map field (`f:name`), a list-map
//! item by its keys (`k:{"name":"app"}`), a set item by value
//! (`v:"foo"`) or a list index (`i:0`). A set is a tree of those in which a
//! node may itself be a member (serialised as `".": {}` when it also has
//! children). The `FieldsV1` JSON encoding and the `.spec.containers[name="app"]`
//! display form match Kubernetes byte for byte where clients can see them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum PathElement {
    Field(String),
    /// Canonical compact JSON of the key fields, sorted by name.
    Key(String),
    /// Canonical compact JSON of a set member.
    Value(String),
    Index(usize),
}

impl PathElement {
    /// The key element of a list-map item from its key fields.
    pub(crate) fn key(fields: &[(&str, Value)]) -> PathElement {
        let mut refs: Vec<(&str, KeyValue<'_>)> = fields
            .iter()
            .map(|(k, v)| (*k, KeyValue::Given(v)))
            .collect();
        PathElement::key_of(&mut refs)
    }

    /// [`Self::key`] of key fields that may take the schema's defaults.
    pub(crate) fn key_of(fields: &mut [(&str, KeyValue<'_>)]) -> PathElement {
        let mut out = Vec::with_capacity(32);
        write_key_fields(&mut out, fields);
        PathElement::Key(String::from_utf8(out).unwrap_or_default())
    }

    pub(crate) fn serialize(&self) -> String {
        let (prefix, body) = match self {
            PathElement::Field(f) => ("f:", f.as_str()),
            PathElement::Key(k) => ("k:", k.as_str()),
            PathElement::Value(v) => ("v:", v.as_str()),
            PathElement::Index(i) => return format!("i:{i}"),
        };
        let mut out = String::with_capacity(prefix.len() + body.len());
        out.push_str(prefix);
        out.push_str(body);
        out
    }

    fn deserialize(s: &str) -> Result<PathElement, String> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("invalid path element {s:?}"))?;
        match kind {
            "f" => Ok(PathElement::Field(rest.to_string())),
            "k" => {
                let Ok(Value::Object(m)) = serde_json::from_str::<Value>(rest) else {
                    return Err(format!("invalid key path element {s:?}"));
                };
                let fields: Vec<(&str, Value)> =
                    m.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                Ok(PathElement::key(&fields))
            }
            "v" => serde_json::from_str::<Value>(rest)
                .map(|v| PathElement::Value(v.to_string()))
                .map_err(|_| format!("invalid value path element {s:?}")),
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|_| format!("invalid index path element {s:?}")),
            _ => Err(format!("unknown path element type in {s:?}")),
        }
    }
}

/// Prints a JSON scalar as `value.ToString` does: strings Go-quoted.
fn display_value(v: &Value) -> String {
    v.to_string()
}

impl fmt::Display for PathElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(k) => {
                let parsed: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = parsed
                    .iter()
                    .map(|(k, v)| format!("{k}={}", display_value(v)))
                    .collect();
                write!(f, "[{}]", parts.join(","))
            }
            PathElement::Value(v) => write!(f, "[={v}]"),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

pub(crate) type Path = Vec<PathElement>;

/// Formats a path as Kubernetes prints it in conflict messages.
pub(crate) fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of field paths, stored as a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    pub(crate) fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            // Look before inserting: `entry` wants an owned key, and a
            // create inserts every leaf through the same few parents.
            [last] => {
                if !self.members.contains(last) {
                    self.members.insert(last.clone());
                }
            }
            [first, rest @ ..] => match self.children.get_mut(first) {
                Some(child) => child.insert(rest),
                None => self.children.entry(first.clone()).or_default().insert(rest),
            },
        }
    }

    pub(crate) fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether the set holds `path` or anything below it.
    pub(crate) fn has_at_or_below(&self, path: &[PathElement]) -> bool {
        match path {
            [] => !self.is_empty(),
            [last] => self.members.contains(last) || self.children.contains_key(last),
            [first, rest @ ..] => self
                .children
                .get(first)
                .is_some_and(|c| c.has_at_or_below(rest)),
        }
    }

    /// The set without anything at or below the top-level element `pe`.
    pub(crate) fn without_top(&self, pe: &PathElement) -> FieldSet {
        let mut out = self.clone();
        out.members.remove(pe);
        out.children.remove(pe);
        out
    }

    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// Paths in `self` that are not in `other` (members only; a member of
    /// `other` does not remove `self`'s paths below it).
    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Every member path, parents before their children.
    pub(crate) fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        let mut elements: BTreeSet<&PathElement> = self.members.iter().collect();
        elements.extend(self.children.keys());
        for pe in elements {
            prefix.push(pe.clone());
            if self.members.contains(pe) {
                out.push(prefix.clone());
            }
            if let Some(child) = self.children.get(pe) {
                child.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON encoding.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        let mut elements: BTreeSet<&PathElement> = self.members.iter().collect();
        elements.extend(self.children.keys());
        for pe in elements {
            let mut node = match self.children.get(pe) {
                Some(child) => match child.to_fields_v1() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                None => Map::new(),
            };
            if self.members.contains(pe) && self.children.contains_key(pe) {
                node.insert(".".to_string(), Value::Object(Map::new()));
            }
            out.insert(pe.serialize(), Value::Object(node));
        }
        Value::Object(out)
    }

    /// Parses the `fieldsV1` JSON encoding.
    pub(crate) fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        let Value::Object(m) = value else {
            return Err("fieldsV1 must be an object".to_string());
        };
        let mut out = FieldSet::default();
        for (k, v) in m {
            if k == "." {
                continue;
            }
            let pe = PathElement::deserialize(k)?;
            let Value::Object(inner) = v else {
                return Err(format!("fieldsV1 entry {k:?} must be an object"));
            };
            if inner.is_empty() || inner.contains_key(".") {
                out.members.insert(pe.clone());
            }
            let child = FieldSet::from_fields_v1(v)?;
            if !child.is_empty() {
                out.children.insert(pe, child);
            }
        }
        Ok(out)
    }
}

/// A key field's value in a list-map item's key: the item's own, or the
/// schema's default for a key the item omits.
#[derive(Clone, Copy)]
pub(crate) enum KeyValue<'v> {
    Given(&'v Value),
    Default(&'static str),
}

/// Writes the canonical compact JSON of a list-map item's key fields
/// (`{"containerPort":80,"protocol":"TCP"}`): sorted by name, and written
/// straight, as this runs for every list-map item of every created object.
pub(crate) fn write_key_fields(out: &mut Vec<u8>, fields: &mut [(&str, KeyValue<'_>)]) {
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a str or a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        let _ = match v {
            KeyValue::Given(v) => serde_json::to_writer(&mut *out, v),
            KeyValue::Default(text) => serde_json::to_writer(&mut *out, text),
        };
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    #[test]
    fn fields_v1_round_trips_in_the_kubernetes_format() {
        let encoded = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}},
                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {}},
                "f:finalizers": {"v:\"a\"": {}}
            }
        });
        let set = FieldSet::from_fields_v1(&encoded).expect("valid fieldsV1");
        assert!(set.has(&[f("metadata"), f("labels"), f("app")]));
        let app = PathElement::key(&[("name", json!("app"))]);
        assert!(set.has(&[f("spec"), f("containers"), app.clone()]));
        assert!(set.has(&[f("spec"), f("containers"), app, f("image")]));
        assert!(!set.has(&[f("spec")]));
        assert_eq!(set.to_fields_v1(), encoded);
    }

    #[test]
    fn paths_print_as_in_conflict_messages() {
        let port = PathElement::key(&[("protocol", json!("TCP")), ("containerPort", json!(80))]);
        let cases = [
            (vec![f("spec"), f("replicas")], ".spec.replicas"),
            (
                vec![
                    f("spec"),
                    f("containers"),
                    PathElement::key(&[("name", json!("app"))]),
                    f("image"),
                ],
                ".spec.containers[name=\"app\"].image",
            ),
            (
                vec![f("ports"), port],
                ".ports[containerPort=80,protocol=\"TCP\"]",
            ),
            (
                vec![f("finalizers"), PathElement::Value("\"x\"".into())],
                ".finalizers[=\"x\"]",
            ),
            (vec![f("args"), PathElement::Index(2)], ".args[2]"),
        ];
        for (path, want) in cases {
            assert_eq!(path_string(&path), want);
        }
    }

    #[test]
    fn set_algebra_works_on_members() {
        let mut a = FieldSet::default();
        a.insert(&[f("spec"), f("replicas")]);
        a.insert(&[f("spec"), f("paused")]);
        let mut b = FieldSet::default();
        b.insert(&[f("spec"), f("replicas")]);
        b.insert(&[f("metadata"), f("labels"), f("x")]);
        assert_eq!(
            a.intersection(&b).paths(),
            vec![vec![f("spec"), f("replicas")]]
        );
        assert_eq!(a.difference(&b).paths(), vec![vec![f("spec"), f("paused")]]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(b.has_at_or_below(&[f("metadata")]));
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn malformed_fields_v1_is_rejected() {
        for bad in [
            json!([]),
            json!({"x:y": {}}),
            json!({"f:a": 1}),
            json!({"i:z": {}}),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }
}
