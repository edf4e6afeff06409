//! RFC 6902 JSON patch (`application/json-patch+json`) with Kubernetes'
//! error wording.
//!
//! The operations themselves come from the `json-patch` crate; they are
//! applied one at a time so a failure can be described the way
//! `evanphx/json-patch` (which kube-apiserver uses) describes it, e.g.
//! `testing value /spec/replicas failed: test failed`.

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::Value;

use super::PatchError;

/// Applies a JSON patch document (an array of operations) to `target`.
///
/// A document that is not a list of operations is a
/// [`PatchError::BadRequest`]; an operation that does not apply (missing
/// path, failed `test`) is [`PatchError::Unprocessable`], as Kubernetes
/// answers 422 for it.
pub fn apply_json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: Vec<PatchOperation> = serde_json::from_value(patch.clone()).map_err(|e| {
        PatchError::BadRequest(format!(
            "json: cannot unmarshal JSON patch into a list of operations: {e}"
        ))
    })?;
    let mut doc = target.clone();
    for op in &ops {
        json_patch::patch(&mut doc, std::slice::from_ref(op))
            .map_err(|e| PatchError::Unprocessable(describe(op, &e.kind)))?;
    }
    Ok(doc)
}

/// Words a failed operation as `evanphx/json-patch` does.
fn describe(op: &PatchOperation, kind: &PatchErrorKind) -> String {
    let path = op.path().to_string();
    match (op, kind) {
        (_, PatchErrorKind::TestFailed) => format!("testing value {path} failed: test failed"),
        (PatchOperation::Add(_), _) => {
            format!("add operation does not apply: doc is missing path: \"{path}\": missing value")
        }
        (PatchOperation::Remove(_), _) => format!(
            "remove operation does not apply: doc is missing path: \"{path}\": missing value"
        ),
        (PatchOperation::Replace(_), _) => {
            format!("replace operation does not apply: doc is missing key: {path}: missing value")
        }
        (PatchOperation::Move(m), PatchErrorKind::InvalidFromPointer) => format!(
            "move operation does not apply: doc is missing from path: {}: missing value",
            m.from
        ),
        (PatchOperation::Move(_), PatchErrorKind::CannotMoveInsideItself) => {
            format!("move operation does not apply: cannot move {path} into itself")
        }
        (PatchOperation::Move(_), _) => format!(
            "move operation does not apply: doc is missing destination path: {path}: missing value"
        ),
        (PatchOperation::Copy(c), PatchErrorKind::InvalidFromPointer) => format!(
            "copy operation does not apply: doc is missing from path: {}: missing value",
            c.from
        ),
        (PatchOperation::Copy(_), _) => format!(
            "copy operation does not apply: doc is missing destination path: {path}: missing value"
        ),
        (PatchOperation::Test(_), _) => {
            format!("test operation does not apply: is missing path: {path}: missing value")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn operations_apply_in_order() {
        let target = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}});
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/b", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/min"},
            {"op": "move", "from": "/spec/min", "path": "/spec/max"},
            {"op": "add", "path": "/spec/list", "value": []},
            {"op": "add", "path": "/spec/list/-", "value": "x"},
        ]);
        assert_eq!(
            apply_json_patch(&target, &patch).expect("patch applies"),
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"replicas": 3, "max": 3, "list": ["x"]}})
        );
    }

    #[test]
    fn failures_are_worded_like_kubernetes() {
        let target = json!({"spec": {"replicas": 1}});
        let cases = [
            (
                json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
                "testing value /spec/replicas failed: test failed",
            ),
            (
                json!([{"op": "replace", "path": "/spec/paused", "value": true}]),
                "replace operation does not apply: doc is missing key: /spec/paused: missing value",
            ),
            (
                json!([{"op": "remove", "path": "/status"}]),
                "remove operation does not apply: doc is missing path: \"/status\": missing value",
            ),
            (
                json!([{"op": "add", "path": "/status/phase", "value": "x"}]),
                "add operation does not apply: doc is missing path: \"/status/phase\": missing value",
            ),
            (
                json!([{"op": "move", "from": "/nope", "path": "/x"}]),
                "move operation does not apply: doc is missing from path: /nope: missing value",
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
    fn a_failed_operation_leaves_nothing_half_applied() {
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
        for patch in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
        ] {
            let err = apply_json_patch(&json!({}), &patch).expect_err("malformed patch");
            assert_eq!(err.http_status(), 400, "patch {patch}");
        }
    }
}
