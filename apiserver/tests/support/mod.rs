//! Requests to an in-process API server's router, without a socket.
// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::sync::Arc;

use apiserver::storage::{EmbeddedStore, Storage};
use axum::body::Body;
use http::Request;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

pub struct Answer {
    pub code: u16,
    pub body: Value,
    pub warnings: Vec<String>,
}

pub async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &str,
) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_owned()))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("answer");
    let code = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .map(|v| v.to_str().expect("ASCII warning").to_owned())
        .collect();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        code,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        warnings,
    }
}

/// A server over a fresh embedded store in the returned directory.
pub async fn server() -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage: Arc<dyn Storage> =
        Arc::new(EmbeddedStore::open(&dir.path().join("db")).expect("open embedded store"));
    let app = apiserver::server::build(storage, &apiserver::server::ApiOptions::default())
        .await
        .expect("build server");
    (dir, app)
}
