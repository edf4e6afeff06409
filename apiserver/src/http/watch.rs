//! Watch streams: newline-delimited `{"type":...,"object":...}` events from
//! the watch cache, filtered per watcher, with bookmarks and timeouts as
//! kube-apiserver sends them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use rand::Rng;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::negotiate::{Output, TABLE_CONTENT_TYPE};
use crate::cache::{CacheEvent, EventType};
use crate::error::ApiError;
use crate::registry::rest::{ListOptions, Registry};

const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// How an event appears to one watcher, given its selectors: a change out
/// of the selection is a DELETED, into it an ADDED (as in Kubernetes).
fn visible(
    reg: &dyn Registry,
    opts: &ListOptions,
    ns: Option<&str>,
    ev: &CacheEvent,
) -> Option<EventType> {
    let in_ns = |o: &crate::cache::CachedObject| ns.is_none_or(|n| o.namespace == n);
    let now = in_ns(&ev.obj) && reg.matches(&ev.obj, opts);
    let before = ev
        .prev
        .as_ref()
        .is_some_and(|p| in_ns(p) && reg.matches(p, opts));
    match ev.kind {
        EventType::Added => now.then_some(EventType::Added),
        EventType::Deleted => (now || before).then_some(EventType::Deleted),
        EventType::Modified => match (before, now) {
            (true, true) => Some(EventType::Modified),
            (false, true) => Some(EventType::Added),
            (true, false) => Some(EventType::Deleted),
            (false, false) => None,
        },
    }
}

/// Encodes one event line; Table watches wrap the object in a one-row
/// Table, with column definitions only in the first event.
fn encode(
    reg: &dyn Registry,
    kind: &str,
    obj: &Bytes,
    output: Output,
    include: &str,
    first: &mut bool,
) -> Bytes {
    let mut out = Vec::with_capacity(obj.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    match output {
        Output::Json => out.extend_from_slice(obj),
        Output::Table => {
            let table = reg
                .to_table(std::slice::from_ref(obj), include, *first)
                .unwrap_or_else(|e| e.status());
            *first = false;
            out.extend_from_slice(&serde_json::to_vec(&table).unwrap_or_default());
        }
    }
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn bookmark(reg: &dyn Registry, rv: i64, initial_end: bool) -> Bytes {
    let info = reg.info();
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let ev = json!({
        "type": "BOOKMARK",
        "object": {"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta},
    });
    let mut v = serde_json::to_vec(&ev).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn error_event(e: &ApiError) -> Bytes {
    let mut v =
        serde_json::to_vec(&json!({"type": "ERROR", "object": e.status()})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

pub async fn serve(
    reg: Arc<dyn Registry>,
    ns: Option<&str>,
    opts: ListOptions,
    q: &HashMap<String, String>,
    output: Output,
) -> Result<Response, ApiError> {
    let bookmarks = q
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let timeout = match q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()) {
        Some(t) => Duration::from_secs(t),
        // kube-apiserver spreads watch lifetimes over [30, 60) minutes.
        None => Duration::from_secs(rand::rng().random_range(1800..3600)),
    };
    let include = q
        .get("includeObject")
        .cloned()
        .unwrap_or_else(|| "Metadata".into());
    let ns = ns.map(str::to_string);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    // Errors before the stream starts (410 for a compacted rv) travel as an
    // ERROR event in a 200 stream, which is how clients expect them.
    let start = match reg.watch(ns.as_deref(), &opts).await {
        Ok(s) => s,
        Err(e) if e.code == 410 || e.code == 504 => {
            let _ = tx.send(Ok(error_event(&e))).await;
            drop(tx);
            return Ok(stream_response(rx, output));
        }
        Err(e) => return Err(e),
    };
    // The snapshot and the subscription were taken together under the
    // cache's lock, so live events follow the initial ones with no gap and
    // no overlap.
    tokio::spawn(async move {
        let mut first = true;
        let mut live = start.live;
        let mut reloaded = start.reloaded;
        let deadline = tokio::time::Instant::now() + timeout;
        let send_initial_end = opts.send_initial_events == Some(true) && bookmarks;
        for ev in &start.initial {
            if let Some(kind) = visible(reg.as_ref(), &opts, ns.as_deref(), ev) {
                let line = encode(
                    reg.as_ref(),
                    kind.as_str(),
                    &ev.obj.json,
                    output,
                    &include,
                    &mut first,
                );
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
        }
        let mut last_rv = start
            .initial
            .last()
            .map(|e| e.rv)
            .unwrap_or(0)
            .max(start.initial_rv);
        if send_initial_end
            && tx
                .send(Ok(bookmark(reg.as_ref(), start.initial_rv, true)))
                .await
                .is_err()
        {
            return;
        }
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = reloaded.changed() => return,
                _ = tick.tick(), if bookmarks => {
                    if let Some(rv) = start.cache.bookmark_revision(&live)
                        && rv > last_rv {
                            last_rv = rv;
                            if tx.send(Ok(bookmark(reg.as_ref(), rv, false))).await.is_err() {
                                return;
                            }
                        }
                }
                ev = live.recv() => match ev {
                    Ok(ev) => {
                        if let Some(kind) = visible(reg.as_ref(), &opts, ns.as_deref(), &ev) {
                            let line = encode(reg.as_ref(), kind.as_str(), &ev.obj.json, output, &include, &mut first);
                            if tx.send(Ok(line)).await.is_err() {
                                return;
                            }
                        }
                        last_rv = last_rv.max(ev.rv);
                    }
                    // A watcher too slow for the feed is closed, as
                    // kube-apiserver does; the client resumes from its rv.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    Ok(stream_response(rx, output))
}

fn stream_response(
    rx: mpsc::Receiver<Result<Bytes, std::convert::Infallible>>,
    output: Output,
) -> Response {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let ct = match output {
        Output::Json => "application/json",
        Output::Table => TABLE_CONTENT_TYPE,
    };
    let mut resp = (StatusCode::OK, Body::from_stream(stream)).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ct),
    );
    resp
}
