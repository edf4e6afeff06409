//! Serving the OpenAPI documents: generated lazily, kept as bytes, answered
//! with the caching headers kubectl's disk cache relies on.
//!
//! Memory: the v3 documents of all served group/versions come to ~1.5 MB of
//! JSON (api/v1 ~570 kB, apps/v1 ~410 kB); each is generated on its first
//! request (~30 ms in a debug build) and kept. The v2 document is not kept.
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

/// The `/openapi/v2` swagger document, generated on each request and not
/// kept: kubectl only ever asks for v2 as protobuf (refused, see
/// [`accepts_json`]), so JSON v2 readers are rare and ~1 MB is not worth
/// holding for them.
pub fn v2() -> Cached {
    Cached::new(&document::v2_document())
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
    json_response(&v2(), false)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_v3_documents_stay_within_their_memory_budget() {
        let total: usize = group_versions()
            .into_iter()
            .filter_map(|(g, v)| v3(&gv_path(g, v)))
            .map(|d| d.bytes.len())
            .sum();
        assert!(total > 500_000, "suspiciously small: {total}");
        assert!(total < 3_000_000, "v3 documents grew to {total} bytes");
    }

    #[test]
    fn the_index_links_every_group_version_with_its_hash() {
        let index: serde_json::Value =
            serde_json::from_slice(&v3_index().bytes).expect("index is JSON");
        for (g, v) in group_versions() {
            let key = gv_path(g, v);
            let url = index["paths"][&key]["serverRelativeURL"]
                .as_str()
                .unwrap_or_else(|| panic!("{key} missing"));
            let hash = &v3(&key).expect("served").hash;
            assert_eq!(url, format!("/openapi/v3/{key}?hash={hash}"));
        }
        assert!(v3("apis/apps/v2").is_none());
        assert!(v3("apis/nope/v1").is_none());
    }

    #[test]
    fn protobuf_only_clients_are_refused_and_json_clients_served() {
        let cases = [
            (
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                false,
            ),
            ("application/json", true),
            ("application/json, */*", true),
            (
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json;q=0.9",
                true,
            ),
        ];
        for (accept, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(accepts_json(&h), want, "{accept}");
        }
        assert!(accepts_json(&HeaderMap::new()));
    }
}
