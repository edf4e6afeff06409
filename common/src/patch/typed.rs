//! Schema-aware walks over JSON objects for server-side apply, after
//! `structured-merge-diff`'s `typed` package: the field set an object
//! sets, the comparison of two objects as added/modified/removed field
//! sets, the merge of an applied configuration into a live object, and the
//! removal of field paths.
//!
//! In the field set an object sets, granular maps are never members
//! themselves (only their leaves are); list-map items and set items are
//! members; atomic values are leaves. A comparison also counts a granular
//! map or list that one side lacks as added or removed itself, as
//! `structured-merge-diff` does (the `".": {}` of an `Update` entry).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::fieldpath::{FieldSet, KeyValue, Path, PathElement, write_key_fields};
use super::schema::{self, Field, Shape};

/// A list-map item's path element from its key fields, as `get` finds them;
/// `Err` names the first key when it is missing and has no default.
pub(super) fn keyed_element<'v>(
    keys: &'static [&'static str],
    get: impl Fn(&str) -> Option<&'v Value>,
) -> Result<PathElement, &'static str> {
    Ok(PathElement::key_of(&mut key_fields(keys, get)?))
}

/// Writes [`keyed_element`]'s key (the JSON of [`PathElement::Key`]) after
/// what `out` holds, without building the element.
pub(super) fn write_keyed_element<'v>(
    out: &mut Vec<u8>,
    keys: &'static [&'static str],
    get: impl Fn(&str) -> Option<&'v Value>,
) -> Result<(), &'static str> {
    write_key_fields(out, &mut key_fields(keys, get)?);
    Ok(())
}

/// A list-map item's key fields, with the schema's defaults for those it
/// omits.
fn key_fields<'v>(
    keys: &'static [&'static str],
    get: impl Fn(&str) -> Option<&'v Value>,
) -> Result<Vec<(&'static str, KeyValue<'v>)>, &'static str> {
    let mut fields = Vec::with_capacity(keys.len());
    for &key in keys {
        match (get(key), schema::key_default(key)) {
            (Some(v), _) if !v.is_null() => fields.push((key, KeyValue::Given(v))),
            (_, Some(default)) => fields.push((key, KeyValue::Default(default))),
            // Only the first key is required; Kubernetes' optional extra
            // keys (e.g. `whenUnsatisfiable`) may be absent.
            (_, None) if fields.is_empty() => return Err(key),
            (_, None) => {}
        }
    }
    Ok(fields)
}

/// The path element naming `item` inside a list with `shape`, or why it
/// has none (a list-map item that omits a key with no default).
fn item_element(shape: Shape, item: &Value) -> Result<Option<PathElement>, String> {
    match shape {
        Shape::Keyed(keys) => {
            let Value::Object(m) = item else {
                return Err(format!(
                    "associative list item must be an object, got {item}"
                ));
            };
            keyed_element(keys, |key| m.get(key)).map(Some).map_err(|key| {
                format!(
                    "associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
                )
            })
        }
        Shape::Set => Ok(Some(PathElement::Value(item.to_string()))),
        _ => Ok(None),
    }
}

pub(super) fn is_granular_map(field: Field, v: &Value) -> bool {
    v.is_object() && !matches!(field.shape, Shape::AtomicMap | Shape::ReplaceMap)
}

pub(super) fn is_granular_list(field: Field, v: &Value) -> bool {
    v.is_array() && matches!(field.shape, Shape::Keyed(_) | Shape::Set)
}

/// Items of a keyed or set list by path element, duplicates included
/// (Kubernetes tolerates duplicate keys in stored objects, e.g. `env`);
/// `None` if an item has no element (the list is then treated as atomic).
pub(super) fn index_items(field: Field, list: &[Value]) -> Option<Vec<(PathElement, &Value)>> {
    list.iter()
        .map(|item| Some((item_element(field.shape, item).ok()??, item)))
        .collect()
}

/// The first item for each path element.
fn first_items<'a, 'v>(
    items: &'a [(PathElement, &'v Value)],
) -> HashMap<&'a PathElement, &'v Value> {
    let mut out = HashMap::with_capacity(items.len());
    for (pe, v) in items {
        out.entry(pe).or_insert(*v);
    }
    out
}

/// The fields `value` sets (`TypedValue.ToFieldSet`). Fails on list-map
/// items without their key, as Kubernetes refuses such apply requests.
pub(crate) fn to_field_set(value: &Value, root: Field) -> Result<FieldSet, String> {
    let mut set = FieldSet::default();
    walk_set(value, root, &mut Vec::new(), &mut set)?;
    Ok(set)
}

fn walk_set(
    value: &Value,
    field: Field,
    path: &mut Path,
    set: &mut FieldSet,
) -> Result<(), String> {
    match value {
        Value::Object(m) if is_granular_map(field, value) => {
            for (k, v) in m {
                path.push(PathElement::Field(k.clone()));
                if v.is_null() || v.as_object().is_some_and(Map::is_empty) {
                    set.insert(path);
                } else {
                    walk_set(v, schema::field(field.node, k), path, set)?;
                }
                path.pop();
            }
        }
        Value::Array(items) if is_granular_list(field, value) => {
            for (i, item) in items.iter().enumerate() {
                let pe = item_element(field.shape, item)
                    .map_err(|e| {
                        format!("{}: element {i}: {e}", super::fieldpath::path_string(path))
                    })?
                    .unwrap_or(PathElement::Index(i));
                path.push(pe);
                if field.shape != Shape::Set {
                    walk_set(
                        item,
                        Field {
                            node: field.node,
                            shape: Shape::Plain,
                        },
                        path,
                        set,
                    )?;
                }
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

/// What changed between two versions of an object (`typed.Comparison`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

pub(crate) fn compare(old: &Value, new: &Value, root: Field) -> Comparison {
    let mut cmp = Comparison::default();
    walk_compare(Some(old), Some(new), root, &mut Vec::new(), &mut cmp);
    cmp
}

fn walk_compare(
    old: Option<&Value>,
    new: Option<&Value>,
    field: Field,
    path: &mut Path,
    cmp: &mut Comparison,
) {
    if !walk_granular(old, new, field, path, cmp) {
        match (old, new) {
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            (Some(o), Some(n)) if o != n => cmp.modified.insert(path),
            _ => {}
        }
        return;
    }
    // As `structured-merge-diff`'s compare: a granular map or list that
    // one side lacks is added or removed itself, beside what lies below
    // (the `".": {}` of managed fields). A `null` side is present, only
    // empty: a zero object's `containers: null` is not added by a create.
    if !path.is_empty() {
        match (old, new) {
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            _ => {}
        }
    }
}

/// Compares the children of a granular map or list; false (nothing done)
/// when `old` and `new` are not both such a map or list, absent or `null`.
fn walk_granular(
    old: Option<&Value>,
    new: Option<&Value>,
    field: Field,
    path: &mut Path,
    cmp: &mut Comparison,
) -> bool {
    let typed = [old, new].into_iter().flatten().find(|v| !v.is_null());
    let empty_map = Map::new();
    if let (Some(o), Some(n), Some(v)) = (map_of(old, &empty_map), map_of(new, &empty_map), typed)
        && is_granular_map(field, v)
        && !(o.is_empty() && n.is_empty())
    {
        for k in o.keys().chain(n.keys().filter(|k| !o.contains_key(*k))) {
            path.push(PathElement::Field(k.clone()));
            walk_compare(o.get(k), n.get(k), schema::field(field.node, k), path, cmp);
            path.pop();
        }
        return true;
    }

    let (Some(o), Some(n), Some(v)) = (list_of(old), list_of(new), typed) else {
        return false;
    };
    if !is_granular_list(field, v) || (o.is_empty() && n.is_empty()) {
        return false;
    }
    let (Some(oi), Some(ni)) = (index_items(field, o), index_items(field, n)) else {
        return false;
    };
    let olds = first_items(&oi);
    let news = first_items(&ni);
    let item_field = Field {
        node: field.node,
        shape: Shape::Plain,
    };
    let order = oi
        .iter()
        .map(|(p, _)| p)
        .chain(ni.iter().map(|(p, _)| p).filter(|p| !olds.contains_key(p)));
    let mut seen = std::collections::HashSet::new();
    for pe in order.filter(|pe| seen.insert(*pe)) {
        path.push(pe.clone());
        let (l, r) = (olds.get(pe).copied(), news.get(pe).copied());
        if field.shape != Shape::Set {
            walk_compare(l, r, item_field, path, cmp);
        }
        match (l, r) {
            (None, Some(_)) => cmp.added.insert(path),
            (Some(_), None) => cmp.removed.insert(path),
            _ => {}
        }
        path.pop();
    }
    true
}

/// A side of a comparison as a map: absent and `null` are empty.
fn map_of<'a>(
    v: Option<&'a Value>,
    empty: &'a Map<String, Value>,
) -> Option<&'a Map<String, Value>> {
    match v {
        None | Some(Value::Null) => Some(empty),
        Some(Value::Object(m)) => Some(m),
        Some(_) => None,
    }
}

/// A side of a comparison as a list: absent and `null` are empty.
fn list_of(v: Option<&Value>) -> Option<&[Value]> {
    match v {
        None | Some(Value::Null) => Some(&[]),
        Some(Value::Array(list)) => Some(list),
        Some(_) => None,
    }
}

/// Merges an applied configuration into a live object (`TypedValue.Merge`):
/// granular maps merge key by key, keyed and set lists merge item by item,
/// everything else takes the applied value.
pub(crate) fn merge(live: &Value, applied: &Value, field: Field) -> Value {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) if is_granular_map(field, applied) => {
            let mut out = l.clone();
            for (k, av) in a {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, av, schema::field(field.node, k)),
                    None => av.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) if is_granular_list(field, applied) => {
            match (index_items(field, l), index_items(field, a)) {
                (Some(li), Some(ai)) => Value::Array(merge_items(&li, &ai, field)),
                _ => applied.clone(),
            }
        }
        _ => applied.clone(),
    }
}

/// Merges list items, keeping live-only items where they were and applied
/// items in applied order.
fn merge_items(
    live: &[(PathElement, &Value)],
    applied: &[(PathElement, &Value)],
    field: Field,
) -> Vec<Value> {
    let item_field = Field {
        node: field.node,
        shape: Shape::Plain,
    };
    let mut seen = std::collections::HashSet::new();
    let applied: Vec<&(PathElement, &Value)> =
        applied.iter().filter(|(pe, _)| seen.insert(pe)).collect();
    let applied_at: HashMap<&PathElement, usize> = applied
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p, i))
        .collect();
    let live_at = first_items(live);
    let mut out = Vec::with_capacity(live.len() + applied.len());
    let mut next_applied = 0;
    let emit_applied = |upto: usize, out: &mut Vec<Value>, next: &mut usize| {
        while *next <= upto && *next < applied.len() {
            let (pe, av) = applied[*next];
            out.push(match live_at.get(pe) {
                Some(lv) => merge(lv, av, item_field),
                None => (*av).clone(),
            });
            *next += 1;
        }
    };
    for (pe, lv) in live {
        match applied_at.get(pe) {
            Some(&i) => {
                if i >= next_applied {
                    emit_applied(i, &mut out, &mut next_applied);
                }
            }
            None => out.push((*lv).clone()),
        }
    }
    emit_applied(applied.len(), &mut out, &mut next_applied);
    out
}

/// Removes the value at `path` from `obj`, then any map or list left empty
/// by it (Kubernetes' typed objects drop empty optional fields when
/// serialised).
/// Returns whether something was removed.
pub(crate) fn remove_path(obj: &mut Value, path: &[PathElement], root: Field) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let Some((parent, parent_field)) = descend(obj, parents, root) else {
        return false;
    };
    let removed = match (parent, last) {
        (Value::Object(m), PathElement::Field(f)) => m.remove(f).is_some(),
        (Value::Array(items), pe) => {
            let before = items.len();
            items.retain(|item| !matches_element(parent_field.shape, item, pe));
            items.len() != before
        }
        _ => false,
    };
    if removed {
        prune_empty_maps(obj, parents, root);
    }
    removed
}

fn matches_element(shape: Shape, item: &Value, pe: &PathElement) -> bool {
    match pe {
        PathElement::Index(_) => false,
        _ => item_element(shape, item).ok().flatten().as_ref() == Some(pe),
    }
}

/// Follows `path` from `obj`; returns the value there and its schema field.
fn descend<'a>(
    obj: &'a mut Value,
    path: &[PathElement],
    root: Field,
) -> Option<(&'a mut Value, Field)> {
    let mut cur = obj;
    let mut field = root;
    for pe in path {
        let next_field;
        cur = match (cur, pe) {
            (Value::Object(m), PathElement::Field(f)) => {
                next_field = schema::field(field.node, f);
                m.get_mut(f)?
            }
            (Value::Array(items), pe) => {
                next_field = Field {
                    node: field.node,
                    shape: Shape::Plain,
                };
                items
                    .iter_mut()
                    .find(|item| matches_element(field.shape, item, pe))?
            }
            _ => return None,
        };
        field = next_field;
    }
    Some((cur, field))
}

fn prune_empty_maps(obj: &mut Value, parents: &[PathElement], root: Field) {
    let mut depth = parents.len();
    while depth > 0 {
        let (last, above) = parents[..depth].split_last().expect("depth > 0");
        let PathElement::Field(name) = last else {
            return;
        };
        let Some((Value::Object(container), _)) = descend(obj, above, root) else {
            return;
        };
        let emptied = |v: &Value| match v {
            Value::Object(m) => m.is_empty(),
            Value::Array(items) => items.is_empty(),
            _ => false,
        };
        if container.get(name).is_some_and(emptied) {
            container.remove(name);
        } else {
            return;
        }
        depth -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::fieldpath::path_string;
    use crate::patch::schema::TypeHint;
    use serde_json::json;

    fn deployment_root() -> Field {
        TypeHint::for_kind("Deployment").root()
    }

    fn printed(set: &FieldSet) -> Vec<String> {
        set.paths().iter().map(|p| path_string(p)).collect()
    }

    #[test]
    fn compare_reports_leaves_items_and_atomic_values() {
        let old = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"a": "1"}},
                "template": {"spec": {"containers": [{"name": "app", "image": "x"}]}}
            }
        });
        let new = json!({
            "metadata": {"labels": {"a": "1"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"a": "2"}},
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "x"},
                    {"name": "side", "image": "y"}
                ]}}
            }
        });
        let cmp = compare(&old, &new, deployment_root());
        assert_eq!(printed(&cmp.modified), [".spec.replicas", ".spec.selector"]);
        assert_eq!(printed(&cmp.removed), [".metadata.labels.b"]);
        assert_eq!(
            printed(&cmp.added),
            [
                ".spec.template.spec.containers[name=\"side\"]",
                ".spec.template.spec.containers[name=\"side\"].image",
                ".spec.template.spec.containers[name=\"side\"].name",
            ]
        );
    }

    #[test]
    fn merge_keeps_live_only_items_in_place_and_applied_items_in_order() {
        let root = TypeHint::for_kind("Pod").root();
        let live = json!({"spec": {"containers": [
            {"name": "a", "image": "1", "imagePullPolicy": "Always"},
            {"name": "b", "image": "1"},
            {"name": "c", "image": "1"}
        ]}});
        let cases = [
            (
                json!([{"name": "b", "image": "2"}, {"name": "d"}]),
                json!(["a", "b", "c", "d"]),
            ),
            (
                json!([{"name": "d"}, {"name": "b", "image": "2"}]),
                json!(["a", "d", "b", "c"]),
            ),
            (json!([{"name": "a", "image": "2"}]), json!(["a", "b", "c"])),
        ];
        for (applied, want) in cases {
            let merged = merge(&live, &json!({"spec": {"containers": applied}}), root);
            let names: Vec<&Value> = merged["spec"]["containers"]
                .as_array()
                .expect("containers")
                .iter()
                .map(|c| &c["name"])
                .collect();
            assert_eq!(json!(names), want, "applied {applied}");
        }
        let merged = merge(
            &live,
            &json!({"spec": {"containers": [{"name": "a", "image": "2"}]}}),
            root,
        );
        assert_eq!(
            merged["spec"]["containers"][0],
            json!({"name": "a", "image": "2", "imagePullPolicy": "Always"})
        );
    }

    #[test]
    fn atomic_values_are_replaced_by_merge() {
        let live = json!({"spec": {"selector": {"matchLabels": {"a": "1"}}, "tolerations": [{"key": "x"}]}});
        let applied = json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}});
        let merged = merge(&live, &applied, deployment_root());
        assert_eq!(
            merged["spec"]["selector"],
            json!({"matchLabels": {"b": "2"}})
        );
        assert_eq!(merged["spec"]["tolerations"], json!([{"key": "x"}]));
    }

    #[test]
    fn removing_paths_drops_emptied_maps_and_lists() {
        let root = deployment_root();
        let mut obj = json!({
            "metadata": {"name": "n", "labels": {"a": "1"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "X", "value": "1"}]}
            ]}}}
        });
        let f = |s: &str| PathElement::Field(s.to_string());
        let app = PathElement::key(&[("name", json!("app"))]);
        let x = PathElement::key(&[("name", json!("X"))]);
        assert!(remove_path(
            &mut obj,
            &[f("metadata"), f("labels"), f("a")],
            root
        ));
        assert!(remove_path(
            &mut obj,
            &[
                f("spec"),
                f("template"),
                f("spec"),
                f("containers"),
                app.clone(),
                f("env"),
                x
            ],
            root
        ));
        assert!(!remove_path(
            &mut obj,
            &[f("spec"), f("nope"), f("x")],
            root
        ));
        assert_eq!(
            obj,
            json!({"metadata": {"name": "n"}, "spec": {"template": {"spec": {"containers": [{"name": "app"}]}}}})
        );
    }

    #[test]
    fn apply_sets_fail_on_items_without_their_key() {
        let applied = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        let err = to_field_set(&applied, deployment_root()).expect_err("keyless item");
        assert!(
            err.starts_with(".spec.template.spec.containers: element 0:"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_keys_in_a_stored_list_survive_an_apply() {
        let root = TypeHint::for_kind("Pod").root();
        let live = json!({"spec": {"containers": [{"name": "c", "env": [
            {"name": "A", "value": "1"}, {"name": "A", "value": "2"}, {"name": "B", "value": "1"}
        ]}]}});
        let applied =
            json!({"spec": {"containers": [{"name": "c", "env": [{"name": "C", "value": "1"}]}]}});
        let merged = merge(&live, &applied, root);
        assert_eq!(
            merged["spec"]["containers"][0]["env"]
                .as_array()
                .map(Vec::len),
            Some(4)
        );
        let cmp = compare(&live, &merged, root);
        assert_eq!(
            printed(&cmp.added),
            [
                ".spec.containers[name=\"c\"].env[name=\"C\"]",
                ".spec.containers[name=\"c\"].env[name=\"C\"].name",
                ".spec.containers[name=\"c\"].env[name=\"C\"].value",
            ]
        );
        assert!(cmp.removed.is_empty() && cmp.modified.is_empty());
    }
}
