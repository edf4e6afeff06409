//! RFC 6902 JSON patch (`application/json-patch+json`) with the semantics
//! and error wording of `gopkg.in/evanphx/json-patch.v4`, the library
//! kube-apiserver applies these patches with.
//!
//! It is implemented here rather than with the `json-patch` crate because
//! clients depend on v4's leniencies, which are not RFC-strict: `replace`
//! of a missing map key adds it, `copy` of a missing map key copies `null`,
//! `test` of a missing key against `null` passes, a missing `value` means
//! `null`, and negative array indexes count from the end.

use serde_json::{Map, Value};

use super::PatchError;

/// Applies a JSON patch document (an array of operations) to `target`.
///
/// A document that is not a list of objects is a
/// [`PatchError::BadRequest`]; an operation that does not apply (missing
/// path, failed `test`, unknown `op`) is [`PatchError::Unprocessable`], as
/// Kubernetes answers 422 for it.
pub fn apply_json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = match patch {
        Value::Array(ops) => {
            if let Some(bad) = ops.iter().find(|op| !op.is_object()) {
                return Err(PatchError::BadRequest(format!(
                    "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                    json_type(bad)
                )));
            }
            ops
        }
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                json_type(other)
            )));
        }
    };
    let mut doc = target.clone();
    for op in ops {
        apply_op(&mut doc, op).map_err(PatchError::Unprocessable)?;
    }
    Ok(doc)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    }
}

const MISSING: &str = "missing value";
const INVALID_INDEX: &str = "invalid index referenced";

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
    let value = op.get("value").cloned().unwrap_or(Value::Null);
    if !matches!(
        kind,
        "add" | "remove" | "replace" | "move" | "copy" | "test"
    ) {
        return Err(format!("Unexpected kind: {kind}"));
    }
    let path = op
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{kind} operation failed to decode path: {MISSING}"))?;
    let from = || {
        op.get("from")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{kind} operation failed to decode from: {MISSING}"))
    };
    match kind {
        "add" => {
            let (con, key) = find(doc, path).ok_or_else(|| {
                format!("add operation does not apply: doc is missing path: \"{path}\": {MISSING}")
            })?;
            add(con, &key, value).map_err(|e| format!("error in add for path: '{path}': {e}"))
        }
        "remove" => {
            let (con, key) = find(doc, path).ok_or_else(|| {
                format!(
                    "remove operation does not apply: doc is missing path: \"{path}\": {MISSING}"
                )
            })?;
            remove(con, &key)
                .map(drop)
                .map_err(|e| format!("error in remove for path: '{path}': {e}"))
        }
        "replace" => {
            let (con, key) = find(doc, path).ok_or_else(|| {
                format!("replace operation does not apply: doc is missing path: {path}: {MISSING}")
            })?;
            set(con, &key, value).map_err(|_| {
                format!("replace operation does not apply: doc is missing key: {path}: {MISSING}")
            })
        }
        "move" => {
            let from = from()?;
            let (con, key) = find(doc, from).ok_or_else(|| {
                format!(
                    "move operation does not apply: doc is missing from path: {from}: {MISSING}"
                )
            })?;
            let moved =
                remove(con, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
            let (con, key) = find(doc, path).ok_or_else(|| {
                format!(
                    "move operation does not apply: doc is missing destination path: {path}: {MISSING}"
                )
            })?;
            add(con, &key, moved).map_err(|e| format!("error in move for path: '{path}': {e}"))
        }
        "copy" => {
            let from = from()?;
            let (con, key) = find(doc, from).ok_or_else(|| {
                format!(
                    "copy operation does not apply: doc is missing from path: {from}: {MISSING}"
                )
            })?;
            let copied = get(con, &key)
                .map_err(|e| format!("error in copy for from: '{from}': {e}"))?
                .cloned()
                .unwrap_or(Value::Null);
            let (con, key) = find(doc, path).ok_or_else(|| {
                format!(
                    "copy operation does not apply: doc is missing destination path: {path}: {MISSING}"
                )
            })?;
            add(con, &key, copied).map_err(|e| format!("error while adding value during copy: {e}"))
        }
        _ => {
            let (con, key) = find(doc, path).ok_or_else(|| {
                format!("test operation does not apply: is missing path: {path}: {MISSING}")
            })?;
            let found =
                get(con, &key).map_err(|e| format!("error in test for path: '{path}': {e}"))?;
            match found {
                None if value.is_null() => Ok(()),
                Some(v) if *v == value => Ok(()),
                _ => Err(format!("testing value {path} failed: test failed")),
            }
        }
    }
}

/// Splits a JSON pointer into its unescaped reference tokens.
fn tokens(path: &str) -> Vec<String> {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// `findObject`: the container holding the last token of `path`, and that
/// token; `None` if an intermediate step does not exist.
fn find<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let mut parts = tokens(path);
    let last = parts.pop()?;
    let mut cur = doc;
    for part in parts {
        cur = match cur {
            Value::Object(m) => m.get_mut(&part)?,
            Value::Array(items) => {
                let i = index(&part, items.len(), false).ok()?;
                items.get_mut(i)?
            }
            _ => return None,
        };
        if !cur.is_object() && !cur.is_array() {
            return None;
        }
    }
    Some((cur, last))
}

/// An array index as v4 reads it: decimal, negative counting from the end;
/// `inclusive` allows one past the end (for `add`).
fn index(key: &str, len: usize, inclusive: bool) -> Result<usize, String> {
    let idx: i64 = key
        .parse()
        .map_err(|_| format!("strconv.Atoi: parsing {key:?}: invalid syntax"))?;
    let size = i64::try_from(len).unwrap_or(i64::MAX) + i64::from(inclusive);
    let resolved = if idx < 0 { idx + size } else { idx };
    if idx >= size || resolved < 0 {
        return Err(format!(
            "Unable to access invalid index: {idx}: {INVALID_INDEX}"
        ));
    }
    usize::try_from(resolved)
        .map_err(|_| format!("Unable to access invalid index: {idx}: {INVALID_INDEX}"))
}

fn get<'a>(con: &'a Value, key: &str) -> Result<Option<&'a Value>, String> {
    match con {
        Value::Object(m) => Ok(m.get(key)),
        Value::Array(items) => Ok(items.get(index(key, items.len(), false)?)),
        _ => Err(format!("unknown object type: {MISSING}")),
    }
}

fn add(con: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(items) if key == "-" => {
            items.push(value);
            Ok(())
        }
        Value::Array(items) => {
            let i = index(key, items.len(), true).map_err(|e| {
                if key.parse::<i64>().is_err() {
                    format!("value was not a proper array index: '{key}': {e}")
                } else {
                    e
                }
            })?;
            items.insert(i, value);
            Ok(())
        }
        _ => Err(format!("unknown object type: {MISSING}")),
    }
}

fn set(con: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match con {
        Value::Object(m) => {
            m.insert(key.to_string(), value);
            Ok(())
        }
        Value::Array(items) => {
            let i = index(key, items.len(), false)?;
            items[i] = value;
            Ok(())
        }
        _ => Err(MISSING.to_string()),
    }
}

fn remove(con: &mut Value, key: &str) -> Result<Value, String> {
    match con {
        Value::Object(m) => remove_key(m, key),
        Value::Array(items) => {
            let i = index(key, items.len(), false)?;
            Ok(items.remove(i))
        }
        _ => Err(format!("unknown object type: {MISSING}")),
    }
}

fn remove_key(m: &mut Map<String, Value>, key: &str) -> Result<Value, String> {
    m.remove(key)
        .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: {MISSING}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_apply_in_order() {
        let target = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1, "list": ["a", "b"]}});
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/min"},
            {"op": "move", "from": "/spec/min", "path": "/spec/max"},
            {"op": "add", "path": "/spec/list/-", "value": "z"},
            {"op": "add", "path": "/spec/list/0", "value": "first"},
            {"op": "remove", "path": "/spec/list/-1"},
        ]);
        assert_eq!(
            apply_json_patch(&target, &patch).expect("patch applies"),
            json!({
                "metadata": {"labels": {"b/c": "2"}},
                "spec": {"replicas": 3, "max": 3, "list": ["first", "a", "b"]}
            })
        );
    }

    #[test]
    fn leniencies_of_evanphx_json_patch_v4_are_kept() {
        let target = json!({"spec": {"replicas": 1}});
        let cases = [
            (
                json!([{"op": "replace", "path": "/spec/paused", "value": true}]),
                json!({"spec": {"replicas": 1, "paused": true}}),
            ),
            (
                json!([{"op": "copy", "from": "/spec/nope", "path": "/spec/x"}]),
                json!({"spec": {"replicas": 1, "x": null}}),
            ),
            (
                json!([{"op": "test", "path": "/spec/nope", "value": null}]),
                target.clone(),
            ),
            (
                json!([{"op": "add", "path": "/spec/replicas"}]),
                json!({"spec": {"replicas": null}}),
            ),
        ];
        for (patch, want) in cases {
            assert_eq!(apply_json_patch(&target, &patch), Ok(want), "patch {patch}");
        }
    }

    #[test]
    fn failures_are_worded_like_kubernetes() {
        let target = json!({"spec": {"replicas": 1}, "metadata": {"finalizers": ["a"]}});
        let cases = [
            (
                json!([{"op": "test", "path": "/spec/replicas", "value": "1"}]),
                "testing value /spec/replicas failed: test failed",
            ),
            (
                json!([{"op": "test", "path": "/nope/x", "value": null}]),
                "test operation does not apply: is missing path: /nope/x: missing value",
            ),
            (
                json!([{"op": "remove", "path": "/status"}]),
                "error in remove for path: '/status': Unable to remove nonexistent key: status: missing value",
            ),
            (
                json!([{"op": "add", "path": "/status/phase", "value": "x"}]),
                "add operation does not apply: doc is missing path: \"/status/phase\": missing value",
            ),
            (
                json!([{"op": "move", "from": "/nope", "path": "/x"}]),
                "error in move for path: 'nope': Unable to remove nonexistent key: nope: missing value",
            ),
            (
                json!([{"op": "move", "from": "/spec/replicas", "path": "/nope/x"}]),
                "move operation does not apply: doc is missing destination path: /nope/x: missing value",
            ),
            (
                json!([{"op": "add", "path": "/metadata/finalizers/5", "value": "x"}]),
                "error in add for path: '/metadata/finalizers/5': Unable to access invalid index: 5: invalid index referenced",
            ),
            (
                json!([{"op": "remove", "path": "/metadata/finalizers/-"}]),
                "error in remove for path: '/metadata/finalizers/-': strconv.Atoi: parsing \"-\": invalid syntax",
            ),
            (
                json!([{"op": "replace", "path": "/metadata/finalizers/5", "value": "x"}]),
                "replace operation does not apply: doc is missing key: /metadata/finalizers/5: missing value",
            ),
            (
                json!([{"op": "frob", "path": "/a"}]),
                "Unexpected kind: frob",
            ),
            (
                json!([{"op": "add", "path": "/metadata/finalizers/x", "value": 1}]),
                "error in add for path: '/metadata/finalizers/x': value was not a proper array index: 'x': strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                json!([{"op": "add", "value": 1}]),
                "add operation failed to decode path: missing value",
            ),
        ];
        for (patch, want) in cases {
            assert_eq!(
                apply_json_patch(&target, &patch),
                Err(PatchError::Unprocessable(want.to_string())),
                "patch {patch}"
            );
        }
    }

    #[test]
    fn a_failed_operation_leaves_the_target_untouched() {
        let target = json!({"a": 1});
        let patch = json!([
            {"op": "replace", "path": "/a", "value": 2},
            {"op": "test", "path": "/a", "value": 1},
        ]);
        assert!(apply_json_patch(&target, &patch).is_err());
        assert_eq!(target, json!({"a": 1}));
    }

    #[test]
    fn a_document_that_is_not_a_list_of_operations_is_a_bad_request() {
        let cases = [
            (
                json!({"op": "add"}),
                "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            ),
            (
                json!(["x"]),
                "json: cannot unmarshal string into Go value of type jsonpatch.Operation",
            ),
        ];
        for (patch, want) in cases {
            assert_eq!(
                apply_json_patch(&json!({}), &patch),
                Err(PatchError::BadRequest(want.to_string())),
                "patch {patch}"
            );
        }
    }
}
