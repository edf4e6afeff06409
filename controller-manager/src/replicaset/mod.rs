//! The ReplicaSet controller (Kubernetes `pkg/controller/replicaset`):
//! keeps `spec.replicas` active pods matching the selector, adopting orphans
//! and releasing pods it no longer selects, and reports counts in status.

pub mod slow_start;
mod status;

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::selector::LabelSel;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use crate::claim::{Owner, claim, controller_of};
use crate::events::{NORMAL, Recorder, WARNING, api_message};
use crate::expectations::Expectations;
use crate::informers::{Informers, wait_synced};
use crate::pods::{is_active, sort_for_deletion};
use crate::{Error, RESYNC, RETRY};

/// Kubernetes' `burstReplicas`: at most this many creations or deletions
/// per sync.
pub const BURST: usize = 500;

pub struct Ctx {
    pub client: Client,
    pub pods: Store<Pod>,
    pub expectations: Expectations,
    pub recorder: Recorder,
}

/// The selector of a ReplicaSet; a missing one selects nothing.
pub fn selector_of(rs: &ReplicaSet) -> Result<LabelSel, Error> {
    let sel = rs
        .spec
        .as_ref()
        .map(|s| &s.selector)
        .ok_or_else(|| Error::Missing {
            object: rs.name_any(),
            what: "spec",
        })?;
    LabelSel::from_label_selector(sel).map_err(|source| Error::Selector {
        object: rs.name_any(),
        source,
    })
}

pub async fn run(
    client: Client,
    informers: Informers,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let pods = informers.get::<Pod>();
    let sets = informers.get::<ReplicaSet>();
    let mut stop = Box::pin(stop);
    if !wait_synced(&mut stop, futures::future::join(pods.ready(), sets.ready())).await {
        return;
    }
    let controller = Controller::for_shared_stream(sets.applied(), sets.store());
    let pod_events = pods.objects();
    let pods = pods.store();
    let sets = sets.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "replicaset-controller"),
        client,
        pods,
        expectations: Expectations::default(),
    });
    controller
        .watches_shared_stream(pod_events, move |pod: Arc<Pod>| owners_of(&sets, &pod))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "replicaset controller");
            }
        })
        .await;
}

/// The ReplicaSets a pod event concerns: its controller, or for an orphan
/// every set in its namespace whose selector matches it.
fn owners_of(sets: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    if let Some(r) = controller_of(pod) {
        if r.kind == "ReplicaSet" {
            return vec![ObjectRef::new(&r.name).within(&ns)];
        }
        return Vec::new();
    }
    sets.state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
        .filter(|rs| selector_of(rs).is_ok_and(|s| !s.is_empty() && s.matches(pod.labels())))
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

fn error_policy(rs: Arc<ReplicaSet>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::info!(replicaset = %rs.name_any(), error = %err, "sync failed; retrying");
    Action::requeue(RETRY)
}

pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let ns = rs.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", rs.name_any());
    let selector = selector_of(&rs)?;
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let candidates: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    // Pending creations are looked up by name in the cache; the uid index
    // for pending deletions is built only when one is pending. Every pod
    // event of a burst reconciles the set again, so this stays cheap.
    let live_uids = std::cell::OnceCell::new();
    let satisfied = ctx.expectations.satisfied(
        &key,
        |name| ctx.pods.get(&ObjectRef::new(name).within(&ns)).is_some(),
        |uid| {
            live_uids
                .get_or_init(|| {
                    candidates
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .filter_map(|p| p.metadata.uid.as_deref())
                        .collect::<HashSet<&str>>()
                })
                .contains(uid)
        },
    );
    drop(live_uids);
    // An empty selector would claim every pod in the namespace; Kubernetes
    // validation forbids it, so treat it as selecting nothing.
    let owned = if selector.is_empty() {
        Vec::new()
    } else {
        claim(&pod_api, &Owner::of(rs.as_ref(), selector), candidates).await?
    };
    let active: Vec<&Pod> = owned
        .iter()
        .map(Arc::as_ref)
        .filter(|p| is_active(p))
        .collect();
    if rs.metadata.deletion_timestamp.is_some() {
        ctx.expectations.forget(&key);
    }
    // Where a sync spends its time: the creations of a burst, or the
    // status write (what the controllers benchmark's figures break down).
    let began = Instant::now();
    let managed = if satisfied && rs.metadata.deletion_timestamp.is_none() {
        manage(&rs, &key, &active, &pod_api, &ctx).await
    } else {
        Ok(())
    };
    let managed_in = began.elapsed();
    let now = jiff::Timestamp::now();
    let failure = managed.as_ref().err().map(|e| match e {
        Error::Kube(k) => api_message(k),
        other => other.to_string(),
    });
    let new_status = status::calculate(&rs, &active, failure, now);
    status::write(&ctx.client, &rs, &new_status).await?;
    tracing::debug!(
        replicaset = %key,
        active = active.len(),
        satisfied,
        manage_ms = managed_in.as_secs_f64() * 1e3,
        status_ms = (began.elapsed() - managed_in).as_secs_f64() * 1e3,
        "synced"
    );
    managed?;
    let spec = rs.spec.as_ref();
    let replicas = spec.and_then(|s| s.replicas).unwrap_or(1);
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    if min_ready > 0
        && new_status.ready_replicas == Some(replicas)
        && new_status.available_replicas != Some(replicas)
    {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::requeue(RESYNC))
}

async fn manage(
    rs: &ReplicaSet,
    key: &str,
    active: &[&Pod],
    api: &Api<Pod>,
    ctx: &Ctx,
) -> Result<(), Error> {
    let replicas = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    if active.len() < replicas {
        let want = (replicas - active.len()).min(BURST);
        // Slow start, as Kubernetes: batches of 1, 2, 4, ... so a failing
        // create (quota, admission) costs one request, not hundreds.
        // Expectations are recorded per created pod (by name, which only
        // the API server knows), so a failed or skipped create is never
        // expected: Kubernetes' `ExpectCreations(diff)` lowered by one per
        // failure and per skipped pod. The same key never syncs twice at
        // once, so nothing reads them while the burst is in flight.
        let out = slow_start::slow_start_batch(want, 1, || create_pod(rs, api)).await;
        if out.skipped > 0 {
            tracing::debug!(replicaset = %key, skipped = out.skipped, "slow start stopped at a failure");
        }
        let mut failure = None;
        for r in out.results {
            match r {
                Ok(pod) => {
                    let name = pod.name_any();
                    ctx.expectations.expect_creation(key, name.clone());
                    ctx.recorder.emit(
                        rs,
                        NORMAL,
                        "SuccessfulCreate",
                        format!("Created pod: {name}"),
                    );
                }
                Err(e) => {
                    ctx.recorder.emit(
                        rs,
                        WARNING,
                        "FailedCreate",
                        format!("Error creating: {}", api_message(&e)),
                    );
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e.into());
        }
    } else if active.len() > replicas {
        let excess = (active.len() - replicas).min(BURST);
        let mut ranked = active.to_vec();
        sort_for_deletion(&mut ranked, active);
        // All at once, as Kubernetes' `manageReplicas` does.
        let doomed: Vec<&Pod> = ranked.into_iter().take(excess).collect();
        let results = futures::future::join_all(doomed.iter().map(|pod| {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            ctx.expectations.expect_deletion(key, uid.clone());
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            async move { api.delete(&pod.name_any(), &dp).await }
        }))
        .await;
        let mut failure = None;
        for (pod, r) in doomed.iter().zip(results) {
            let name = pod.name_any();
            match r {
                Ok(_) => {
                    ctx.recorder.emit(
                        rs,
                        NORMAL,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    );
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    // The pod stays; do not wait for its deletion.
                    ctx.expectations
                        .deletion_failed(key, pod.metadata.uid.as_deref().unwrap_or_default());
                    ctx.recorder.emit(
                        rs,
                        WARNING,
                        "FailedDelete",
                        format!("Error deleting: {}", api_message(&e)),
                    );
                    failure = Some(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e.into());
        }
    }
    Ok(())
}

async fn create_pod(rs: &ReplicaSet, api: &Api<Pod>) -> Result<Pod, kube::Error> {
    api.create(&PostParams::default(), &pod_from_template(rs))
        .await
}

/// A pod from the set's template (`GetPodFromTemplate`).
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let selector = LabelSel::default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![Owner::of(rs, selector).reference()]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}
