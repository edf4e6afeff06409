//! The patch engine behind `PATCH` requests: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902), strategic merge patch and server-side apply with
//! `metadata.managedFields` bookkeeping.
//!
//! Everything here is a pure function over `serde_json::Value` so the API
//! server can run it between reading the live object and validating the
//! result. Error messages follow the wording of the Go libraries Kubernetes
//! uses (`evanphx/json-patch`, `apimachinery/pkg/util/strategicpatch`,
//! `structured-merge-diff`) because clients print them verbatim.
//!
//! How the API server uses it, per request:
//! - `application/merge-patch+json`: [`apply_merge_patch`];
//!   `application/json-patch+json`: [`apply_json_patch`];
//!   `application/strategic-merge-patch+json`: [`apply_strategic_merge_patch`]
//!   (built-in kinds only; Kubernetes answers 415 for custom resources).
//!   Each is followed by [`update_managed_fields`] with the live object.
//! - `application/apply-patch+yaml`: [`server_side_apply`] with the live
//!   object or `None` to create; it records the managed fields itself.
//! - Create and update (`POST`/`PUT`): [`update_managed_fields`]; a create
//!   may write its entry as JSON text with [`created_managed_fields`].
//!
//! The server still checks what Kubernetes checks around these calls: the
//! apply body's `apiVersion`/`kind`/name match the request, a
//! `resourceVersion` in it is a precondition, and `force` is only allowed
//! for apply.

mod apply;
mod created;
mod fieldpath;
mod json;
mod lastapplied;
mod managed;
mod schema;
mod strategic;
mod typed;
mod zero;

pub use apply::{ApplyError, Conflict, ManagerRequest, server_side_apply, update_managed_fields};
pub use created::{Unsupported, created_managed_fields, created_managed_fields_of};
pub use json::apply_json_patch;
pub use schema::TypeHint;
pub use strategic::apply_strategic_merge_patch;

use serde_json::Value;

/// Why a JSON patch or strategic merge patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (Kubernetes answers 400).
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but does not apply to the object
    /// (Kubernetes answers 422 with this message).
    #[error("{0}")]
    Unprocessable(String),
    /// Any other merge failure (a missing merge key, mismatched list
    /// element types); Kubernetes passes these through as 500s.
    #[error("{0}")]
    Internal(String),
}

impl PatchError {
    /// The HTTP status Kubernetes answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::Unprocessable(_) => 422,
            PatchError::Internal(_) => 500,
        }
    }
}

/// Applies an RFC 7386 JSON merge patch (`application/merge-patch+json`):
/// objects merge recursively, `null` deletes a key, anything else replaces.
pub fn apply_merge_patch(target: &Value, patch: &Value) -> Value {
    let mut out = target.clone();
    json_patch::merge(&mut out, patch);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(apply_merge_patch(&target, &patch), want, "patch {patch}");
        }
    }

    #[test]
    fn merge_patch_replaces_lists_of_containers_whole() {
        let target = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}});
        let patch = json!({"spec": {"containers": [{"name": "a", "image": "y"}]}});
        assert_eq!(
            apply_merge_patch(&target, &patch),
            json!({"spec": {"containers": [{"name": "a", "image": "y"}]}})
        );
    }

    #[test]
    fn patch_errors_map_to_kubernetes_status_codes() {
        assert_eq!(PatchError::BadRequest("x".into()).http_status(), 400);
        assert_eq!(PatchError::Unprocessable("x".into()).http_status(), 422);
    }
}
