//! Serving the OpenAPI documents: generated lazily, kept as bytes, answered
//! with the caching headers kubectl's disk cache relies on.
//!
//! kubectl asks for `/openapi/v3`, then for the documents of the
//! group/versions it needs with the `?hash=` the index gave it; when the
//! hash matches, kube-apiserver marks the response immutable.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::document::{self, content_hash, group_versions, gv_path, parse_gv_path};

/// One serialized document and its content hash.
#[derive(Debug, Clone)]
pub struct Cached {
    pub bytes: Bytes,
    pub hash: String,
}

impl Cached {
    fn new(value: &serde_json::Value) -> Cached {
        // Serializing a serde_json::Value cannot fail: keys are strings.
        let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        let hash = content_hash(&bytes);
        Cached { bytes, hash }
    }
}

static V2: OnceLock<Cached> = OnceLock::new();
static INDEX: OnceLock<Cached> = OnceLock::new();
static V3: OnceLock<Vec<(String, OnceLock<Cached>)>> = OnceLock::new();

fn v3_slots() -> &'static [(String, OnceLock<Cached>)] {
    V3.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| (gv_path(g, v), OnceLock::new()))
            .collect()
    })
}

/// The v3 document at `api/v1` / `apis/<group>/<version>`, or `None`.
pub fn v3(path: &str) -> Option<&'static Cached> {
    let (group, version) = parse_gv_path(path)?;
    let (_, slot) = v3_slots().iter().find(|(k, _)| k == path)?;
    Some(slot.get_or_init(|| {
        let doc = document::v3_document(group, version).unwrap_or_default();
        Cached::new(&doc)
    }))
}

/// The `/openapi/v3` index. Building it generates every v3 document, since
/// the index carries their content hashes.
pub fn v3_index() -> &'static Cached {
    INDEX.get_or_init(|| {
        let hashes: Vec<(String, String)> = v3_slots()
            .iter()
            .filter_map(|(k, _)| v3(k).map(|c| (k.clone(), c.hash.clone())))
            .collect();
        Cached::new(&document::v3_index(&hashes))
    })
}

/// The `/openapi/v2` swagger document.
pub fn v2() -> &'static Cached {
    V2.get_or_init(|| Cached::new(&document::v2_document()))
}

#[derive(Debug, Deserialize)]
struct HashQuery {
    hash: Option<String>,
}

/// Routes for `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<gv>`, to be
/// merged into the API server's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/openapi/v2", get(serve_v2))
        .route("/openapi/v3", get(serve_index))
        .route("/openapi/v3/{*path}", get(serve_v3))
}

/// kubectl asks `/openapi/v2` for protobuf
/// (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), which we
/// do not produce; 406 lets it fall back cleanly instead of failing to
/// decode JSON as protobuf.
fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or("").trim();
        matches!(media, "application/json" | "application/*" | "*/*" | "")
    })
}

fn json_response(doc: &Cached, immutable: bool) -> Response {
    let cache_control = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let mut resp = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        doc.bytes.clone(),
    )
        .into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", doc.hash)) {
        headers.insert(header::ETAG, etag);
    }
    resp
}

fn not_acceptable() -> Response {
    (
        StatusCode::NOT_ACCEPTABLE,
        "only application/json is served",
    )
        .into_response()
}

async fn serve_v2(headers: HeaderMap) -> Response {
    if !accepts_json(&headers) {
        return not_acceptable();
    }
    json_response(v2(), false)
}

async fn serve_index(headers: HeaderMap) -> Response {
    if !accepts_json(&headers) {
        return not_acceptable();
    }
    json_response(v3_index(), false)
}

async fn serve_v3(
    Path(path): Path<String>,
    Query(q): Query<HashQuery>,
    headers: HeaderMap,
) -> Response {
    if !accepts_json(&headers) {
        return not_acceptable();
    }
    let path = path.trim_matches('/');
    match v3(path) {
        Some(doc) => {
            let immutable = q.hash.as_deref() == Some(doc.hash.as_str());
            json_response(doc, immutable)
        }
        None => (StatusCode::NOT_FOUND, "404 page not found").into_response(),
    }
}
