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
use super::protobuf;

/// One serialized document and its content hash.
#[derive(Debug, Clone)]
pub struct Cached {
    pub bytes: Bytes,
    pub hash: String,
}

impl Cached {
    fn new(value: &serde_json::Value) -> Cached {
        // Serializing a serde_json::Value cannot fail: keys are strings.
        Cached::from_bytes(serde_json::to_vec(value).unwrap_or_default())
    }

    fn from_bytes(bytes: Vec<u8>) -> Cached {
        let bytes = Bytes::from(bytes);
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
/// kept (~1 MB): kubectl 1.29+ never asks for it, and older ones ask for the
/// protobuf form, also generated per request.
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

/// The forms an OpenAPI document can be served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Json,
    Protobuf,
}

/// The other spelling kube-openapi accepts for the v2 protobuf, and the one
/// it puts in `Content-Type`.
const PROTOBUF_LEGACY: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Negotiates `Accept`: the first acceptable range wins, ranked by `q`.
/// `None` when nothing offered is acceptable (406).
fn negotiate(headers: &HeaderMap, offer_protobuf: bool) -> Option<Form> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Form::Json);
    };
    let mut ranges: Vec<(f32, usize, Form)> = Vec::new();
    for (i, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let form = match media {
            "application/json" | "application/*" | "*/*" | "" => Form::Json,
            protobuf::MEDIA_TYPE | PROTOBUF_LEGACY if offer_protobuf => Form::Protobuf,
            _ => continue,
        };
        if q > 0.0 {
            ranges.push((q, i, form));
        }
    }
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.first().map(|r| r.2)
}

fn json_response(doc: &Cached, immutable: bool) -> Response {
    respond("application/json", doc, immutable)
}

fn respond(content_type: &'static str, doc: &Cached, immutable: bool) -> Response {
    let cache_control = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
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

/// Generation takes tens of milliseconds (more in debug builds); keep it
/// off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "OpenAPI generation failed",
    )
        .into_response()
}

async fn serve_v2(headers: HeaderMap) -> Response {
    match negotiate(&headers, true) {
        Some(Form::Json) => match blocking(v2).await {
            Some(doc) => json_response(&doc, false),
            None => internal_error(),
        },
        Some(Form::Protobuf) => {
            let doc = blocking(|| Cached::from_bytes(protobuf::encode(&document::v2_document())));
            match doc.await {
                // kube-openapi answers with the dotted spelling: Go's mime
                // parser (used by client-go on responses) rejects the `@`.
                Some(doc) => respond(PROTOBUF_LEGACY, &doc, false),
                None => internal_error(),
            }
        }
        None => not_acceptable(),
    }
}

async fn serve_index(headers: HeaderMap) -> Response {
    if negotiate(&headers, false).is_none() {
        return not_acceptable();
    }
    match blocking(v3_index).await {
        Some(doc) => json_response(doc, false),
        None => internal_error(),
    }
}

async fn serve_v3(
    Path(path): Path<String>,
    Query(q): Query<HashQuery>,
    headers: HeaderMap,
) -> Response {
    if negotiate(&headers, false).is_none() {
        return not_acceptable();
    }
    let path = path.trim_matches('/').to_string();
    match blocking(move || v3(&path)).await.flatten() {
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
    fn accept_negotiation_picks_the_form() {
        let pb = protobuf::MEDIA_TYPE;
        let cases: Vec<(String, bool, Option<Form>)> = vec![
            (pb.to_string(), true, Some(Form::Protobuf)),
            (pb.to_string(), false, None),
            (PROTOBUF_LEGACY.to_string(), true, Some(Form::Protobuf)),
            ("application/json".into(), true, Some(Form::Json)),
            ("application/json, */*".into(), false, Some(Form::Json)),
            (
                format!("{pb}, application/json;q=0.9"),
                true,
                Some(Form::Protobuf),
            ),
            (
                format!("{pb}, application/json;q=0.9"),
                false,
                Some(Form::Json),
            ),
            (
                format!("{pb};q=0.5, application/json"),
                true,
                Some(Form::Json),
            ),
            ("text/html".into(), true, None),
        ];
        for (accept, protobuf, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT,
                HeaderValue::from_str(&accept).expect("header"),
            );
            assert_eq!(negotiate(&h, protobuf), want, "{accept}");
        }
        assert_eq!(negotiate(&HeaderMap::new(), true), Some(Form::Json));
    }
}
