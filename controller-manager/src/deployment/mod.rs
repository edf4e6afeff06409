//! The Deployment controller (Kubernetes `pkg/controller/deployment`):
//! owns one ReplicaSet per pod template (named `<deployment>-<hash>`),
//! rolls between them by the Recreate or RollingUpdate strategy, scales
//! them proportionally during a rollout, prunes old ones beyond
//! `revisionHistoryLimit`, and reports rollout status and conditions.

mod rollout;
mod status;
pub mod util;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::selector::LabelSel;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Patch, PatchParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::claim::{Owner, claim, controller_of};
use crate::events::Recorder;
use crate::informers::{Informers, wait_synced};
use crate::{Error, RESYNC, RETRY};

pub struct Ctx {
    pub client: Client,
    pub sets: Store<ReplicaSet>,
    pub recorder: Recorder,
}

pub fn selector_of(d: &Deployment) -> Result<LabelSel, Error> {
    let sel = d
        .spec
        .as_ref()
        .map(|s| &s.selector)
        .ok_or_else(|| Error::Missing {
            object: d.name_any(),
            what: "spec",
        })?;
    LabelSel::from_label_selector(sel).map_err(|source| Error::Selector {
        object: d.name_any(),
        source,
    })
}

pub async fn run(
    client: Client,
    informers: Informers,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let sets = informers.get::<ReplicaSet>();
    let deployments = informers.get::<Deployment>();
    let mut stop = Box::pin(stop);
    let synced = futures::future::join(sets.ready(), deployments.ready());
    if !wait_synced(&mut stop, synced).await {
        return;
    }
    let controller = Controller::for_shared_stream(deployments.applied(), deployments.store());
    let rs_events = sets.objects();
    let sets = sets.store();
    let deployments = deployments.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "deployment-controller"),
        client,
        sets,
    });
    controller
        .watches_shared_stream(rs_events, move |rs: Arc<ReplicaSet>| {
            owners_of(&deployments, &rs)
        })
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "deployment controller");
            }
        })
        .await;
}

fn owners_of(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(r) = controller_of(rs) {
        if r.kind == "Deployment" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
        .filter(|d| selector_of(d).is_ok_and(|s| !s.is_empty() && s.matches(rs.labels())))
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::info!(deployment = %d.name_any(), error = %err, "sync failed; retrying");
    Action::requeue(RETRY)
}

pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.sets.wait_until_ready().await;
    let ns = d.namespace().unwrap_or_default();
    let selector = selector_of(&d)?;
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    if selector.is_empty() {
        // Kubernetes: an empty selector selects everything; refuse to act.
        return Ok(Action::requeue(RESYNC));
    }
    let candidates: Vec<Arc<ReplicaSet>> = ctx
        .sets
        .state()
        .into_iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let owned = claim(&api, &Owner::of(d.as_ref(), selector), candidates).await?;
    let sets: Vec<ReplicaSet> = owned.iter().map(|rs| (**rs).clone()).collect();
    let mut sync = rollout::Sync {
        d: (*d).clone(),
        api,
        sets,
        ctx: ctx.clone(),
    };
    if d.metadata.deletion_timestamp.is_some() {
        sync.sync_status().await?;
        return Ok(Action::await_change());
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    if paused || sync.is_scaling_event() {
        sync.sync(paused).await?;
    } else if sync.recreate() {
        sync.rollout_recreate().await?;
    } else {
        sync.rollout_rolling().await?;
    }
    // Re-check while a rollout is in flight so the progress deadline is
    // noticed even when nothing else changes.
    if !sync.complete() {
        return Ok(Action::requeue(Duration::from_secs(5)));
    }
    Ok(Action::requeue(RESYNC))
}

/// Bumps `status.collisionCount` after a name clash with a ReplicaSet of
/// another template, so the next hash differs.
async fn bump_collision_count(api: &Api<Deployment>, d: &Deployment) -> Result<(), Error> {
    let count = d
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0)
        + 1;
    api.patch_status(
        &d.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"collisionCount": count}})),
    )
    .await?;
    Ok(())
}
