//! Explanations: the last attempt's per-node Filter verdicts and score
//! breakdown for each pod, kept in memory and served as JSON on
//! `GET /explain/<namespace>/<pod>`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::framework::runtime::Explanation;

/// How many pods' explanations are kept; the oldest are dropped first.
pub const CAPACITY: usize = 2_000;

#[derive(Default)]
struct Inner {
    by_pod: HashMap<String, Arc<Explanation>>,
    order: VecDeque<String>,
}

#[derive(Default, Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
}

impl Store {
    pub fn record(&self, key: String, explanation: Explanation) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner
            .by_pod
            .insert(key.clone(), Arc::new(explanation))
            .is_none()
        {
            inner.order.push_back(key);
        }
        while inner.order.len() > CAPACITY {
            if let Some(old) = inner.order.pop_front() {
                inner.by_pod.remove(&old);
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Explanation>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_pod.get(key).cloned()
    }
}

async fn explain(State(store): State<Store>, Path((ns, pod)): Path<(String, String)>) -> Response {
    match store.get(&format!("{ns}/{pod}")) {
        Some(e) => Json(e.as_ref().clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"message": format!("no scheduling attempt recorded for pod {ns}/{pod}")})),
        )
            .into_response(),
    }
}

pub fn router(store: Store) -> axum::Router {
    axum::Router::new()
        .route("/explain/{ns}/{pod}", get(explain))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(store)
}

/// Serves the endpoint until the task is dropped.
pub async fn serve(listen: SocketAddr, store: Store) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, router(store)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_explanations_are_dropped_past_capacity() {
        let s = Store::default();
        for i in 0..CAPACITY + 1 {
            s.record(format!("d/p{i}"), Explanation::default());
        }
        assert!(s.get("d/p0").is_none());
        assert!(s.get(&format!("d/p{CAPACITY}")).is_some());
    }
}
