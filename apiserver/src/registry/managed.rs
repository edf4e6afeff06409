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
    _info: &ResourceInfo,
    kind: PatchKind,
    current: &Value,
    patch: &Value,
    _opts: &WriteOptions,
) -> Result<Value, ApiError> {
    match kind {
        PatchKind::Merge => {
            let mut out = current.clone();
            json_patch::merge(&mut out, patch);
            Ok(out)
        }
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut out = current.clone();
            json_patch::patch(&mut out, &p).map_err(|e| ApiError::unprocessable(e.to_string()))?;
            Ok(out)
        }
        PatchKind::Strategic | PatchKind::Apply => {
            Err(ApiError::unsupported_media_type("strategic"))
        }
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
