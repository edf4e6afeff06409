//! The namespace controller (Kubernetes `pkg/controller/namespace`): a
//! namespace being deleted (phase Terminating, `spec.finalizers:
//! [kubernetes]`) has every object in it deleted, and only then loses its
//! `kubernetes` finalizer, which lets the API server remove it.
//!
//! Kubernetes clears the finalizer through `PUT .../finalize`; ferrokube
//! accepts the same change as an ordinary update of a terminating
//! namespace.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::resources::RESOURCES;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};

use crate::gc::dynamic_api;
use crate::informers::{Informers, wait_synced};
use crate::{Error, RESYNC, RETRY};

/// The finalizer the namespace controller owns.
pub const FINALIZER: &str = "kubernetes";

pub struct Ctx {
    pub client: Client,
}

pub async fn run(
    client: Client,
    informers: Informers,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let namespaces = informers.get::<Namespace>();
    let mut stop = Box::pin(stop);
    if !wait_synced(&mut stop, namespaces.ready()).await {
        return;
    }
    Controller::for_shared_stream(namespaces.applied(), namespaces.store())
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "namespace controller");
            }
        })
        .await;
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::info!(namespace = %ns.name_any(), error = %err, "namespace sync failed; retrying");
    Action::requeue(RETRY)
}

pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::requeue(RESYNC));
    }
    let has_finalizer = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if !has_finalizer {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let remaining = delete_content(&ctx.client, &name).await?;
    if remaining > 0 {
        // Pods with a grace period (and objects with finalizers) take a
        // while; poll as Kubernetes' namespace controller does.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let mut updated = (*ns).clone();
    if let Some(f) = updated.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        f.retain(|x| x != FINALIZER);
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api.replace(&name, &PostParams::default(), &updated).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes every namespaced object in `ns`; returns how many still exist.
async fn delete_content(client: &Client, ns: &str) -> Result<usize, Error> {
    let mut remaining = 0;
    for info in RESOURCES.iter().filter(|r| r.namespaced()) {
        let api = dynamic_api(client, info, Some(ns));
        let list = api.list(&ListParams::default()).await?;
        for o in list.items {
            remaining += 1;
            if o.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let dp = DeleteParams {
                propagation_policy: Some(kube::api::PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            match api.delete(&o.name_any(), &dp).await {
                Ok(either) => {
                    if either.is_right() {
                        remaining -= 1;
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => remaining -= 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(remaining)
}
