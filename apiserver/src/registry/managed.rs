//! Patches and managed fields: the bridge between the store and the patch
//! engine of `common::patch` (merge, JSON, strategic merge, server-side
//! apply, and the `metadata.managedFields` bookkeeping of every write).

use common::ResourceInfo;
use common::patch::{self, ApplyError, ManagerRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::rest::{PatchKind, Subresource, WriteOptions};
use crate::error::ApiError;

/// Runs `f` with the time now as managed fields record it (whole seconds,
/// RFC 3339). Every write records it: it is formatted once a second per
/// thread, not once a write.
fn with_now<R>(f: impl FnOnce(&str) -> R) -> R {
    // A copy, not a borrow, so that `f` may ask for the time again.
    type Text = (i64, usize, [u8; 32]);
    thread_local! {
        static NOW: std::cell::Cell<Text> = const { std::cell::Cell::new((i64::MIN, 0, [0; 32])) };
    }
    let now = jiff::Timestamp::now();
    let second = now.as_second();
    let (cached, mut len, mut text) = NOW.get();
    if cached != second {
        let formatted = jiff::Timestamp::from_second(second)
            .unwrap_or(now)
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let Some(slot) = text.get_mut(..formatted.len()) else {
            return f(&formatted);
        };
        slot.copy_from_slice(formatted.as_bytes());
        len = formatted.len();
        NOW.set((second, len, text));
    }
    f(std::str::from_utf8(&text[..len]).unwrap_or_default())
}

/// Runs `f` with the request of `manager` writing `info`'s kind (or its
/// subresource `sub`) now.
fn with_request<R>(
    info: &ResourceInfo,
    manager: &str,
    sub: Subresource,
    f: impl FnOnce(&ManagerRequest<'_>) -> R,
) -> R {
    let api_version = info.api_version();
    with_now(|now| {
        f(&ManagerRequest {
            manager,
            api_version: &api_version,
            subresource: subresource_name(sub),
            now,
        })
    })
}

fn subresource_name(sub: Subresource) -> Option<&'static str> {
    match sub {
        Subresource::Main => None,
        Subresource::Status => Some("status"),
        Subresource::Scale => Some("scale"),
    }
}

/// Applies a non-apply patch of `kind` to `current` (the object or its
/// Scale); server-side apply goes through [`apply`].
pub fn patch_value(
    info: &ResourceInfo,
    kind: PatchKind,
    current: &Value,
    patch_doc: &Value,
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
        PatchKind::Apply => apply(
            info,
            Some(current),
            patch_doc,
            Subresource::Main,
            &WriteOptions::default(),
        ),
    }
}

fn patch_error(e: patch::PatchError) -> ApiError {
    match e.http_status() {
        400 => ApiError::bad_request(e.to_string()),
        // Kubernetes answers a patch that does not apply with
        // `NewGenericServerResponse(422, ...)`, which keeps only a generic
        // message (kubectl: "The request is invalid: the server rejected
        // our request due to an error in our request").
        422 => {
            tracing::debug!(error = %e, "patch does not apply");
            ApiError {
                code: 422,
                reason: "Invalid",
                message: "the server rejected our request due to an error in our request".into(),
                details: Some(json!({})),
                list_continue: None,
            }
        }
        _ => ApiError::internal(e.to_string()),
    }
}

/// Server-side apply of `applied` over `live` (None creates), recording the
/// applier's field set; conflicts with other managers answer 409 unless
/// `force` is set.
pub fn apply(
    info: &ResourceInfo,
    live: Option<&Value>,
    applied: &Value,
    sub: Subresource,
    opts: &WriteOptions,
) -> Result<Value, ApiError> {
    with_request(info, &opts.field_manager, sub, |req| {
        patch::server_side_apply(live, applied, req, opts.force)
    })
    .map_err(|e| apply_error(info, applied, e))
}

fn apply_error(info: &ResourceInfo, applied: &Value, e: ApplyError) -> ApiError {
    let name = applied["metadata"]["name"].as_str().unwrap_or_default();
    match &e {
        ApplyError::Conflicts(conflicts) => {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": c.cause_message(), "field": c.field}))
                .collect();
            ApiError {
                code: 409,
                reason: "Conflict",
                message: e.to_string(),
                details: Some(
                    json!({"name": name, "group": info.group, "kind": info.plural, "causes": causes}),
                ),
                list_continue: None,
            }
        }
        ApplyError::BadRequest(m) => ApiError::bad_request(m.clone()),
        _ => ApiError::internal(e.to_string()),
    }
}

/// Records in `new.metadata.managedFields` what a create or update by
/// `manager` set, as Kubernetes does for every non-apply write. An empty
/// manager skips it (the write was an apply that recorded itself).
pub fn record<K: Serialize + DeserializeOwned>(
    info: &ResourceInfo,
    old: Option<&K>,
    new: &mut K,
    manager: &str,
    sub: Subresource,
) -> Result<(), ApiError> {
    if manager.is_empty() {
        return Ok(());
    }
    let to_value = |o: &K| serde_json::to_value(o).map_err(|e| ApiError::internal(e.to_string()));
    let old = old.map(to_value).transpose()?;
    let mut value = to_value(new)?;
    record_value(info, old.as_ref(), &mut value, manager, sub);
    *new = serde_json::from_value(value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(())
}

/// How a create records its managed fields.
pub enum CreateRecord {
    /// The JSON of `metadata.managedFields`, to splice into the encoded
    /// object.
    Json(Vec<u8>),
    /// Nothing to record.
    Nothing,
    /// The object brings managed fields of its own (or no manager is
    /// named): [`record_value`] does the general bookkeeping.
    General,
}

/// The managed fields a create of `value` by `manager` records, written as
/// JSON text instead of being built into the object's tree.
pub fn create_record(info: &ResourceInfo, value: &Value, manager: &str) -> CreateRecord {
    if manager.is_empty() || !value["metadata"]["managedFields"].is_null() {
        return CreateRecord::General;
    }
    match with_request(info, manager, Subresource::Main, |req| {
        patch::created_managed_fields(value, req)
    }) {
        Some(json) => CreateRecord::Json(json),
        None => CreateRecord::Nothing,
    }
}

/// [`create_record`] written from the typed object itself, which then
/// needs no JSON tree; `None` when only the tree can tell (the object brings
/// managed fields, or the walk meets what it leaves to the tree writer).
pub fn create_record_typed<T: serde::Serialize>(
    info: &ResourceInfo,
    obj: &T,
    has_managed_fields: bool,
    manager: &str,
) -> Option<CreateRecord> {
    if manager.is_empty() || has_managed_fields {
        return None;
    }
    let api_version = info.api_version();
    let written = with_request(info, manager, Subresource::Main, |req| {
        let written = patch::created_managed_fields_of(obj, &api_version, info.kind, req);
        // Every test run checks the typed walk against the tree writer.
        #[cfg(debug_assertions)]
        if let (Ok(walked), Ok(tree)) = (&written, serde_json::to_value(obj)) {
            assert_eq!(
                walked.as_deref().map(String::from_utf8_lossy),
                patch::created_managed_fields(&tree, req)
                    .as_deref()
                    .map(String::from_utf8_lossy),
                "the typed walk's managed fields differ from the tree writer's for {tree}"
            );
        }
        written
    });
    match written {
        Ok(Some(json)) => Some(CreateRecord::Json(json)),
        Ok(None) => Some(CreateRecord::Nothing),
        Err(patch::Unsupported) => None,
    }
}

/// [`record`] on an object already in JSON form.
pub fn record_value(
    info: &ResourceInfo,
    old: Option<&Value>,
    value: &mut Value,
    manager: &str,
    sub: Subresource,
) {
    if manager.is_empty() {
        return;
    }
    with_request(info, manager, sub, |req| {
        patch::update_managed_fields(old, value, req)
    });
}
