//! The DaemonSet strategy (`pkg/registry/apps/daemonset`): apps/v1
//! defaults (RollingUpdate, maxUnavailable 1, maxSurge 0) and validation.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::gofmt::go_int_or_string;
use super::pod_defaults::default_pod_template;
use super::validation::{invalid_rendered, validate_nonnegative};
use super::workload::{
    int_or_percent_value, not_more_than_100_percent, validate_controller_template,
    validate_int_or_percent, validate_selector, validate_selector_immutable,
};
use crate::registry::{FieldError, FieldPath, Strategy};

pub struct DaemonSetStrategy;

fn validate_update_strategy(s: &DaemonSetUpdateStrategy, path: &FieldPath) -> Vec<FieldError> {
    match s.type_.as_deref().unwrap_or("") {
        "OnDelete" => Vec::new(),
        "RollingUpdate" => {
            let Some(ru) = &s.rolling_update else {
                return vec![FieldError::required(&path.child("rollingUpdate"), "")];
            };
            let rp = path.child("rollingUpdate");
            let mu = ru.max_unavailable.as_ref();
            let ms = ru.max_surge.as_ref();
            let mut errs = validate_int_or_percent(mu, &rp.child("maxUnavailable"));
            errs.extend(validate_int_or_percent(ms, &rp.child("maxSurge")));
            errs.extend(not_more_than_100_percent(mu, &rp.child("maxUnavailable")));
            errs.extend(not_more_than_100_percent(ms, &rp.child("maxSurge")));
            let has_unavailable = int_or_percent_value(mu).unwrap_or(0) != 0;
            let has_surge = int_or_percent_value(ms).unwrap_or(0) != 0;
            if has_unavailable && has_surge {
                errs.push(invalid_rendered(
                    &rp.child("maxSurge"),
                    go_int_or_string(ms),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !has_unavailable && !has_surge {
                errs.push(FieldError::required(
                    &rp.child("maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                ));
            }
            errs
        }
        other => vec![FieldError::not_supported(
            path,
            other,
            &["RollingUpdate", "OnDelete"],
        )],
    }
}

fn validate_spec(spec: &DaemonSetSpec) -> Vec<FieldError> {
    let path = FieldPath::new("spec");
    let mut errs = validate_selector(&spec.selector, &path.child("selector"), "daemonset");
    errs.extend(validate_controller_template(
        &spec.selector,
        &spec.template,
        &path.child("template"),
        "DaemonSet",
    ));
    errs.extend(validate_nonnegative(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &path.child("minReadySeconds"),
    ));
    errs.extend(validate_update_strategy(
        &spec.update_strategy.clone().unwrap_or_default(),
        &path.child("updateStrategy"),
    ));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(
            i64::from(r),
            &path.child("revisionHistoryLimit"),
        ));
    }
    errs
}

/// The annotation apps/v1 stores `spec.templateGeneration` in.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

fn template_generation(ds: &DaemonSet) -> i64 {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn set_template_generation(ds: &mut DaemonSet, generation: i64) {
    ds.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            TEMPLATE_GENERATION_ANNOTATION.to_string(),
            generation.to_string(),
        );
}

impl Strategy for DaemonSetStrategy {
    type Object = DaemonSet;

    fn default(&self, ds: &mut DaemonSet) {
        let spec = ds.spec.get_or_insert_with(Default::default);
        let us = spec.update_strategy.get_or_insert_with(Default::default);
        if us.type_.as_deref().unwrap_or("").is_empty() {
            us.type_ = Some("RollingUpdate".to_string());
        }
        if us.type_.as_deref() == Some("RollingUpdate") {
            let ru = us.rolling_update.get_or_insert_with(Default::default);
            ru.max_unavailable.get_or_insert(IntOrString::Int(1));
            ru.max_surge.get_or_insert(IntOrString::Int(0));
        }
        spec.revision_history_limit.get_or_insert(10);
        default_pod_template(&mut spec.template);
    }

    /// apps/v1 carries the internal `templateGeneration` as an annotation,
    /// which the DaemonSet controller stamps on its pods.
    fn prepare_for_create(&self, ds: &mut DaemonSet) {
        let generation = template_generation(ds).max(1);
        set_template_generation(ds, generation);
    }

    /// The template generation is the server's: kept from the stored
    /// object and bumped when the (defaulted) template changes.
    fn prepare_for_update(&self, new: &mut DaemonSet, old: &DaemonSet) {
        let mut defaulted = new.clone();
        self.default(&mut defaulted);
        let template_changed =
            defaulted.spec.map(|s| s.template) != old.spec.clone().map(|s| s.template);
        let old_generation = template_generation(old);
        let generation = if template_changed {
            old_generation + 1
        } else {
            old_generation
        };
        set_template_generation(new, generation);
    }

    fn validate(&self, ds: &DaemonSet) -> Vec<FieldError> {
        validate_spec(&ds.spec.clone().unwrap_or_default())
    }

    fn validate_update(&self, new: &DaemonSet, old: &DaemonSet) -> Vec<FieldError> {
        let new_spec = new.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        let mut errs = validate_spec(&new_spec);
        errs.extend(validate_selector_immutable(
            &new_spec.selector,
            &old_spec.selector,
        ));
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::strategies::testutil::{
        defaulted_template_json, messages, meta, selector, template,
    };

    fn daemon_set() -> DaemonSet {
        DaemonSet {
            metadata: meta("agent"),
            spec: Some(DaemonSetSpec {
                selector: selector(&[("app", "agent")]),
                template: template(&[("app", "agent")]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_minimal_daemon_set_gets_exactly_kubernetes_defaults() {
        let mut ds = daemon_set();
        DaemonSetStrategy.default(&mut ds);
        assert_eq!(
            serde_json::to_value(&ds.spec).expect("serializable"),
            serde_json::json!({
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"app": "agent"}},
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}
                },
                "template": defaulted_template_json(&[("app", "agent")]),
            })
        );
        assert!(DaemonSetStrategy.validate(&ds).is_empty());
    }

    #[test]
    fn template_generation_starts_at_one_and_follows_template_changes() {
        let mut ds = daemon_set();
        DaemonSetStrategy.default(&mut ds);
        DaemonSetStrategy.prepare_for_create(&mut ds);
        assert_eq!(template_generation(&ds), 1);

        let mut same = daemon_set();
        same.metadata.annotations = None;
        DaemonSetStrategy.prepare_for_update(&mut same, &ds);
        assert_eq!(
            template_generation(&same),
            1,
            "an undefaulted but equal template"
        );

        let mut changed = ds.clone();
        changed
            .spec
            .as_mut()
            .expect("spec")
            .template
            .spec
            .as_mut()
            .expect("spec")
            .containers[0]
            .image = Some("nginx:1.28".into());
        DaemonSetStrategy.prepare_for_update(&mut changed, &ds);
        assert_eq!(template_generation(&changed), 2);
    }

    #[test]
    fn daemon_set_validation_reports_kubernetes_messages() {
        type Edit = fn(&mut DaemonSetSpec);
        let cases: Vec<(Edit, &str)> = vec![
            (
                |s| s.selector = Default::default(),
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for daemonset",
            ),
            (
                |s| s.selector = selector(&[("app", "x")]),
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"agent"}: `selector` does not match template `labels`"#,
            ),
            (
                |s| {
                    let ru = s
                        .update_strategy
                        .as_mut()
                        .and_then(|u| u.rolling_update.as_mut())
                        .expect("defaulted");
                    ru.max_unavailable = Some(IntOrString::Int(0));
                },
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
            ),
            (
                |s| {
                    let ru = s
                        .update_strategy
                        .as_mut()
                        .and_then(|u| u.rolling_update.as_mut())
                        .expect("defaulted");
                    ru.max_surge = Some(IntOrString::String("10%".into()));
                },
                r#"spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"10%"}: may not be set when maxUnavailable is non-zero"#,
            ),
            (
                |s| s.update_strategy.as_mut().expect("defaulted").type_ = Some("Sometimes".into()),
                r#"spec.updateStrategy: Unsupported value: "Sometimes": supported values: "RollingUpdate", "OnDelete""#,
            ),
            (
                |s| {
                    s.template.spec.as_mut().expect("spec").restart_policy =
                        Some("OnFailure".into())
                },
                r#"spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always""#,
            ),
        ];
        for (edit, want) in cases {
            let mut ds = daemon_set();
            DaemonSetStrategy.default(&mut ds);
            edit(ds.spec.as_mut().expect("spec"));
            let got = messages(&DaemonSetStrategy.validate(&ds));
            assert!(got.contains(&want.to_string()), "{want}: {got:#?}");
        }
    }
}
