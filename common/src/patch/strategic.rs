//! Strategic merge patch (`application/strategic-merge-patch+json`), the
//! patch type kubectl sends for `apply`, `edit`, `label`, `annotate`,
//! `scale`, `set image` and `rollout restart`.
//!
//! This follows `k8s.io/apimachinery/pkg/util/strategicpatch` `mergeMap` as
//! the API server runs it (`MergeParallelList` and `IgnoreUnmatchedNulls`
//! on): lists with a patch merge key merge element by element, other lists
//! are replaced, and the directives `$patch`, `$retainKeys`,
//! `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` steer
//! the merge. List order follows the Go code too: patch order first, then
//! server-only items slotted back where the live list had them.

use serde_json::{Map, Value};

use super::PatchError;
use super::schema::{self, Field, Node, Shape, TypeHint};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Applies a strategic merge patch to `target`, an object of the kind
/// `kind` describes.
pub fn apply_strategic_merge_patch(
    target: &Value,
    patch: &Value,
    kind: TypeHint,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadRequest("invalid JSON document".to_string()));
    };
    let original = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    merge_map(original, patch.clone(), kind.root().node).map(Value::Object)
}

fn bad_request(msg: &str) -> PatchError {
    PatchError::BadRequest(msg.to_string())
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: Node,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                return Ok(clean_map(patch));
            }
            Some("delete") => return Ok(Map::new()),
            // Kubernetes documents `merge` as the default but its
            // `handleDirectiveInMergeMap` refuses it in a map, and so do we.
            _ => {
                return Err(PatchError::Internal(format!(
                    "unknown patch type: {} in map: {}",
                    directive
                        .as_str()
                        .map_or_else(|| directive.to_string(), str::to_string),
                    Value::Object(patch)
                )));
            }
        }
    }

    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, node)?;

    // Deletions from primitive lists first, so an item deleted and merged
    // in one patch ends up merged, whatever order the keys come in.
    let (deletions, rest): (Vec<_>, Vec<_>) = patch
        .into_iter()
        .partition(|(k, _)| k.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for (key, to_delete) in deletions {
        let field = key.trim_start_matches(DELETE_FROM_PRIMITIVE_LIST);
        if field.is_empty() {
            return Err(bad_request("invalid patch format of primitive list"));
        }
        let Value::Array(to_delete) = to_delete else {
            return Err(bad_request("invalid patch format of primitive list"));
        };
        if let Some(Value::Array(list)) = original.get_mut(field) {
            list.retain(|v| !to_delete.contains(v));
        }
    }

    for (key, patch_value) in rest {
        if key.starts_with('$') {
            continue;
        }
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let field = schema::field(node, &key);
        let merged = match (original.remove(&key), patch_value) {
            (Some(Value::Object(o)), Value::Object(p)) => match field.shape {
                Shape::ReplaceMap => Some(Value::Object(p)),
                _ => Some(Value::Object(merge_map(o, p, field.node)?)),
            },
            (Some(Value::Array(o)), Value::Array(p)) => {
                Some(Value::Array(merge_list_field(o, p, field)?))
            }
            (_, p) => new_value(p, field)?,
        };
        if let Some(v) = merged {
            original.insert(key, v);
        }
    }
    Ok(original)
}

/// A patch value for a key the original lacks (or holds with another
/// type): directives are resolved against an empty value and nulls are
/// dropped, as `removeDirectives` + `discardNullValuesFromPatch` do.
fn new_value(patch: Value, field: Field) -> Result<Option<Value>, PatchError> {
    Ok(match patch {
        Value::Object(p) if p.contains_key(DIRECTIVE) => None,
        Value::Object(p) => Some(Value::Object(merge_map(Map::new(), p, field.node)?)),
        Value::Array(p) => Some(Value::Array(merge_list_field(Vec::new(), p, field)?)),
        other => Some(other),
    })
}

/// Strips every directive and null from a value that is taken as-is.
fn clean(value: Value) -> Option<Value> {
    match value {
        Value::Object(m) if m.contains_key(DIRECTIVE) => None,
        Value::Object(m) => Some(Value::Object(clean_map(m))),
        Value::Array(items) => Some(Value::Array(items.into_iter().filter_map(clean).collect())),
        Value::Null => None,
        other => Some(other),
    }
}

fn clean_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(bad_request("invalid patch format of retainKeys"));
    };
    let retained = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    let stray = patch.iter().any(|(k, v)| {
        !v.is_null()
            && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !k.starts_with(SET_ELEMENT_ORDER)
            && !retained(k)
    });
    if stray {
        return Err(bad_request("invalid patch format of retainKeys"));
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// Handles each `$setElementOrder/<field>` together with `<field>`, then
/// orders the merged list as the directive asks (`mergePatchIntoOriginal`).
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: Node,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let order = match patch.remove(&key) {
            Some(Value::Array(order)) => order,
            _ => return Err(bad_request("invalid patch format of setElementOrder list")),
        };
        let name = &key[SET_ELEMENT_ORDER.len()..];
        if name.is_empty() {
            return Err(bad_request("invalid patch format of setElementOrder list"));
        }
        let field = schema::field(node, name);
        let merge_key = match field.shape {
            Shape::Keyed(keys) => Some(keys[0]),
            _ => None,
        };
        let as_list = |v: Option<Value>| match v {
            None => Ok(None),
            Some(Value::Array(l)) => Ok(Some(l)),
            Some(other) => Err(PatchError::Internal(format!(
                "expected a list, but received {other}"
            ))),
        };
        let original_list = as_list(original.remove(name))?;
        let patch_list = as_list(patch.remove(name))?;
        if let Some(p) = &patch_list {
            validate_order(p, &order, merge_key)?;
        }
        let server_order = original_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (o, Some(p)) => merge_list_field(o.unwrap_or_default(), p, field)?,
            (None, None) => continue,
        };
        let (in_order, server_only): (Vec<_>, Vec<_>) = merged
            .into_iter()
            .partition(|item| index_of(&order, item, merge_key).is_some());
        let ordered = normalize_order(in_order, server_only, &order, &server_order, merge_key)?;
        original.insert(name.to_string(), Value::Array(ordered));
    }
    Ok(())
}

/// The relative order of the patch list's items must match the
/// `$setElementOrder` list (`validatePatchWithSetOrderList`).
fn validate_order(
    patch: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    let mut wanted = order.iter();
    for item in patch.iter().filter(|i| !is_directive(i)) {
        if let Some(k) = merge_key {
            require_merge_key(item, k)?;
        }
        if !wanted.any(|o| same_item(o, item, merge_key)) {
            return Err(PatchError::BadRequest(format!(
                "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
                Value::Array(patch.to_vec()),
                Value::Array(order.to_vec())
            )));
        }
    }
    Ok(())
}

fn is_directive(item: &Value) -> bool {
    item.as_object().is_some_and(|m| m.contains_key(DIRECTIVE))
}

fn require_merge_key(item: &Value, key: &str) -> Result<(), PatchError> {
    match item {
        Value::Object(m) if m.contains_key(key) => Ok(()),
        Value::Object(_) => Err(PatchError::Internal(format!(
            "map: {item} does not contain declared merge key: {key}"
        ))),
        _ => Err(PatchError::Internal(format!(
            "expected a map, but received {item}"
        ))),
    }
}

/// Whether two list items are the same element: equal merge key values for
/// keyed lists, equal values otherwise.
fn same_item(a: &Value, b: &Value, merge_key: Option<&str>) -> bool {
    match merge_key {
        Some(k) => a.get(k).is_some() && a.get(k) == b.get(k),
        None => a == b,
    }
}

fn index_of(list: &[Value], item: &Value, merge_key: Option<&str>) -> Option<usize> {
    list.iter().position(|v| same_item(v, item, merge_key))
}

/// Merges a list value according to its field's strategy
/// (`mergeSliceHandler`): keyed and set lists merge, others are replaced.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: Field,
) -> Result<Vec<Value>, PatchError> {
    match field.shape {
        Shape::Keyed(keys) => merge_list(original, patch, Some(keys[0]), field.node),
        Shape::Set => merge_list(original, patch, None, field.node),
        _ => Ok(patch.into_iter().filter_map(clean).collect()),
    }
}

/// The kind of a list's elements; all must agree (`sliceElementType`).
#[derive(PartialEq)]
enum ElementKind {
    Map,
    Scalar(u8),
}

fn element_kind(lists: [&[Value]; 2]) -> Result<Option<ElementKind>, PatchError> {
    let mut kind = None;
    for item in lists.into_iter().flatten() {
        let k = match item {
            Value::Array(_) => {
                return Err(PatchError::Unprocessable(
                    "lists of lists are not supported".to_string(),
                ));
            }
            Value::Object(_) => ElementKind::Map,
            Value::String(_) => ElementKind::Scalar(0),
            Value::Number(_) => ElementKind::Scalar(1),
            Value::Bool(_) => ElementKind::Scalar(2),
            Value::Null => ElementKind::Scalar(3),
        };
        match &kind {
            None => kind = Some(k),
            Some(prev) if *prev != k => {
                return Err(PatchError::Internal(format!(
                    "list element types are not identical: {} {}",
                    Value::Array(lists[0].to_vec()),
                    Value::Array(lists[1].to_vec())
                )));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// `mergeSlice`: merges a keyed list of maps by `merge_key`, or a list of
/// scalars as a set, then restores the order Kubernetes produces.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: Option<&str>,
    node: Node,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(kind) = element_kind([&original, &patch])? else {
        return Ok(original);
    };
    let (original, patch, merged, key) = if kind == ElementKind::Map {
        let Some(key) = merge_key else {
            return Err(PatchError::Internal(
                "cannot merge lists without merge key".to_string(),
            ));
        };
        let (original, patch) = apply_list_directives(original, patch, key)?;
        let merged = merge_keyed_items(original.clone(), &patch, key, node)?;
        (original, patch, merged, Some(key))
    } else {
        let mut merged = original.clone();
        for item in &patch {
            if !merged.contains(item) {
                merged.push(item.clone());
            }
        }
        (original, patch, merged, None)
    };
    let (from_patch, server_only): (Vec<_>, Vec<_>) = merged
        .into_iter()
        .partition(|item| index_of(&patch, item, key).is_some());
    normalize_order(from_patch, server_only, &patch, &original, key)
}

/// Resolves `{"$patch": "delete", <key>: v}` and `{"$patch": "replace"}`
/// list elements (`mergeSliceWithSpecialElements`); returns the original
/// list to merge into and the patch items left to merge.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                require_merge_key(&item, key)?;
                original.retain(|o| !same_item(o, &item, Some(key)));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::Internal(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ));
            }
            _ => {
                return Err(PatchError::Internal(format!(
                    "unknown patch type: {} in map: {item}",
                    directive
                        .as_str()
                        .map_or_else(|| directive.to_string(), str::to_string)
                )));
            }
        }
    }
    if replace {
        let replaced = plain.into_iter().filter_map(clean).collect();
        return Ok((replaced, Vec::new()));
    }
    Ok((original, plain))
}

/// `mergeSliceWithoutSpecialElements`: items with a matching key merge,
/// new ones are appended.
fn merge_keyed_items(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    node: Node,
) -> Result<Vec<Value>, PatchError> {
    for item in patch {
        require_merge_key(item, key)?;
        let Value::Object(p) = item else { continue };
        match index_of(&original, item, Some(key)) {
            Some(i) => {
                let o = match std::mem::take(&mut original[i]) {
                    Value::Object(o) => o,
                    _ => Map::new(),
                };
                original[i] = Value::Object(merge_map(o, p.clone(), node)?);
            }
            None => {
                if !p.contains_key(DIRECTIVE) {
                    original.push(Value::Object(merge_map(Map::new(), p.clone(), node)?));
                }
            }
        }
    }
    Ok(original)
}

/// `normalizeElementOrder`: sorts the patch's items by `patch_order` and
/// the server-only items by `server_order`, then interleaves them so
/// server-only items keep their place relative to the live list.
fn normalize_order(
    mut from_patch: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, PatchError> {
    if let Some(k) = key {
        for item in from_patch.iter().chain(&server_only).chain(patch_order) {
            require_merge_key(item, k)?;
        }
    }
    let rank = |order: &[Value], item: &Value| index_of(order, item, key).unwrap_or(usize::MAX);
    from_patch.sort_by_key(|item| rank(patch_order, item));
    server_only.sort_by_key(|item| rank(server_order, item));

    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    index_of(server_order, l, key),
                    index_of(server_order, r, key),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "strategic_tests.rs"]
mod tests;
