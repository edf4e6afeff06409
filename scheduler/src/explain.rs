//! Explanations: the last attempt's per-node Filter verdicts and score
//! breakdown for each pod, kept in memory and served as JSON on
//! `GET /explain/<namespace>/<pod>`.
//!
//! Clients find the endpoint through the API server, so users need not
//! know the scheduler's port: the scheduler records its URL in the
//! annotation [`URL_ANNOTATION`] of the Lease [`LEASE_NAMESPACE`]/[`LEASE_NAME`]
//! (the name kube-scheduler's leader election uses), which `fkctl
//! explain-placement` reads with the user's kubeconfig.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

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

/// Where the scheduler announces its explanations endpoint.
pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "kube-scheduler";
pub const URL_ANNOTATION: &str = "scheduler.ferrokube.io/explain-url";

/// Records `url` on the scheduler's Lease (creating the namespace and the
/// Lease when missing) for clients to find.
pub async fn publish(client: &kube::Client, url: &str, holder: &str) -> Result<(), kube::Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": LEASE_NAMESPACE}}))
        .map_err(kube::Error::SerdeError)?;
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "annotations": {URL_ANNOTATION: url}},
        "spec": {"holderIdentity": holder},
    });
    leases
        .patch(
            LEASE_NAME,
            &PatchParams::apply("ferrokube-scheduler").force(),
            &Patch::Apply(lease),
        )
        .await
        .map(|_| ())
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
