//! The StatefulSet strategy (`pkg/registry/apps/statefulset`): apps/v1
//! defaults, validation (whose template check, as in Kubernetes, covers
//! only labels and annotations), the fields an update may change, scale.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};

use super::pod_defaults::{default_pod_template, default_pvc};
use super::validation::{
    selector_string, validate_annotations, validate_labels, validate_nonnegative,
};
use super::workload::{validate_selector, validate_selector_matches_template};
use crate::registry::{FieldError, FieldPath, NameRule, ScaleView, Strategy};

pub struct StatefulSetStrategy;

pub const STATEFULSET_UPDATE_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

fn validate_spec(spec: &StatefulSetSpec) -> Vec<FieldError> {
    let path = FieldPath::new("spec");
    let mut errs = Vec::new();
    match spec.pod_management_policy.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(&path.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            &path.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = spec.update_strategy.clone().unwrap_or_default();
    let usp = path.child("updateStrategy");
    match us.type_.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(&usp, "")),
        "OnDelete" => {
            if let Some(ru) = &us.rolling_update {
                errs.push(FieldError::invalid(
                    &usp.child("rollingUpdate"),
                    serde_json::to_string(ru).unwrap_or_default(),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(p) = us.rolling_update.as_ref().and_then(|r| r.partition) {
                errs.extend(validate_nonnegative(
                    i64::from(p),
                    &usp.child("rollingUpdate").child("partition"),
                ));
            }
        }
        other => errs.push(FieldError::invalid(
            &usp,
            other,
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        let pp = path.child("persistentVolumeClaimRetentionPolicy");
        for (field, value) in [
            ("whenDeleted", &policy.when_deleted),
            ("whenScaled", &policy.when_scaled),
        ] {
            let v = value.as_deref().unwrap_or("");
            if !["Retain", "Delete"].contains(&v) {
                errs.push(FieldError::not_supported(
                    &pp.child(field),
                    v,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    errs.extend(validate_nonnegative(
        i64::from(spec.replicas.unwrap_or(0)),
        &path.child("replicas"),
    ));
    errs.extend(validate_nonnegative(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &path.child("minReadySeconds"),
    ));
    if let Some(start) = spec.ordinals.as_ref().and_then(|o| o.start) {
        errs.extend(validate_nonnegative(
            i64::from(start),
            &path.child("ordinals.start"),
        ));
    }
    errs.extend(validate_selector(
        &spec.selector,
        &path.child("selector"),
        "statefulset",
    ));
    let tp = path.child("template");
    errs.extend(validate_selector_matches_template(
        &spec.selector,
        &spec.template,
        &tp,
    ));
    if let Some(meta) = &spec.template.metadata {
        if let Some(labels) = &meta.labels {
            errs.extend(validate_labels(labels, &tp.child("labels")));
        }
        if let Some(annotations) = &meta.annotations {
            errs.extend(validate_annotations(annotations, &tp.child("annotations")));
        }
    }
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let rp = pod_spec.restart_policy.as_deref().unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            &tp.child("spec").child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    if pod_spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &tp.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in StatefulSet is not Supported",
        ));
    }
    errs
}

impl Strategy for StatefulSetStrategy {
    type Object = StatefulSet;

    /// `ValidateStatefulSetName` is a DNS label: pod names and hostnames derive from it.
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Label
    }

    fn default(&self, sts: &mut StatefulSet) {
        let spec = sts.spec.get_or_insert_with(Default::default);
        if spec
            .pod_management_policy
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            spec.pod_management_policy = Some("OrderedReady".to_string());
        }
        let us = spec.update_strategy.get_or_insert_with(Default::default);
        if us.type_.as_deref().unwrap_or("").is_empty() {
            us.type_ = Some("RollingUpdate".to_string());
            us.rolling_update.get_or_insert_with(Default::default);
        }
        if us.type_.as_deref() == Some("RollingUpdate")
            && let Some(ru) = us.rolling_update.as_mut()
        {
            ru.partition.get_or_insert(0);
        }
        let policy = spec
            .persistent_volume_claim_retention_policy
            .get_or_insert_with(Default::default);
        for field in [&mut policy.when_deleted, &mut policy.when_scaled] {
            if field.as_deref().unwrap_or("").is_empty() {
                *field = Some("Retain".to_string());
            }
        }
        spec.replicas.get_or_insert(1);
        spec.revision_history_limit.get_or_insert(10);
        default_pod_template(&mut spec.template);
        for pvc in spec.volume_claim_templates.iter_mut().flatten() {
            default_pvc(pvc);
        }
    }

    fn validate(&self, sts: &StatefulSet) -> Vec<FieldError> {
        validate_spec(&sts.spec.clone().unwrap_or_default())
    }

    fn validate_update(&self, new: &StatefulSet, old: &StatefulSet) -> Vec<FieldError> {
        let new_spec = new.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        let mut errs = validate_spec(&new_spec);
        let mut munged = new_spec;
        munged.replicas = old_spec.replicas;
        munged.template = old_spec.template.clone();
        munged.update_strategy = old_spec.update_strategy.clone();
        munged.min_ready_seconds = old_spec.min_ready_seconds;
        munged.ordinals = old_spec.ordinals.clone();
        munged.persistent_volume_claim_retention_policy =
            old_spec.persistent_volume_claim_retention_policy.clone();
        if munged != old_spec {
            errs.push(FieldError::forbidden(
                &FieldPath::new("spec"),
                STATEFULSET_UPDATE_FORBIDDEN,
            ));
        }
        errs
    }

    fn scale(&self, sts: &StatefulSet) -> Option<ScaleView> {
        let spec = sts.spec.clone().unwrap_or_default();
        Some(ScaleView {
            spec_replicas: spec.replicas.unwrap_or(0),
            status_replicas: sts.status.as_ref().map_or(0, |s| s.replicas),
            selector: selector_string(&spec.selector),
        })
    }

    fn set_replicas(&self, sts: &mut StatefulSet, replicas: i32) {
        sts.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;

    use super::*;
    use crate::registry::strategies::testutil::{
        defaulted_template_json, messages, meta, selector, template,
    };

    fn stateful_set() -> StatefulSet {
        StatefulSet {
            metadata: meta("db"),
            spec: Some(StatefulSetSpec {
                selector: selector(&[("app", "db")]),
                template: template(&[("app", "db")]),
                service_name: Some("db".into()),
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: meta("data"),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_minimal_stateful_set_gets_exactly_kubernetes_defaults() {
        let mut sts = stateful_set();
        StatefulSetStrategy.default(&mut sts);
        let mut spec = serde_json::to_value(&sts.spec).expect("serializable");
        let claims = spec
            .as_object_mut()
            .and_then(|s| s.remove("volumeClaimTemplates"));
        assert_eq!(
            spec,
            serde_json::json!({
                "podManagementPolicy": "OrderedReady",
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "db"}},
                "serviceName": "db",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "template": defaulted_template_json(&[("app", "db")]),
            })
        );
        assert_eq!(
            claims,
            Some(serde_json::json!([{
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "default"},
                "spec": {"volumeMode": "Filesystem"},
                "status": {"phase": "Pending"}
            }]))
        );
        assert!(StatefulSetStrategy.validate(&sts).is_empty());
        assert_eq!(StatefulSetStrategy.name_rule(), NameRule::Dns1123Label);
    }

    #[test]
    fn stateful_set_validation_reports_kubernetes_messages() {
        type Edit = fn(&mut StatefulSetSpec);
        let cases: Vec<(Edit, &str)> = vec![
            (
                |s| s.selector = Default::default(),
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset",
            ),
            (
                |s| s.pod_management_policy = Some("Random".into()),
                r#"spec.podManagementPolicy: Invalid value: "Random": must be 'OrderedReady' or 'Parallel'"#,
            ),
            (
                |s| s.replicas = Some(-2),
                "spec.replicas: Invalid value: -2: must be greater than or equal to 0",
            ),
            (
                |s| {
                    s.template
                        .spec
                        .as_mut()
                        .expect("spec")
                        .active_deadline_seconds = Some(3)
                },
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not Supported",
            ),
        ];
        for (edit, want) in cases {
            let mut sts = stateful_set();
            StatefulSetStrategy.default(&mut sts);
            edit(sts.spec.as_mut().expect("spec"));
            let got = messages(&StatefulSetStrategy.validate(&sts));
            assert!(got.contains(&want.to_string()), "{want}: {got:#?}");
        }
    }

    #[test]
    fn stateful_set_updates_may_only_touch_the_allowed_fields() {
        let mut old = stateful_set();
        StatefulSetStrategy.default(&mut old);
        let mut scaled = old.clone();
        StatefulSetStrategy.set_replicas(&mut scaled, 3);
        assert!(
            StatefulSetStrategy
                .validate_update(&scaled, &old)
                .is_empty()
        );
        let mut renamed = old.clone();
        renamed.spec.as_mut().expect("spec").service_name = Some("other".into());
        assert_eq!(
            messages(&StatefulSetStrategy.validate_update(&renamed, &old)),
            vec![format!("spec: Forbidden: {STATEFULSET_UPDATE_FORBIDDEN}")]
        );
        assert_eq!(
            StatefulSetStrategy
                .scale(&scaled)
                .map(|s| (s.spec_replicas, s.selector)),
            Some((3, "app=db".to_string()))
        );
    }
}
