//! Tests of the Job and CronJob strategies.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobStatus, JobTemplateSpec};

use super::*;
use crate::registry::strategies::testutil::{defaulted_template_json, messages, meta, template};

const UID: &str = "3f6b2b8e-0000-4000-8000-000000000001";

fn job() -> Job {
    let mut t = template(&[]);
    t.metadata = None;
    t.spec.as_mut().expect("spec").restart_policy = Some("Never".into());
    let mut metadata = meta("pi");
    metadata.uid = Some(UID.into());
    Job {
        metadata,
        spec: Some(JobSpec {
            template: t,
            ..Default::default()
        }),
        status: None,
    }
}

fn created_job() -> Job {
    let mut j = job();
    JobStrategy.default(&mut j);
    JobStrategy.prepare_for_create(&mut j);
    JobStrategy.default(&mut j);
    j
}

#[test]
fn a_created_job_gets_kubernetes_defaults_and_a_generated_selector() {
    let j = created_job();
    let generated = serde_json::json!({
        "batch.kubernetes.io/controller-uid": UID,
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": UID,
        "job-name": "pi",
    });
    let mut template = defaulted_template_json(&[]);
    template["metadata"]["labels"] = generated.clone();
    template["spec"]["restartPolicy"] = "Never".into();
    assert_eq!(
        serde_json::to_value(&j.spec).expect("serializable"),
        serde_json::json!({
            "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "completions": 1,
            "manualSelector": false,
            "parallelism": 1,
            "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}},
            "suspend": false,
            "template": template,
        })
    );
    assert_eq!(
        serde_json::to_value(&j.metadata.labels).expect("labels"),
        generated
    );
    assert_eq!(messages(&JobStrategy.validate(&j)), Vec::<String>::new());
}

#[test]
fn job_validation_reports_kubernetes_messages() {
    type Edit = fn(&mut Job);
    let cases: Vec<(Edit, &str)> = vec![
        (
            |j| j.spec.as_mut().expect("spec").parallelism = Some(-1),
            "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            |j| j.spec.as_mut().expect("spec").completions = Some(-2),
            "spec.completions: Invalid value: -2: must be greater than or equal to 0",
        ),
        (
            |j| {
                j.spec
                    .as_mut()
                    .expect("spec")
                    .template
                    .spec
                    .as_mut()
                    .expect("spec")
                    .restart_policy = Some("Always".into())
            },
            r#"spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never""#,
        ),
        (
            |j| {
                j.spec
                    .as_mut()
                    .expect("spec")
                    .template
                    .spec
                    .as_mut()
                    .expect("spec")
                    .restart_policy = Some("Sometimes".into())
            },
            r#"spec.template.spec.restartPolicy: Unsupported value: "Sometimes": supported values: "OnFailure", "Never""#,
        ),
        (
            |j| {
                let labels = j
                    .spec
                    .as_mut()
                    .expect("spec")
                    .template
                    .metadata
                    .as_mut()
                    .and_then(|m| m.labels.as_mut())
                    .expect("labels");
                labels.insert("batch.kubernetes.io/controller-uid".into(), "other".into());
            },
            "spec.template.metadata.labels[batch.kubernetes.io/controller-uid]: Invalid value: \"other\": must be '3f6b2b8e-0000-4000-8000-000000000001'",
        ),
        (
            |j| {
                let s = j.spec.as_mut().expect("spec");
                s.completion_mode = Some("Indexed".into());
                s.completions = None;
            },
            "spec.completions: Required value: when completion mode is Indexed",
        ),
        (
            |j| {
                j.metadata.name = Some("a".repeat(62));
                let s = j.spec.as_mut().expect("spec");
                s.completion_mode = Some("Indexed".into());
                s.completions = Some(10);
            },
            "metadata.name: Invalid value: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": will not able to create pod with invalid DNS label: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-9",
        ),
    ];
    for (edit, want) in cases {
        let mut j = created_job();
        edit(&mut j);
        let got = messages(&JobStrategy.validate(&j));
        assert!(got.contains(&want.to_string()), "{want}: {got:#?}");
    }
}

#[test]
fn job_selector_and_template_are_immutable_unless_suspended_before_start() {
    let old = created_job();
    let mut new = old.clone();
    new.spec
        .as_mut()
        .expect("spec")
        .template
        .spec
        .as_mut()
        .expect("spec")
        .node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
    let got = messages(&JobStrategy.validate_update(&new, &old));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].starts_with("spec.template: Invalid value: "),
        "{got:#?}"
    );
    assert!(got[0].ends_with(": field is immutable"), "{got:#?}");

    new.spec.as_mut().expect("spec").suspend = Some(true);
    assert_eq!(
        messages(&JobStrategy.validate_update(&new, &old)),
        Vec::<String>::new()
    );
    let mut started = old.clone();
    started.status = Some(JobStatus {
        start_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        )),
        ..Default::default()
    });
    assert_eq!(JobStrategy.validate_update(&new, &started).len(), 1);
    assert_eq!(
        JobStrategy.selectable_fields(&old),
        vec![("status.successful", "0".to_string())]
    );
}

fn cron_job(schedule: &str) -> CronJob {
    let mut t = template(&[]);
    t.spec.as_mut().expect("spec").restart_policy = Some("OnFailure".into());
    CronJob {
        metadata: meta("hello"),
        spec: Some(CronJobSpec {
            schedule: schedule.to_string(),
            job_template: JobTemplateSpec {
                metadata: None,
                spec: Some(JobSpec {
                    template: t,
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn a_minimal_cron_job_gets_exactly_kubernetes_defaults() {
    let mut cj = cron_job("*/1 * * * *");
    CronJobStrategy.default(&mut cj);
    let mut template = defaulted_template_json(&[]);
    template["spec"]["restartPolicy"] = "OnFailure".into();
    let spec = serde_json::to_value(&cj.spec).expect("serializable");
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    assert_eq!(
        spec["jobTemplate"]["spec"]["template"]["spec"],
        template["spec"]
    );
    assert!(
        spec["jobTemplate"]["spec"].get("completions").is_none(),
        "Job defaults stay off templates"
    );
    assert_eq!(
        messages(&CronJobStrategy.validate(&cj)),
        Vec::<String>::new()
    );
}

#[test]
fn cron_job_validation_reports_kubernetes_messages() {
    let cases = [
        (
            "* * * *",
            None,
            r#"spec.schedule: Invalid value: "* * * *": expected exactly 5 fields, found 4: [* * * *]"#,
        ),
        (
            "TZ=UTC 0 * * * *",
            None,
            r#"spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"#,
        ),
        (
            "@hourly",
            Some("Mars/Olympus"),
            r#"spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#,
        ),
        (
            "@hourly",
            Some("local"),
            r#"spec.timeZone: Invalid value: "local": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"#,
        ),
    ];
    for (schedule, tz, want) in cases {
        let mut cj = cron_job(schedule);
        cj.spec.as_mut().expect("spec").time_zone = tz.map(str::to_string);
        CronJobStrategy.default(&mut cj);
        let got = messages(&CronJobStrategy.validate(&cj));
        assert!(got.contains(&want.to_string()), "{want}: {got:#?}");
    }
    let mut ok = cron_job("0 0 * * *");
    ok.spec.as_mut().expect("spec").time_zone = Some("Europe/Paris".into());
    CronJobStrategy.default(&mut ok);
    assert_eq!(
        messages(&CronJobStrategy.validate(&ok)),
        Vec::<String>::new()
    );

    let mut long = cron_job("@daily");
    long.metadata.name = Some("a".repeat(53));
    CronJobStrategy.default(&mut long);
    let got = messages(&CronJobStrategy.validate(&long));
    assert_eq!(
        got,
        vec![format!(
            "metadata.name: Invalid value: \"{}\": must be no more than 52 characters",
            "a".repeat(53)
        )]
    );
}
