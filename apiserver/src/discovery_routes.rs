//! HTTP routes of discovery: `/version`, `/api`, `/apis` (plain or
//! aggregated, by the Accept header) and the per-group-version resource
//! lists. The documents themselves come from `discovery.rs`.

use axum::Router;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use crate::discovery;
use crate::error::ApiError;

fn json(value: &Value, content_type: &str) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::VARY, "Accept".to_string()),
        ],
        body,
    )
        .into_response()
}

fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}

fn server_address(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:6443")
        .to_string()
}

async fn legacy(headers: HeaderMap) -> Response {
    match discovery::wants_aggregated(accept(&headers)) {
        Some(v) => json(&discovery::aggregated_legacy(v), &v.content_type()),
        None => json(
            &discovery::api_versions(&server_address(&headers)),
            "application/json",
        ),
    }
}

async fn groups(headers: HeaderMap) -> Response {
    match discovery::wants_aggregated(accept(&headers)) {
        Some(v) => json(&discovery::aggregated_groups(v), &v.content_type()),
        None => json(&discovery::api_group_list(), "application/json"),
    }
}

async fn version() -> Response {
    json(&discovery::version_info(), "application/json")
}

/// `/api/v1` and `/apis/{group}/{version}`: called by the resource router
/// when the path stops at the version.
pub fn resource_list(group: &str, version: &str, _headers: &HeaderMap) -> Response {
    match discovery::resource_list(group, version) {
        Some(v) => json(&v, "application/json"),
        None => ApiError::path_not_found(&format!("/apis/{group}/{version}")).into_response(),
    }
}

/// `/apis/{group}`: the APIGroup of one group.
pub fn group(group: &str) -> Response {
    match discovery::api_group(group) {
        Some(v) => json(&v, "application/json"),
        None => ApiError::path_not_found(&format!("/apis/{group}")).into_response(),
    }
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/version", axum::routing::get(version))
        .route("/api", axum::routing::get(legacy))
        .route("/apis", axum::routing::get(groups))
}
