//! The PersistentVolume binder, the static-binding half of Kubernetes'
//! `pkg/controller/volume/persistentvolume/pv_controller.go`:
//! - a new volume becomes `Available`;
//! - a `Pending` claim is bound to the smallest `Available` volume that
//!   fits it (same `storageClassName` and `volumeMode`, every requested
//!   access mode, at least the requested storage), or to the volume it
//!   names in `spec.volumeName`: the volume's `claimRef` is written first
//!   (its resourceVersion guards against two claims taking one volume),
//!   then its phase `Bound`, then the claim's `volumeName` with the
//!   `pv.kubernetes.io/bind-completed` annotations, then the claim's
//!   status (`Bound`, the volume's capacity and access modes);
//! - a volume whose claim is gone is `Released` (`Retain`), or `Failed`
//!   for `Delete`/`Recycle`, which need a volume plugin ferrokube lacks.
//!
//! Dynamic provisioning (StorageClasses) is not done.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::informers::{Informers, wait_synced};
use crate::{Error, RESYNC, RETRY};

pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";

pub struct Ctx {
    pub client: Client,
    pub volumes: Store<PersistentVolume>,
}

/// A storage quantity in bytes (`1Gi`, `500M`, `1e9`), rounded up.
pub fn quantity_bytes(q: &str) -> Option<i128> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().ok()?;
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse().ok()?),
        _ => return None,
    };
    Some((value * multiplier).ceil() as i128)
}

fn storage(
    map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Option<i128> {
    map.and_then(|m| m.get("storage"))
        .and_then(|q| quantity_bytes(&q.0))
}

fn phase_of(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Whether `pv` can hold `claim` (ignoring its phase and claimRef).
pub fn fits(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let (Some(pv_spec), Some(spec)) = (pv.spec.as_ref(), claim.spec.as_ref()) else {
        return false;
    };
    let class = |c: &Option<String>| c.clone().unwrap_or_default();
    let mode = |m: &Option<String>| m.clone().unwrap_or_else(|| "Filesystem".into());
    let pv_modes = pv_spec.access_modes.clone().unwrap_or_default();
    let wanted = storage(spec.resources.as_ref().and_then(|r| r.requests.as_ref()));
    let capacity = storage(pv_spec.capacity.as_ref());
    class(&pv_spec.storage_class_name) == class(&spec.storage_class_name)
        && mode(&pv_spec.volume_mode) == mode(&spec.volume_mode)
        && spec
            .access_modes
            .iter()
            .flatten()
            .all(|m| pv_modes.contains(m))
        && matches!((wanted, capacity), (Some(w), Some(c)) if c >= w)
}

/// Whether `pv` is free for `claim`: no claimRef, or one naming it.
fn free_for(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    match pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        None => true,
        Some(r) => {
            r.name.as_deref() == claim.metadata.name.as_deref()
                && r.namespace.as_deref() == claim.metadata.namespace.as_deref()
                && r.uid
                    .as_deref()
                    .is_none_or(|u| Some(u) == claim.metadata.uid.as_deref())
        }
    }
}

/// `findBestMatchForClaim`: the smallest fitting volume, or the one the
/// claim names.
pub fn best_match<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
) -> Option<&'a PersistentVolume> {
    let named = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|n| !n.is_empty());
    volumes
        .into_iter()
        .filter(|pv| {
            named
                .as_deref()
                .is_none_or(|n| pv.metadata.name.as_deref() == Some(n))
        })
        .filter(|pv| matches!(phase_of(pv), "Available" | "Pending") || named.is_some())
        .filter(|pv| pv.metadata.deletion_timestamp.is_none())
        .filter(|pv| free_for(pv, claim) && fits(pv, claim))
        .min_by_key(|pv| storage(pv.spec.as_ref().and_then(|s| s.capacity.as_ref())))
}

pub async fn run(
    client: Client,
    informers: Informers,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let pvs = informers.get::<PersistentVolume>();
    let pvcs = informers.get::<PersistentVolumeClaim>();
    let mut stop = Box::pin(stop);
    if !wait_synced(&mut stop, futures::future::join(pvs.ready(), pvcs.ready())).await {
        return;
    }
    let volume_controller = Controller::for_shared_stream(pvs.applied(), pvs.store());
    let volumes = pvs.store();
    let claims = Controller::for_shared_stream(pvcs.applied(), pvcs.store());
    let claim_store = pvcs.store();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        volumes,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    // A new or freed volume may fit any pending claim.
    let claim_loop = claims
        .watches_shared_stream(pvs.objects(), move |_pv| {
            claim_store
                .state()
                .into_iter()
                .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound"))
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stopped())
        .run(reconcile_claim, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "volume binder (claims)");
            }
        });
    // A deleted claim releases its volume.
    let volume_loop = volume_controller
        .watches_shared_stream(pvcs.objects(), |claim: Arc<PersistentVolumeClaim>| {
            claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .filter(|n| !n.is_empty())
                .map(ObjectRef::<PersistentVolume>::new)
        })
        .graceful_shutdown_on(stopped())
        .run(reconcile_volume, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "volume binder (volumes)");
            }
        });
    let stopper = async move {
        stop.await;
        let _ = stop_tx.send(true);
    };
    tokio::join!(claim_loop, volume_loop, stopper);
}

fn error_policy<K: ResourceExt>(obj: Arc<K>, err: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::info!(object = %obj.name_any(), error = %err, "volume binding failed; retrying");
    Action::requeue(RETRY)
}

async fn set_volume_phase(
    client: &Client,
    name: &str,
    phase: &str,
    message: Option<&str>,
) -> Result<(), Error> {
    let api: Api<PersistentVolume> = Api::all(client.clone());
    let now = jiff::Timestamp::now();
    let patch = json!({"status": {"phase": phase, "message": message,
        "lastPhaseTransitionTime": jiff::Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Volume phases: Pending → Available; Bound → Released/Failed once its
/// claim is gone.
pub async fn reconcile_volume(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = pv.name_any();
    let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.clone());
    let Some(claim_ref) = claim_ref else {
        if phase_of(&pv) != "Available" {
            set_volume_phase(&ctx.client, &name, "Available", None).await?;
        }
        return Ok(Action::requeue(RESYNC));
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(
        ctx.client.clone(),
        claim_ref.namespace.as_deref().unwrap_or("default"),
    );
    let claim = claims
        .get_opt(claim_ref.name.as_deref().unwrap_or_default())
        .await?;
    let claim_alive = claim.as_ref().is_some_and(|c| {
        claim_ref
            .uid
            .as_deref()
            .is_none_or(|u| c.metadata.uid.as_deref() == Some(u))
    });
    if claim_alive || matches!(phase_of(&pv), "Released" | "Failed") {
        return Ok(Action::requeue(RESYNC));
    }
    // A claimRef without uid is a pre-binding waiting for its claim.
    if claim_ref.uid.is_none() {
        return Ok(Action::requeue(RESYNC));
    }
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.clone())
        .unwrap_or_else(|| "Retain".into());
    if policy == "Retain" {
        set_volume_phase(&ctx.client, &name, "Released", None).await?;
    } else {
        let message = format!(
            "error getting deleter volume plugin for volume \"{name}\": no deletable volume plugin matched"
        );
        set_volume_phase(&ctx.client, &name, "Failed", Some(&message)).await?;
    }
    Ok(Action::requeue(RESYNC))
}

/// Binds a pending claim to its best volume.
pub async fn reconcile_claim(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<Ctx>,
) -> Result<Action, Error> {
    let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    if bound || claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::requeue(RESYNC));
    }
    let volumes = ctx.volumes.state();
    let Some(pv) = best_match(&claim, volumes.iter().map(Arc::as_ref)) else {
        // Nothing fits yet: a new volume re-queues pending claims.
        return Ok(Action::requeue(RESYNC));
    };
    let ns = claim.namespace().unwrap_or_default();
    let claim_name = claim.name_any();
    let pv_name = pv.name_any();
    let volumes_api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let mut bound_pv = pv.clone();
    let spec = bound_pv.spec.get_or_insert_with(Default::default);
    spec.claim_ref = Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: Some(ns.clone()),
        name: Some(claim_name.clone()),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        ..Default::default()
    });
    bound_pv
        .annotations_mut()
        .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
    // The replace carries the cached resourceVersion: a racing binder
    // loses with a conflict and retries against the new state.
    volumes_api
        .replace(&pv_name, &PostParams::default(), &bound_pv)
        .await?;
    set_volume_phase(&ctx.client, &pv_name, "Bound", None).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = json!({
        "metadata": {"annotations": {ANN_BIND_COMPLETED: "yes", ANN_BOUND_BY_CONTROLLER: "yes"}},
        "spec": {"volumeName": pv_name},
    });
    claims
        .patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let pv_spec = pv.spec.clone().unwrap_or_default();
    let status = json!({"status": {
        "phase": "Bound",
        "accessModes": pv_spec.access_modes,
        "capacity": pv_spec.capacity,
    }});
    claims
        .patch_status(&claim_name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    tracing::info!(claim = %format!("{ns}/{claim_name}"), volume = %pv_name, "bound claim");
    Ok(Action::requeue(RESYNC))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str, size: &str, modes: &[&str], class: &str, phase: &str) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": modes,
                     "storageClassName": class, "hostPath": {"path": "/x"}},
            "status": {"phase": phase},
        }))
        .expect("pv")
    }

    fn claim(size: &str, modes: &[&str], class: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
            "spec": {"accessModes": modes, "storageClassName": class,
                     "resources": {"requests": {"storage": size}}},
        }))
        .expect("claim")
    }

    #[test]
    fn storage_quantities_parse_to_bytes() {
        for (q, want) in [
            ("1Gi", Some(1 << 30)),
            ("500M", Some(500_000_000)),
            ("1e3", Some(1000)),
            ("1.5Ki", Some(1536)),
            ("2x", None),
        ] {
            assert_eq!(quantity_bytes(q), want, "{q}");
        }
    }

    #[test]
    fn the_smallest_fitting_available_volume_wins() {
        let volumes = [
            pv("big", "10Gi", &["ReadWriteOnce"], "local", "Available"),
            pv(
                "small",
                "1Gi",
                &["ReadWriteOnce", "ReadOnlyMany"],
                "local",
                "Available",
            ),
            pv("tiny", "500Mi", &["ReadWriteOnce"], "local", "Available"),
            pv(
                "other-class",
                "1Gi",
                &["ReadWriteOnce"],
                "fast",
                "Available",
            ),
            pv("taken", "1Gi", &["ReadWriteOnce"], "local", "Bound"),
        ];
        let name = |c: &PersistentVolumeClaim| best_match(c, volumes.iter()).map(|v| v.name_any());
        assert_eq!(
            name(&claim("1Gi", &["ReadWriteOnce"], "local")).as_deref(),
            Some("small")
        );
        assert_eq!(
            name(&claim("2Gi", &["ReadWriteOnce"], "local")).as_deref(),
            Some("big")
        );
        assert_eq!(
            name(&claim("1Gi", &["ReadOnlyMany"], "local")).as_deref(),
            Some("small")
        );
        assert_eq!(name(&claim("1Gi", &["ReadWriteMany"], "local")), None);
        assert_eq!(name(&claim("20Gi", &["ReadWriteOnce"], "local")), None);
        assert_eq!(
            name(&claim("1Gi", &["ReadWriteOnce"], "")),
            None,
            "classes must match"
        );
    }

    #[test]
    fn a_volume_reserved_for_another_claim_is_skipped_and_a_named_one_taken() {
        let mut reserved = pv("reserved", "1Gi", &["ReadWriteOnce"], "", "Available");
        reserved.spec.as_mut().expect("spec").claim_ref = Some(ObjectReference {
            name: Some("someone-else".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        });
        let free = pv("free", "5Gi", &["ReadWriteOnce"], "", "Available");
        let volumes = [reserved, free];
        let c = claim("1Gi", &["ReadWriteOnce"], "");
        assert_eq!(
            best_match(&c, volumes.iter())
                .map(|v| v.name_any())
                .as_deref(),
            Some("free")
        );
        let mut named = c.clone();
        named.spec.as_mut().expect("spec").volume_name = Some("free".into());
        assert_eq!(
            best_match(&named, volumes.iter())
                .map(|v| v.name_any())
                .as_deref(),
            Some("free")
        );
        named.spec.as_mut().expect("spec").volume_name = Some("reserved".into());
        assert!(best_match(&named, volumes.iter()).is_none());
    }
}
