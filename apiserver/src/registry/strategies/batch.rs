//! Job and CronJob strategies (`pkg/registry/batch/job`, `.../cronjob`):
//! batch/v1 defaults, the generated `controller-uid` selector, and
//! `pkg/apis/batch/validation`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec};

use super::cron::parse_standard;
use super::gofmt::{go_label_selector, go_string_map};
use super::pod_defaults::default_pod_template;
use super::pod_validation::validate_pod_template;
use super::validation::{
    invalid_rendered, is_dns1123_label, selector_matches, validate_label_selector,
    validate_nonnegative,
};
use crate::registry::{FieldError, FieldErrorKind, FieldPath, Strategy};

pub struct JobStrategy;
pub struct CronJobStrategy;

pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

/// Job metadata labels default to the template's when the Job has none.
fn copy_template_labels(job: &mut Job) {
    let Some(spec) = &job.spec else { return };
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone());
    if let Some(labels) = template_labels
        && job.metadata.labels.as_ref().is_none_or(|l| l.is_empty())
    {
        job.metadata.labels = Some(labels);
    }
}

fn default_job(job: &mut Job) {
    let spec = job.spec.get_or_insert_with(Default::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit.is_none() {
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    if spec.completion_mode.as_deref().unwrap_or("").is_empty() {
        spec.completion_mode = Some("NonIndexed".to_string());
    }
    spec.suspend.get_or_insert(false);
    if let Some(policy) = spec.pod_failure_policy.as_mut() {
        for rule in &mut policy.rules {
            for pattern in rule.on_pod_conditions.iter_mut().flatten() {
                if pattern.status.is_empty() {
                    pattern.status = "True".to_string();
                }
            }
        }
    }
    if spec.pod_replacement_policy.is_none() {
        let policy = if spec.pod_failure_policy.is_some() {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        spec.pod_replacement_policy = Some(policy.to_string());
    }
    spec.manual_selector.get_or_insert(false);
    default_pod_template(&mut spec.template);
    copy_template_labels(job);
}

/// `generateSelector`: pods of this Job, and only they, carry its uid.
fn generate_selector(job: &mut Job) {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let spec = job.spec.get_or_insert_with(Default::default);
    let labels = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    // Labels the user set are kept; a conflict fails validation.
    for key in [LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL] {
        labels
            .entry(key.to_string())
            .or_insert_with(|| name.clone());
    }
    for key in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
        labels.entry(key.to_string()).or_insert_with(|| uid.clone());
    }
    spec.selector
        .get_or_insert_with(Default::default)
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .entry(CONTROLLER_UID_LABEL.to_string())
        .or_insert(uid);
}

/// `ValidateHasLabel`.
fn validate_has_label(
    labels: &BTreeMap<String, String>,
    key: &str,
    expected: &str,
) -> Vec<FieldError> {
    let labels_path = FieldPath::new("spec.template.metadata.labels");
    let path = labels_path.key(key);
    let detail = format!("must be '{expected}'");
    match labels.get(key) {
        None => vec![FieldError::required(&path, &detail)],
        Some(v) if v != expected => vec![FieldError::invalid(&path, v, &detail)],
        Some(_) => Vec::new(),
    }
}

/// `validateGeneratedSelector`.
fn validate_generated_selector(job: &Job, spec: &JobSpec) -> Vec<FieldError> {
    if spec.manual_selector == Some(true) {
        return Vec::new();
    }
    let Some(selector) = &spec.selector else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    if uid.is_empty() {
        errs.push(FieldError::required(
            &FieldPath::new("metadata").child("uid"),
            "",
        ));
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    errs.extend(validate_has_label(&labels, CONTROLLER_UID_LABEL, &uid));
    errs.extend(validate_has_label(&labels, JOB_NAME_LABEL, &name));
    let expected: BTreeMap<String, String> = [
        (CONTROLLER_UID_LABEL, &uid),
        (JOB_NAME_LABEL, &name),
        (LEGACY_CONTROLLER_UID_LABEL, &uid),
        (LEGACY_JOB_NAME_LABEL, &name),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    if !selector_matches(selector, &expected) {
        errs.push(invalid_rendered(
            &FieldPath::new("spec").child("selector"),
            go_label_selector(selector),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// `validateJobSpec`: what Jobs and CronJob job templates share.
fn validate_job_spec_common(spec: &JobSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let counts = [
        ("parallelism", spec.parallelism.map(i64::from)),
        ("completions", spec.completions.map(i64::from)),
        ("activeDeadlineSeconds", spec.active_deadline_seconds),
        ("backoffLimit", spec.backoff_limit.map(i64::from)),
        (
            "ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished.map(i64::from),
        ),
        (
            "backoffLimitPerIndex",
            spec.backoff_limit_per_index.map(i64::from),
        ),
        ("maxFailedIndexes", spec.max_failed_indexes.map(i64::from)),
    ];
    for (field, value) in counts {
        if let Some(v) = value {
            errs.extend(validate_nonnegative(v, &path.child(field)));
        }
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    if let Some(mode) = spec.completion_mode.as_deref() {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(FieldError::not_supported(
                &path.child("completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if indexed {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = spec.parallelism.filter(|p| *p > 100_000) {
                errs.push(FieldError::invalid(
                    &path.child("parallelism"),
                    p,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
    }
    if !indexed {
        if let Some(b) = spec.backoff_limit_per_index {
            errs.push(FieldError::invalid(
                &path.child("backoffLimitPerIndex"),
                b,
                "requires indexed completion mode",
            ));
        }
        if let Some(m) = spec.max_failed_indexes {
            errs.push(FieldError::invalid(
                &path.child("maxFailedIndexes"),
                m,
                "requires indexed completion mode",
            ));
        }
    }
    if let Some(policy) = spec.pod_replacement_policy.as_deref() {
        let allowed: &[&str] = if spec.pod_failure_policy.is_some() {
            &["Failed"]
        } else {
            &["Failed", "TerminatingOrFailed"]
        };
        if !allowed.contains(&policy) {
            errs.push(FieldError::not_supported(
                &path.child("podReplacementPolicy"),
                policy,
                allowed,
            ));
        }
    }
    let tp = path.child("template");
    errs.extend(validate_pod_template(&spec.template, &tp));
    let rp_path = tp.child("spec.restartPolicy");
    let rp = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_default();
    match rp.as_str() {
        "" | "Always" => errs.push(FieldError::required(
            &rp_path,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" if spec.pod_failure_policy.is_some() => errs.push(FieldError::invalid(
            &rp_path,
            &rp,
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        "OnFailure" | "Never" => {}
        other => errs.push(FieldError::not_supported(
            &rp_path,
            other,
            &["OnFailure", "Never"],
        )),
    }
    errs
}

/// `ValidateJobSpec`: the common checks plus the selector.
fn validate_job_spec(spec: &JobSpec) -> Vec<FieldError> {
    let path = FieldPath::new("spec");
    let mut errs = validate_job_spec_common(spec, &path);
    match &spec.selector {
        None => errs.push(FieldError::required(&path.child("selector"), "")),
        Some(sel) => errs.extend(validate_label_selector(sel, &path.child("selector"))),
    }
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    // A missing selector selects nothing, so it never matches the template.
    let matches = spec
        .selector
        .as_ref()
        .is_some_and(|s| selector_matches(s, labels.unwrap_or(&BTreeMap::new())));
    if !matches {
        errs.push(invalid_rendered(
            &path.child("template").child("metadata").child("labels"),
            go_string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    errs
}

fn immutable(path: &FieldPath, rendered: String) -> FieldError {
    invalid_rendered(path, rendered, "field is immutable")
}

fn render_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn validate_job_update(new: &JobSpec, old: &JobSpec, mutable_scheduling: bool) -> Vec<FieldError> {
    let path = FieldPath::new("spec");
    let mut errs = Vec::new();
    if new.completions != old.completions {
        let rendered = new
            .completions
            .map_or("null".to_string(), |c| c.to_string());
        errs.push(immutable(&path.child("completions"), rendered));
    }
    if new.selector != old.selector {
        let rendered = new
            .selector
            .as_ref()
            .map_or("null".to_string(), go_label_selector);
        errs.push(immutable(&path.child("selector"), rendered));
    }
    let mut old_template = old.template.clone();
    if mutable_scheduling {
        // A suspended Job that never started may still be re-targeted.
        let new_meta = new.template.metadata.clone().unwrap_or_default();
        let meta = old_template.metadata.get_or_insert_with(Default::default);
        meta.labels = new_meta.labels;
        meta.annotations = new_meta.annotations;
        if let (Some(o), Some(n)) = (old_template.spec.as_mut(), new.template.spec.as_ref()) {
            o.node_selector.clone_from(&n.node_selector);
            o.tolerations.clone_from(&n.tolerations);
            o.scheduling_gates.clone_from(&n.scheduling_gates);
            let node_affinity = n.affinity.as_ref().and_then(|a| a.node_affinity.clone());
            let mut affinity = o.affinity.clone().unwrap_or_default();
            affinity.node_affinity = node_affinity;
            o.affinity = (affinity != Default::default()).then_some(affinity);
        }
    }
    if new.template != old_template {
        errs.push(immutable(
            &path.child("template"),
            render_json(&new.template),
        ));
    }
    let immutables = [
        (
            "completionMode",
            render_json(&new.completion_mode),
            new.completion_mode != old.completion_mode,
        ),
        (
            "podFailurePolicy",
            render_json(&new.pod_failure_policy),
            new.pod_failure_policy != old.pod_failure_policy,
        ),
        (
            "backoffLimitPerIndex",
            render_json(&new.backoff_limit_per_index),
            new.backoff_limit_per_index != old.backoff_limit_per_index,
        ),
        (
            "managedBy",
            render_json(&new.managed_by),
            new.managed_by != old.managed_by,
        ),
        (
            "successPolicy",
            render_json(&new.success_policy),
            new.success_policy != old.success_policy,
        ),
    ];
    for (field, rendered, changed) in immutables {
        if changed {
            errs.push(immutable(&path.child(field), rendered));
        }
    }
    errs
}

impl Strategy for JobStrategy {
    const FIELD_SOURCES: &'static [&'static str] = &["status.succeeded"];

    type Object = Job;

    fn default(&self, job: &mut Job) {
        default_job(job);
    }

    fn prepare_for_create(&self, job: &mut Job) {
        let manual = job
            .spec
            .as_ref()
            .and_then(|s| s.manual_selector)
            .unwrap_or(false);
        if !manual {
            generate_selector(job);
        }
        // Kubernetes defaults again when reading the Job back, so the
        // generated template labels also become the Job's own labels.
        copy_template_labels(job);
    }

    fn validate(&self, job: &Job) -> Vec<FieldError> {
        let spec = job.spec.clone().unwrap_or_default();
        let mut errs = validate_generated_selector(job, &spec);
        errs.extend(validate_job_spec(&spec));
        // Indexed pods are named `<job>-<index>`, which must stay a DNS label.
        let completions = spec.completions.unwrap_or(0);
        if spec.completion_mode.as_deref() == Some("Indexed") && completions > 0 {
            let name = job.metadata.name.clone().unwrap_or_default();
            let hostname = format!("{name}-{}", completions - 1);
            if !is_dns1123_label(&hostname).is_empty() {
                errs.push(FieldError::invalid(
                    &FieldPath::new("metadata").child("name"),
                    &name,
                    &format!("will not able to create pod with invalid DNS label: {hostname}"),
                ));
            }
        }
        errs
    }

    fn validate_update(&self, new: &Job, old: &Job) -> Vec<FieldError> {
        let new_spec = new.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        let never_started = old.status.as_ref().is_none_or(|s| s.start_time.is_none());
        let mutable_scheduling = new_spec.suspend == Some(true) && never_started;
        let mut errs = self.validate(new);
        errs.extend(validate_job_update(
            &new_spec,
            &old_spec,
            mutable_scheduling,
        ));
        errs
    }

    fn selectable_fields(&self, job: &Job) -> Vec<(&'static str, String)> {
        let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
        vec![("status.successful", succeeded.to_string())]
    }
}

const CONCURRENCY_POLICIES: &[&str] = &["Allow", "Forbid", "Replace"];

fn validate_time_zone(tz: &str, path: &FieldPath) -> Vec<FieldError> {
    if tz.is_empty() {
        return vec![FieldError::invalid(
            path,
            tz,
            "timeZone must be nil or non-empty string",
        )];
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    };
    if !tz.split('/').all(part_ok) {
        return vec![FieldError::invalid(
            path,
            tz,
            &format!("unknown time zone {tz}"),
        )];
    }
    if tz.eq_ignore_ascii_case("Local") {
        return vec![FieldError::invalid(
            path,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    if jiff::tz::TimeZone::get(tz).is_err() {
        return vec![FieldError::invalid(
            path,
            tz,
            &format!("unknown time zone {tz}"),
        )];
    }
    Vec::new()
}

fn validate_cron_job_spec(spec: &CronJobSpec, old: Option<&CronJobSpec>) -> Vec<FieldError> {
    let path = FieldPath::new("spec");
    let mut errs = Vec::new();
    let sp = path.child("schedule");
    if spec.schedule.is_empty() {
        errs.push(FieldError::required(&sp, ""));
    } else {
        if let Err(msg) = parse_standard(&spec.schedule) {
            errs.push(FieldError::invalid(&sp, &spec.schedule, &msg));
        }
        let allow_tz = old.is_some_and(|o| o.schedule.contains("TZ"));
        if allow_tz && spec.schedule.contains("TZ") && spec.time_zone.is_some() {
            errs.push(FieldError::invalid(
                &sp,
                &spec.schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && spec.schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                &sp,
                &spec.schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(s) = spec.starting_deadline_seconds {
        errs.extend(validate_nonnegative(
            s,
            &path.child("startingDeadlineSeconds"),
        ));
    }
    if old.is_none_or(|o| o.time_zone != spec.time_zone)
        && let Some(tz) = &spec.time_zone
    {
        errs.extend(validate_time_zone(tz, &path.child("timeZone")));
    }
    match spec.concurrency_policy.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(&path.child("concurrencyPolicy"), "")),
        p if CONCURRENCY_POLICIES.contains(&p) => {}
        p => errs.push(FieldError::not_supported(
            &path.child("concurrencyPolicy"),
            p,
            CONCURRENCY_POLICIES,
        )),
    }
    let jp = path.child("jobTemplate.spec");
    let job_spec = spec.job_template.spec.clone().unwrap_or_default();
    errs.extend(validate_job_spec_common(&job_spec, &jp));
    if let Some(sel) = &job_spec.selector {
        errs.push(invalid_rendered(
            &jp.child("selector"),
            go_label_selector(sel),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec.manual_selector == Some(true) {
        // Go prints the dereferenced bool unquoted.
        errs.push(FieldError {
            field: jp.child("manualSelector").render(),
            kind: FieldErrorKind::NotSupported {
                value: "true".to_string(),
                supported: vec!["nil".to_string(), "false".to_string()],
            },
            detail: String::new(),
        });
    }
    for (field, v) in [
        (
            "successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit,
        ),
        ("failedJobsHistoryLimit", spec.failed_jobs_history_limit),
    ] {
        if let Some(v) = v {
            errs.extend(validate_nonnegative(i64::from(v), &path.child(field)));
        }
    }
    errs
}

impl Strategy for CronJobStrategy {
    type Object = CronJob;

    fn default(&self, cj: &mut CronJob) {
        let spec = cj.spec.get_or_insert_with(Default::default);
        if spec.concurrency_policy.as_deref().unwrap_or("").is_empty() {
            spec.concurrency_policy = Some("Allow".to_string());
        }
        spec.suspend.get_or_insert(false);
        spec.successful_jobs_history_limit.get_or_insert(3);
        spec.failed_jobs_history_limit.get_or_insert(1);
        let job_spec = spec.job_template.spec.get_or_insert_with(Default::default);
        default_pod_template(&mut job_spec.template);
    }

    fn validate(&self, cj: &CronJob) -> Vec<FieldError> {
        let mut errs = validate_cron_job_spec(&cj.spec.clone().unwrap_or_default(), None);
        // The controller appends an 11-character suffix to name its Jobs.
        let name = cj.metadata.name.as_deref().unwrap_or("");
        if name.len() > 52 {
            errs.push(FieldError::invalid(
                &FieldPath::new("metadata").child("name"),
                name,
                "must be no more than 52 characters",
            ));
        }
        errs
    }

    fn validate_update(&self, new: &CronJob, old: &CronJob) -> Vec<FieldError> {
        let old_spec = old.spec.clone().unwrap_or_default();
        validate_cron_job_spec(&new.spec.clone().unwrap_or_default(), Some(&old_spec))
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
