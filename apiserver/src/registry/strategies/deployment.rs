//! Deployment and ReplicaSet strategies (`pkg/registry/apps/deployment`,
//! `pkg/registry/apps/replicaset`) with apps/v1 defaults and validation.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy as DeploymentUpdateStrategy, ReplicaSet,
    ReplicaSetSpec, RollingUpdateDeployment,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::gofmt::go_int_or_string;
use super::pod_defaults::default_pod_template;
use super::validation::{invalid_rendered, selector_string, validate_nonnegative};
use super::workload::{
    int_or_percent_value, not_more_than_100_percent, validate_controller_template,
    validate_int_or_percent, validate_selector, validate_selector_immutable,
};
use crate::registry::{FieldError, FieldPath, ScaleView, Strategy};

pub struct DeploymentStrategy;
pub struct ReplicaSetStrategy;

fn default_deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    let strategy = spec.strategy.get_or_insert_with(Default::default);
    if strategy.type_.as_deref().unwrap_or("").is_empty() {
        strategy.type_ = Some("RollingUpdate".to_string());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let ru = strategy.rolling_update.get_or_insert_with(Default::default);
        ru.max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".to_string()));
        ru.max_surge
            .get_or_insert_with(|| IntOrString::String("25%".to_string()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    default_pod_template(&mut spec.template);
}

fn validate_rolling_update(ru: &RollingUpdateDeployment, path: &FieldPath) -> Vec<FieldError> {
    let mu = ru.max_unavailable.as_ref();
    let ms = ru.max_surge.as_ref();
    let mut errs = validate_int_or_percent(mu, &path.child("maxUnavailable"));
    errs.extend(validate_int_or_percent(ms, &path.child("maxSurge")));
    if int_or_percent_value(mu) == Some(0) && int_or_percent_value(ms) == Some(0) {
        errs.push(invalid_rendered(
            &path.child("maxUnavailable"),
            go_int_or_string(mu),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    errs.extend(not_more_than_100_percent(mu, &path.child("maxUnavailable")));
    errs
}

fn validate_strategy(s: &DeploymentUpdateStrategy, path: &FieldPath) -> Vec<FieldError> {
    match s.type_.as_deref().unwrap_or("") {
        "Recreate" if s.rolling_update.is_some() => vec![FieldError::forbidden(
            &path.child("rollingUpdate"),
            "may not be specified when strategy `type` is 'Recreate'",
        )],
        "Recreate" => Vec::new(),
        "RollingUpdate" => match &s.rolling_update {
            None => vec![FieldError::required(
                &path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )],
            Some(ru) => validate_rolling_update(ru, &path.child("rollingUpdate")),
        },
        // Kubernetes reports the whole strategy at `spec.strategy`.
        other => vec![FieldError::not_supported(
            path,
            other,
            &["Recreate", "RollingUpdate"],
        )],
    }
}

fn validate_deployment_spec(spec: &DeploymentSpec) -> Vec<FieldError> {
    let path = FieldPath::new("spec");
    let mut errs = validate_nonnegative(
        i64::from(spec.replicas.unwrap_or(0)),
        &path.child("replicas"),
    );
    errs.extend(validate_selector(
        &spec.selector,
        &path.child("selector"),
        "deployment",
    ));
    errs.extend(validate_controller_template(
        &spec.selector,
        &spec.template,
        &path.child("template"),
        "ReplicaSet",
    ));
    errs.extend(validate_strategy(
        &spec.strategy.clone().unwrap_or_default(),
        &path.child("strategy"),
    ));
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.extend(validate_nonnegative(
        i64::from(min_ready),
        &path.child("minReadySeconds"),
    ));
    if let Some(r) = spec.revision_history_limit {
        errs.extend(validate_nonnegative(
            i64::from(r),
            &path.child("revisionHistoryLimit"),
        ));
    }
    if let Some(p) = spec.progress_deadline_seconds {
        let pp = path.child("progressDeadlineSeconds");
        errs.extend(validate_nonnegative(i64::from(p), &pp));
        if p <= min_ready {
            errs.push(FieldError::invalid(
                &pp,
                p,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

impl Strategy for DeploymentStrategy {
    type Object = Deployment;

    fn default(&self, d: &mut Deployment) {
        default_deployment(d);
    }

    /// Annotation changes bump the generation too, since the controller
    /// copies annotations to its ReplicaSets; spec changes are the store's.
    fn prepare_for_update(&self, new: &mut Deployment, old: &Deployment) {
        let mut defaulted = new.clone();
        self.default(&mut defaulted);
        let spec_changed = defaulted.spec != old.spec;
        if !spec_changed && new.metadata.annotations != old.metadata.annotations {
            new.metadata.generation = Some(old.metadata.generation.unwrap_or(0) + 1);
        }
    }

    fn validate(&self, d: &Deployment) -> Vec<FieldError> {
        validate_deployment_spec(&d.spec.clone().unwrap_or_default())
    }

    fn validate_update(&self, new: &Deployment, old: &Deployment) -> Vec<FieldError> {
        let new_spec = new.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        let mut errs = validate_deployment_spec(&new_spec);
        errs.extend(validate_selector_immutable(
            &new_spec.selector,
            &old_spec.selector,
        ));
        errs
    }

    fn scale(&self, d: &Deployment) -> Option<ScaleView> {
        let spec = d.spec.clone().unwrap_or_default();
        Some(ScaleView {
            spec_replicas: spec.replicas.unwrap_or(0),
            status_replicas: d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            selector: selector_string(&spec.selector),
        })
    }

    fn set_replicas(&self, d: &mut Deployment, replicas: i32) {
        d.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    }
}

fn validate_replica_set_spec(spec: &ReplicaSetSpec) -> Vec<FieldError> {
    let path = FieldPath::new("spec");
    let mut errs = validate_nonnegative(
        i64::from(spec.replicas.unwrap_or(0)),
        &path.child("replicas"),
    );
    errs.extend(validate_nonnegative(
        i64::from(spec.min_ready_seconds.unwrap_or(0)),
        &path.child("minReadySeconds"),
    ));
    // Kubernetes' ReplicaSet validation reuses the Deployment wording.
    errs.extend(validate_selector(
        &spec.selector,
        &path.child("selector"),
        "deployment",
    ));
    let template = spec.template.clone().unwrap_or_default();
    errs.extend(validate_controller_template(
        &spec.selector,
        &template,
        &path.child("template"),
        "ReplicaSet",
    ));
    errs
}

impl Strategy for ReplicaSetStrategy {
    const FIELD_SOURCES: &'static [&'static str] = &["status.replicas"];

    type Object = ReplicaSet;

    fn default(&self, rs: &mut ReplicaSet) {
        let spec = rs.spec.get_or_insert_with(Default::default);
        spec.replicas.get_or_insert(1);
        default_pod_template(spec.template.get_or_insert_with(Default::default));
    }

    fn validate(&self, rs: &ReplicaSet) -> Vec<FieldError> {
        validate_replica_set_spec(&rs.spec.clone().unwrap_or_default())
    }

    fn validate_update(&self, new: &ReplicaSet, old: &ReplicaSet) -> Vec<FieldError> {
        let new_spec = new.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        let mut errs = validate_replica_set_spec(&new_spec);
        errs.extend(validate_selector_immutable(
            &new_spec.selector,
            &old_spec.selector,
        ));
        errs
    }

    fn selectable_fields(&self, rs: &ReplicaSet) -> Vec<(&'static str, String)> {
        let replicas = rs.status.as_ref().map_or(0, |s| s.replicas);
        vec![("status.replicas", replicas.to_string())]
    }

    fn scale(&self, rs: &ReplicaSet) -> Option<ScaleView> {
        let spec = rs.spec.clone().unwrap_or_default();
        Some(ScaleView {
            spec_replicas: spec.replicas.unwrap_or(0),
            status_replicas: rs.status.as_ref().map_or(0, |s| s.replicas),
            selector: selector_string(&spec.selector),
        })
    }

    fn set_replicas(&self, rs: &mut ReplicaSet, replicas: i32) {
        rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::registry::strategies::testutil::{
        defaulted_template_json, messages, meta, selector, template,
    };

    fn deployment(sel: &[(&str, &str)], labels: &[(&str, &str)]) -> Deployment {
        Deployment {
            metadata: meta("web"),
            spec: Some(DeploymentSpec {
                selector: selector(sel),
                template: template(labels),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn a_minimal_deployment_gets_exactly_kubernetes_defaults() {
        let mut d = deployment(&[("app", "web")], &[("app", "web")]);
        DeploymentStrategy.default(&mut d);
        let spec = serde_json::to_value(&d.spec).expect("serializable");
        assert_eq!(
            spec,
            serde_json::json!({
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
                },
                "template": defaulted_template_json(&[("app", "web")]),
            })
        );
        let again = d.clone();
        DeploymentStrategy.default(&mut d);
        assert_eq!(d, again, "defaulting is idempotent");
    }

    #[test]
    fn deployment_validation_reports_kubernetes_messages() {
        type Edit = fn(&mut DeploymentSpec);
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "labels mismatch",
                |s| s.selector = selector(&[("app", "other")]),
                r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`"#,
            ),
            (
                "empty selector",
                |s| s.selector = Default::default(),
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
            ),
            (
                "negative replicas",
                |s| s.replicas = Some(-1),
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                "template restart policy",
                |s| s.template.spec.as_mut().expect("spec").restart_policy = Some("Never".into()),
                r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#,
            ),
            (
                "both zero",
                |s| {
                    let ru = s
                        .strategy
                        .as_mut()
                        .and_then(|st| st.rolling_update.as_mut())
                        .expect("defaulted");
                    ru.max_surge = Some(IntOrString::Int(0));
                    ru.max_unavailable = Some(IntOrString::String("0%".into()));
                },
                r#"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"0%"}: may not be 0 when `maxSurge` is 0"#,
            ),
            (
                "over 100%",
                |s| {
                    let ru = s
                        .strategy
                        .as_mut()
                        .and_then(|st| st.rolling_update.as_mut())
                        .expect("defaulted");
                    ru.max_unavailable = Some(IntOrString::String("150%".into()));
                },
                r#"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater than 100%"#,
            ),
            (
                "recreate with rolling update",
                |s| s.strategy.as_mut().expect("defaulted").type_ = Some("Recreate".into()),
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
            ),
            (
                "progress deadline",
                |s| {
                    s.min_ready_seconds = Some(700);
                },
                "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
            ),
            (
                "template image",
                |s| s.template.spec.as_mut().expect("spec").containers[0].image = None,
                "spec.template.spec.containers[0].image: Required value",
            ),
            (
                "active deadline",
                |s| {
                    s.template
                        .spec
                        .as_mut()
                        .expect("spec")
                        .active_deadline_seconds = Some(5)
                },
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
            ),
        ];
        for (name, edit, want) in cases {
            let mut d = deployment(&[("app", "web")], &[("app", "web")]);
            DeploymentStrategy.default(&mut d);
            edit(d.spec.as_mut().expect("spec"));
            let got = messages(&DeploymentStrategy.validate(&d));
            assert!(got.contains(&want.to_string()), "{name}: {got:#?}");
        }
        let mut ok = deployment(&[("app", "web")], &[("app", "web")]);
        DeploymentStrategy.default(&mut ok);
        assert_eq!(
            messages(&DeploymentStrategy.validate(&ok)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn deployment_selector_is_immutable_in_apps_v1() {
        let mut old = deployment(&[("app", "web")], &[("app", "web"), ("v", "1")]);
        DeploymentStrategy.default(&mut old);
        let mut new = old.clone();
        new.spec.as_mut().expect("spec").selector = selector(&[("app", "web"), ("v", "1")]);
        assert_eq!(
            messages(&DeploymentStrategy.validate_update(&new, &old)),
            vec![
                r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "v":"1"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#
            ]
        );
    }

    #[test]
    fn annotation_changes_bump_the_generation() {
        let mut old = deployment(&[("app", "web")], &[("app", "web")]);
        DeploymentStrategy.default(&mut old);
        old.metadata.generation = Some(3);
        let mut new = old.clone();
        new.metadata.annotations = Some([("note".to_string(), "x".to_string())].into());
        DeploymentStrategy.prepare_for_update(&mut new, &old);
        assert_eq!(new.metadata.generation, Some(4));
        let mut unchanged = old.clone();
        DeploymentStrategy.prepare_for_update(&mut unchanged, &old);
        assert_eq!(unchanged.metadata.generation, Some(3));
    }

    #[test]
    fn scale_reports_replicas_and_the_selector_string() {
        let mut d = deployment(&[("app", "web")], &[("app", "web"), ("tier", "a")]);
        d.spec.as_mut().expect("spec").selector.match_expressions =
            Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["b".into(), "a".into()]),
            }]);
        d.status = Some(DeploymentStatus {
            replicas: Some(2),
            ..Default::default()
        });
        DeploymentStrategy.default(&mut d);
        assert_eq!(
            DeploymentStrategy.scale(&d),
            Some(ScaleView {
                spec_replicas: 1,
                status_replicas: 2,
                selector: "app=web,tier in (a,b)".into()
            })
        );
        DeploymentStrategy.set_replicas(&mut d, 5);
        assert_eq!(d.spec.and_then(|s| s.replicas), Some(5));
    }

    #[test]
    fn replica_sets_default_one_replica_and_use_deployment_wording() {
        let mut rs = ReplicaSet {
            metadata: meta("web"),
            spec: Some(ReplicaSetSpec {
                selector: Default::default(),
                template: Some(template(&[("app", "web")])),
                ..Default::default()
            }),
            status: None,
        };
        ReplicaSetStrategy.default(&mut rs);
        assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(1));
        let got = messages(&ReplicaSetStrategy.validate(&rs));
        assert_eq!(
            got,
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
            ]
        );
        assert_eq!(
            ReplicaSetStrategy.selectable_fields(&rs),
            vec![("status.replicas", "0".to_string())]
        );
    }
}
