//! API errors as Kubernetes `Status` objects: the code, reason, message and
//! details (with field causes) that kubectl and client libraries parse.

use axum::response::{IntoResponse, Response};
use common::ResourceInfo;
use http::StatusCode;
use serde_json::{Value, json};

use crate::registry::FieldError;
use crate::storage::StorageError;

/// One error answer of the API, rendered as a `Status`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, ...
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// `metadata.continue` of the Status (a 410 for an expired continue
    /// token carries a token that resumes at the latest state).
    pub list_continue: Option<String>,
}

/// `pods` or `deployments.apps`, as Kubernetes qualifies a resource.
fn qualified_resource(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

/// One `details.causes` entry per field error.
fn causes(errs: &[FieldError]) -> Vec<Value> {
    errs.iter()
        .map(|e| {
            json!({
                "reason": e.kind.cause_type(),
                "message": e.message_body(),
                "field": e.field.as_str(),
            })
        })
        .collect()
}

/// `Pod` or `Deployment.apps`, as Kubernetes qualifies a kind.
fn qualified_kind(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.kind.to_string()
    } else {
        format!("{}.{}", info.kind, info.group)
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            list_continue: None,
        }
    }

    fn with_resource_details(mut self, info: &ResourceInfo, name: &str) -> ApiError {
        self.details = Some(json!({"name": name, "group": info.group, "kind": info.plural}));
        self
    }

    pub fn not_found(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified_resource(info)),
        )
        .with_resource_details(info, name)
    }

    pub fn already_exists(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified_resource(info)),
        )
        .with_resource_details(info, name)
    }

    /// The optimistic-concurrency conflict of a stale resourceVersion.
    pub fn conflict(info: &ResourceInfo, name: &str) -> ApiError {
        ApiError::conflict_msg(
            info,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_msg(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified_resource(info)
            ),
        )
        .with_resource_details(info, name)
    }

    /// 422 with one cause per field error, as `apierrors.NewInvalid`.
    pub fn invalid(info: &ResourceInfo, name: &str, errs: &[FieldError]) -> ApiError {
        let mut e = ApiError::invalid_of(&qualified_kind(info), name, errs);
        e.details = Some(json!({
            "name": name, "group": info.group, "kind": info.kind, "causes": causes(errs)
        }));
        e
    }

    /// `errors.NewInvalid(schema.GroupKind{}, "", errs)`: no kind and no
    /// name, as a PATCH's strict decoding errors are reported (the message
    /// starts ` "" is invalid`).
    pub fn invalid_without_kind(errs: &[FieldError]) -> ApiError {
        let mut e = ApiError::invalid_of("", "", errs);
        e.details = Some(json!({"causes": causes(errs)}));
        e
    }

    fn invalid_of(kind: &str, name: &str, errs: &[FieldError]) -> ApiError {
        let list = match errs {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{kind} \"{name}\" is invalid: {list}"),
            details: None,
            list_continue: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 422 without field causes (e.g. a JSON patch whose test failed).
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "Invalid", message)
    }

    pub fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: {why}",
                qualified_resource(info)
            ),
        )
        .with_resource_details(info, name)
    }

    pub fn gone(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> ApiError {
        ApiError::new(406, "NotAcceptable", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type:?})"
            ),
        )
    }

    pub fn too_large() -> ApiError {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(504, "Timeout", message)
    }

    /// An error answered by another server (a kubelet), by its HTTP code.
    pub fn upstream(code: u16, message: impl Into<String>) -> ApiError {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        ApiError::new(code, reason, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    pub fn path_not_found(path: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// Maps a storage error seen while working on `info`/`name`.
    pub fn from_storage(err: StorageError, info: &ResourceInfo, name: &str) -> ApiError {
        match err {
            StorageError::AlreadyExists { .. } => ApiError::already_exists(info, name),
            StorageError::NotFound { .. } => ApiError::not_found(info, name),
            StorageError::Conflict { .. } => ApiError::conflict(info, name),
            StorageError::Compacted {
                requested,
                compacted,
            } => ApiError::gone(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StorageError::FutureRevision { requested, current } => ApiError::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            StorageError::Unavailable(m) => ApiError::unavailable(m),
            StorageError::Internal(m) => ApiError::internal(m),
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        if let Some(c) = &self.list_continue {
            v["metadata"]["continue"] = json!(c);
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.status()).unwrap_or_default();
        (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FieldPath;

    fn pods() -> &'static ResourceInfo {
        common::resources::find("", "v1", "pods").expect("pods")
    }

    fn deployments() -> &'static ResourceInfo {
        common::resources::find("apps", "v1", "deployments").expect("deployments")
    }

    #[test]
    fn messages_match_kubernetes() {
        assert_eq!(
            ApiError::not_found(pods(), "x").message,
            "pods \"x\" not found"
        );
        assert_eq!(
            ApiError::not_found(deployments(), "web").message,
            "deployments.apps \"web\" not found"
        );
        assert_eq!(
            ApiError::conflict(pods(), "x").message,
            "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let errs = [FieldError::required(
            &FieldPath::new("spec")
                .child("containers")
                .index(0)
                .child("image"),
            "",
        )];
        let e = ApiError::invalid(pods(), "x", &errs);
        assert_eq!(
            e.message,
            "Pod \"x\" is invalid: spec.containers[0].image: Required value"
        );
        assert_eq!(
            e.status()["details"]["causes"][0]["field"],
            "spec.containers[0].image"
        );
        assert_eq!(e.status()["code"], 422);
    }
}
