//! PersistentVolume and PersistentVolumeClaim strategies, after Kubernetes'
//! `pkg/registry/core/persistentvolume{,claim}/strategy.go`: new objects
//! start `Pending`, defaults (`Retain`, `Filesystem`) are filled in, and
//! validation checks what the binder relies on (capacity, access modes,
//! exactly one volume source, the claim's storage request) plus the
//! immutability of a claim's spec once created.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::quantity::parse_nanos;
use crate::registry::{FieldError, FieldPath, NameRule, Strategy};

pub struct PersistentVolumeStrategy;
pub struct PersistentVolumeClaimStrategy;

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const RECLAIM_POLICIES: [&str; 3] = ["Delete", "Recycle", "Retain"];
const VOLUME_MODES: [&str; 2] = ["Block", "Filesystem"];

fn validate_access_modes(modes: Option<&Vec<String>>, path: &FieldPath) -> Vec<FieldError> {
    let modes = modes.map(Vec::as_slice).unwrap_or_default();
    if modes.is_empty() {
        return vec![FieldError::required(
            path,
            "at least 1 access mode is required",
        )];
    }
    let mut errs: Vec<FieldError> = modes
        .iter()
        .filter(|m| !ACCESS_MODES.contains(&m.as_str()))
        .map(|m| FieldError::not_supported(path, m, &ACCESS_MODES))
        .collect();
    if modes.iter().any(|m| m == "ReadWriteOncePod") && modes.len() > 1 {
        errs.push(FieldError::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    errs
}

fn validate_storage(
    q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    path: &FieldPath,
) -> Vec<FieldError> {
    match q {
        None => vec![FieldError::required(path, "")],
        Some(q) => match parse_nanos(q) {
            Some(n) if n > 0 => vec![],
            Some(_) => vec![FieldError::invalid(path, &q.0, "must be greater than zero")],
            None => vec![FieldError::invalid(
                path,
                &q.0,
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            )],
        },
    }
}

fn now() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now()))
}

impl Strategy for PersistentVolumeStrategy {
    type Object = PersistentVolume;

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Subdomain
    }

    /// A new volume is `Pending` until the binder sees it (then
    /// `Available`), with the phase transition time set, as Kubernetes'
    /// `PrepareForCreate` does.
    fn prepare_for_create(&self, pv: &mut PersistentVolume) {
        pv.status = Some(PersistentVolumeStatus {
            phase: Some("Pending".into()),
            last_phase_transition_time: Some(now()),
            ..Default::default()
        });
    }

    fn default(&self, pv: &mut PersistentVolume) {
        let spec = pv.spec.get_or_insert_with(Default::default);
        spec.persistent_volume_reclaim_policy
            .get_or_insert_with(|| "Retain".into());
        spec.volume_mode.get_or_insert_with(|| "Filesystem".into());
    }

    fn validate(&self, pv: &PersistentVolume) -> Vec<FieldError> {
        let path = FieldPath::new("spec");
        let Some(spec) = pv.spec.as_ref() else {
            return vec![FieldError::required(&path, "")];
        };
        let mut errs =
            validate_access_modes(spec.access_modes.as_ref(), &path.child("accessModes"));
        let capacity = path.child("capacity");
        match spec.capacity.as_ref() {
            Some(c) if !c.is_empty() => {
                errs.extend(validate_storage(c.get("storage"), &capacity.key("storage")));
            }
            _ => errs.push(FieldError::required(&capacity, "")),
        }
        let sources = [
            spec.host_path.is_some(),
            spec.local.is_some(),
            spec.nfs.is_some(),
            spec.csi.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if sources == 0 {
            errs.push(FieldError::required(&path, "must specify a volume type"));
        } else if sources > 1 {
            errs.push(FieldError::forbidden(
                &path,
                "may not specify more than 1 volume type",
            ));
        }
        if let Some(host) = &spec.host_path
            && !host.path.starts_with('/')
        {
            errs.push(FieldError::invalid(
                &path.child("hostPath").child("path"),
                &host.path,
                "must be an absolute path",
            ));
        }
        if let Some(local) = &spec.local {
            if !local.path.starts_with('/') {
                errs.push(FieldError::invalid(
                    &path.child("local").child("path"),
                    &local.path,
                    "must be an absolute path",
                ));
            }
            // Kubernetes requires nodeAffinity for local volumes.
            if spec.node_affinity.is_none() {
                errs.push(FieldError::required(
                    &path.child("nodeAffinity"),
                    "Local volume requires node affinity",
                ));
            }
        }
        if let Some(policy) = &spec.persistent_volume_reclaim_policy
            && !RECLAIM_POLICIES.contains(&policy.as_str())
        {
            errs.push(FieldError::not_supported(
                &path.child("persistentVolumeReclaimPolicy"),
                policy,
                &RECLAIM_POLICIES,
            ));
        }
        if let Some(mode) = &spec.volume_mode
            && !VOLUME_MODES.contains(&mode.as_str())
        {
            errs.push(FieldError::not_supported(
                &path.child("volumeMode"),
                mode,
                &VOLUME_MODES,
            ));
        }
        errs
    }
}

impl Strategy for PersistentVolumeClaimStrategy {
    type Object = PersistentVolumeClaim;

    fn prepare_for_create(&self, pvc: &mut PersistentVolumeClaim) {
        pvc.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    fn default(&self, pvc: &mut PersistentVolumeClaim) {
        pvc.spec
            .get_or_insert_with(Default::default)
            .volume_mode
            .get_or_insert_with(|| "Filesystem".into());
    }

    fn validate(&self, pvc: &PersistentVolumeClaim) -> Vec<FieldError> {
        let path = FieldPath::new("spec");
        let Some(spec) = pvc.spec.as_ref() else {
            return vec![FieldError::required(&path, "")];
        };
        let mut errs =
            validate_access_modes(spec.access_modes.as_ref(), &path.child("accessModes"));
        let requests = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
        errs.extend(validate_storage(
            requests.and_then(|r| r.get("storage")),
            &path.child("resources").child("requests").key("storage"),
        ));
        if let Some(mode) = &spec.volume_mode
            && !VOLUME_MODES.contains(&mode.as_str())
        {
            errs.push(FieldError::not_supported(
                &path.child("volumeMode"),
                mode,
                &VOLUME_MODES,
            ));
        }
        errs
    }

    /// The spec is immutable after creation except the storage request and
    /// a `volumeName` set for the first time (the binder's write).
    fn validate_update(
        &self,
        new: &PersistentVolumeClaim,
        old: &PersistentVolumeClaim,
    ) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        let (Some(new_spec), Some(old_spec)) = (new.spec.as_ref(), old.spec.as_ref()) else {
            return errs;
        };
        let mut comparable = new_spec.clone();
        comparable.resources = old_spec.resources.clone();
        if old_spec.volume_name.as_deref().unwrap_or("").is_empty() {
            comparable.volume_name = old_spec.volume_name.clone();
        }
        if &comparable != old_spec {
            errs.push(FieldError::forbidden(
                &FieldPath::new("spec"),
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::strategies::testutil::messages;

    fn pv(spec: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "pv1"}, "spec": spec}))
            .expect("pv")
    }

    fn pvc(spec: serde_json::Value) -> PersistentVolumeClaim {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "c", "namespace": "default"}, "spec": spec}),
        )
        .expect("pvc")
    }

    #[test]
    fn persistent_volumes_are_validated_like_kubernetes() {
        let cases = [
            (
                serde_json::json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}),
                vec![],
            ),
            (
                serde_json::json!({"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data"}}),
                vec!["spec.accessModes: Required value: at least 1 access mode is required"],
            ),
            (
                serde_json::json!({"accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}),
                vec!["spec.capacity: Required value"],
            ),
            (
                serde_json::json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}),
                vec!["spec: Required value: must specify a volume type"],
            ),
            (
                serde_json::json!({"capacity": {"storage": "1Gi"}, "accessModes": ["Sometimes"], "hostPath": {"path": "/d"}}),
                vec![
                    "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                ],
            ),
        ];
        for (spec, want) in cases {
            let mut object = pv(spec.clone());
            PersistentVolumeStrategy.default(&mut object);
            assert_eq!(
                messages(&PersistentVolumeStrategy.validate(&object)),
                want,
                "{spec}"
            );
        }
    }

    #[test]
    fn new_volumes_and_claims_start_pending_with_defaults() {
        let mut object = pv(serde_json::json!({}));
        PersistentVolumeStrategy.prepare_for_create(&mut object);
        PersistentVolumeStrategy.default(&mut object);
        let status = object.status.expect("status");
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        assert!(status.last_phase_transition_time.is_some());
        let spec = object.spec.expect("spec");
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
        assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
        let mut claim = pvc(serde_json::json!({}));
        PersistentVolumeClaimStrategy.prepare_for_create(&mut claim);
        assert_eq!(
            claim.status.and_then(|s| s.phase).as_deref(),
            Some("Pending")
        );
    }

    #[test]
    fn a_claim_needs_a_storage_request_and_keeps_its_spec() {
        let spec = serde_json::json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
        let old = pvc(spec.clone());
        assert!(PersistentVolumeClaimStrategy.validate(&old).is_empty());
        assert_eq!(
            messages(
                &PersistentVolumeClaimStrategy
                    .validate(&pvc(serde_json::json!({"accessModes": ["ReadWriteOnce"]})))
            ),
            vec!["spec.resources.requests[storage]: Required value"]
        );
        let mut bound = old.clone();
        bound.spec.as_mut().expect("spec").volume_name = Some("pv1".into());
        assert!(
            PersistentVolumeClaimStrategy
                .validate_update(&bound, &old)
                .is_empty(),
            "the binder may set volumeName once"
        );
        let mut changed = bound.clone();
        changed.spec.as_mut().expect("spec").access_modes = Some(vec!["ReadWriteMany".into()]);
        assert_eq!(
            PersistentVolumeClaimStrategy
                .validate_update(&changed, &bound)
                .len(),
            1
        );
    }
}
