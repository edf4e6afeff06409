//! What the workload kinds (Deployment, ReplicaSet, DaemonSet, StatefulSet,
//! Job) validate alike in `pkg/apis/apps/validation`: the selector, its
//! match with the template labels, the template itself, and the
//! int-or-percent fields of rolling updates.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::gofmt::{go_int_or_string, go_label_selector, go_string_map};
use super::pod_validation::validate_pod_template;
use super::validation::{
    invalid_rendered, selector_matches, validate_label_selector, validate_nonnegative,
};
use crate::registry::{FieldError, FieldPath};

const PERCENT_FMT_ERROR: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

fn template_labels(t: &PodTemplateSpec) -> Option<&BTreeMap<String, String>> {
    t.metadata.as_ref().and_then(|m| m.labels.as_ref())
}

/// Selector present and non-empty (`empty selector is invalid for <kind>`)
/// and valid.
pub fn validate_selector(sel: &LabelSelector, path: &FieldPath, kind: &str) -> Vec<FieldError> {
    let mut errs = validate_label_selector(sel, path);
    let count = sel.match_labels.as_ref().map_or(0, |m| m.len())
        + sel.match_expressions.as_ref().map_or(0, |e| e.len());
    if count == 0 {
        errs.push(invalid_rendered(
            path,
            go_label_selector(sel),
            &format!("empty selector is invalid for {kind}"),
        ));
    }
    errs
}

/// The template labels must be selected by the (non-empty) selector.
pub fn validate_selector_matches_template(
    sel: &LabelSelector,
    t: &PodTemplateSpec,
    path: &FieldPath,
) -> Vec<FieldError> {
    let empty = BTreeMap::new();
    let labels = template_labels(t).unwrap_or(&empty);
    let selector_empty = sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty());
    if selector_empty || selector_matches(sel, labels) {
        return Vec::new();
    }
    vec![invalid_rendered(
        &path.child("metadata").child("labels"),
        go_string_map(template_labels(t)),
        "`selector` does not match template `labels`",
    )]
}

/// `ValidatePodTemplateSpecForReplicaSet` (and its DaemonSet/StatefulSet
/// twins): labels match, the template is valid, restartPolicy Always and
/// no activeDeadlineSeconds.
pub fn validate_controller_template(
    sel: &LabelSelector,
    t: &PodTemplateSpec,
    path: &FieldPath,
    kind: &str,
) -> Vec<FieldError> {
    let mut errs = validate_selector_matches_template(sel, t, path);
    errs.extend(validate_pod_template(t, path));
    let spec = t.spec.clone().unwrap_or_default();
    let sp = path.child("spec");
    let rp = spec.restart_policy.as_deref().unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            &sp.child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    if spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &sp.child("activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

/// `ValidatePositiveIntOrPercent`.
pub fn validate_int_or_percent(v: Option<&IntOrString>, path: &FieldPath) -> Vec<FieldError> {
    match v {
        Some(IntOrString::String(s)) => {
            let digits = s.strip_suffix('%').unwrap_or("");
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                vec![invalid_rendered(
                    path,
                    go_int_or_string(v),
                    PERCENT_FMT_ERROR,
                )]
            } else {
                Vec::new()
            }
        }
        Some(IntOrString::Int(i)) => validate_nonnegative(i64::from(*i), path),
        None => Vec::new(),
    }
}

/// `getIntOrPercentValue`: the number, percent or not.
pub fn int_or_percent_value(v: Option<&IntOrString>) -> Option<i64> {
    match v {
        Some(IntOrString::Int(i)) => Some(i64::from(*i)),
        Some(IntOrString::String(s)) => s.strip_suffix('%').and_then(|d| d.parse().ok()),
        None => Some(0),
    }
}

/// `IsNotMoreThan100Percent`.
pub fn not_more_than_100_percent(v: Option<&IntOrString>, path: &FieldPath) -> Vec<FieldError> {
    match v {
        Some(IntOrString::String(_)) if int_or_percent_value(v).is_some_and(|n| n > 100) => {
            vec![invalid_rendered(
                path,
                go_int_or_string(v),
                "must not be greater than 100%",
            )]
        }
        _ => Vec::new(),
    }
}

/// apps/v1 forbids changing a selector.
pub fn validate_selector_immutable(new: &LabelSelector, old: &LabelSelector) -> Vec<FieldError> {
    if new == old {
        return Vec::new();
    }
    vec![invalid_rendered(
        &FieldPath::new("spec").child("selector"),
        go_label_selector(new),
        "field is immutable",
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_fields_accept_numbers_and_percentages_only() {
        let p = FieldPath::new("spec.maxSurge");
        assert!(validate_int_or_percent(Some(&IntOrString::String("25%".into())), &p).is_empty());
        assert!(validate_int_or_percent(Some(&IntOrString::Int(3)), &p).is_empty());
        let errs = validate_int_or_percent(Some(&IntOrString::String("x".into())), &p);
        assert_eq!(
            errs[0].to_string(),
            format!(
                "spec.maxSurge: Invalid value: intstr.IntOrString{{Type:1, IntVal:0, StrVal:\"x\"}}: {PERCENT_FMT_ERROR}"
            )
        );
        let errs = validate_int_or_percent(Some(&IntOrString::Int(-1)), &p);
        assert_eq!(
            errs[0].to_string(),
            "spec.maxSurge: Invalid value: -1: must be greater than or equal to 0"
        );
        let errs = not_more_than_100_percent(Some(&IntOrString::String("101%".into())), &p);
        assert_eq!(
            errs[0].to_string(),
            "spec.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"101%\"}: must not be greater than 100%"
        );
    }
}
