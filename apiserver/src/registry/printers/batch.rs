//! The batch/v1 tables: jobs (STATUS COMPLETIONS DURATION) and cronjobs
//! (SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE), with the wide
//! CONTAINERS IMAGES SELECTOR columns.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job, JobCondition, JobSpec};
use serde_json::Value;

use super::descriptions as doc;
use super::format::{self, NONE};
use super::{AGE, CONTAINERS, IMAGES, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

/// Whether the first condition of `type_` has status True (`hasJobCondition`).
fn has_condition(conditions: &[JobCondition], type_: &str) -> bool {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .is_some_and(|c| c.status == "True")
}

/// The wide CONTAINERS, IMAGES and SELECTOR cells of a job spec.
fn wide_cells(spec: Option<&JobSpec>) -> [Value; 3] {
    let containers = spec
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let (names, images) = format::container_cells(containers);
    let selector = format::format_label_selector(spec.and_then(|s| s.selector.as_ref()));
    [
        Value::from(names),
        Value::from(images),
        Value::from(selector),
    ]
}

impl Printer for Job {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Status", "string", 0, "Status of the job."),
            Column::new("Completions", "string", 0, doc::JOB_STATUS_SUCCEEDED),
            Column::new(
                "Duration",
                "string",
                0,
                "Time required to complete the job.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", 1, doc::JOB_SPEC_SELECTOR),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        let succeeded = status.and_then(|s| s.succeeded).unwrap_or(0);
        let completions = match spec.and_then(|s| s.completions) {
            Some(c) => format!("{succeeded}/{c}"),
            None => match spec.and_then(|s| s.parallelism).unwrap_or(0) {
                p if p > 1 => format!("{succeeded}/1 of {p}"),
                _ => format!("{succeeded}/1"),
            },
        };
        let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
        let end = status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0);
        let duration = match (start, end) {
            (None, _) => String::new(),
            (Some(start), None) => format::human_duration(now.duration_since(start)),
            (Some(start), Some(end)) => format::human_duration(end.duration_since(start)),
        };
        let conditions = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let job_status = if has_condition(conditions, "Complete") {
            "Complete"
        } else if has_condition(conditions, "Failed") {
            "Failed"
        } else if self.metadata.deletion_timestamp.is_some() {
            "Terminating"
        } else if has_condition(conditions, "Suspended") {
            "Suspended"
        } else if has_condition(conditions, "FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let [names, images, selector] = wide_cells(spec);
        vec![
            name_cell(&self.metadata),
            Value::from(job_status),
            Value::from(completions),
            Value::from(duration),
            age_cell(&self.metadata, now),
            names,
            images,
            selector,
        ]
    }
}

impl Printer for CronJob {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Schedule", "string", 0, doc::CRON_JOB_SPEC_SCHEDULE),
            Column::new("Timezone", "string", 0, doc::CRON_JOB_SPEC_TIME_ZONE),
            Column::new("Suspend", "boolean", 0, doc::CRON_JOB_SPEC_SUSPEND),
            Column::new("Active", "integer", 0, doc::CRON_JOB_STATUS_ACTIVE),
            Column::new(
                "Last Schedule",
                "string",
                0,
                doc::CRON_JOB_STATUS_LAST_SCHEDULE_TIME,
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", 1, doc::JOB_SPEC_SELECTOR),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        let last_schedule = match status.and_then(|s| s.last_schedule_time.as_ref()) {
            Some(t) => format::since(Some(t.0), now),
            None => NONE.to_string(),
        };
        let time_zone = spec
            .and_then(|s| s.time_zone.clone())
            .unwrap_or_else(|| NONE.to_string());
        // SetDefaults_CronJob sets suspend to false, so "<unset>" never shows.
        let suspend = format::print_bool(spec.and_then(|s| s.suspend).unwrap_or(false));
        let active = status.and_then(|s| s.active.as_ref()).map_or(0, Vec::len);
        let job_spec = spec.and_then(|s| s.job_template.spec.as_ref());
        let [names, images, selector] = wide_cells(job_spec);
        vec![
            name_cell(&self.metadata),
            Value::from(spec.map_or("", |s| s.schedule.as_str())),
            Value::from(time_zone),
            Value::from(suspend),
            Value::from(active as i64),
            Value::from(last_schedule),
            age_cell(&self.metadata, now),
            names,
            images,
            selector,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::printers::testing::{ago, cells, headers, object};
    use serde_json::json;

    fn job(spec: Value, status: Value) -> Job {
        let mut full_spec = json!({
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
            "template": {"spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "pi", "image": "perl:5.34"}]}},
        });
        if let (Some(into), Value::Object(from)) = (full_spec.as_object_mut(), spec) {
            into.extend(from);
        }
        object(json!({
            "metadata": {"name": "pi", "creationTimestamp": ago(600)},
            "spec": full_spec,
            "status": status,
        }))
    }

    #[test]
    fn job_columns_follow_printers_go() {
        assert_eq!(
            headers::<Job>(),
            [
                ("Name", 0),
                ("Status", 0),
                ("Completions", 0),
                ("Duration", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ]
        );
    }

    #[test]
    fn job_status_completions_and_duration() {
        let cond = |t: &str, s: &str| json!({"type": t, "status": s});
        let cases = [
            ("not started", json!({}), json!({}), ["Running", "0/1", ""]),
            (
                "running for two minutes",
                json!({"completions": 3}),
                json!({"startTime": ago(120), "succeeded": 1}),
                ["Running", "1/3", "2m"],
            ),
            (
                "complete, duration from start to completion",
                json!({"completions": 1}),
                json!({"startTime": ago(500), "completionTime": ago(455), "succeeded": 1,
                       "conditions": [cond("SuccessCriteriaMet", "True"), cond("Complete", "True")]}),
                ["Complete", "1/1", "45s"],
            ),
            (
                "failed",
                json!({}),
                json!({"startTime": ago(60), "conditions": [cond("FailureTarget", "True"), cond("Failed", "True")]}),
                ["Failed", "0/1", "60s"],
            ),
            (
                "suspended",
                json!({"suspend": true}),
                json!({"conditions": [cond("Suspended", "True")]}),
                ["Suspended", "0/1", ""],
            ),
            (
                "a false Suspended condition is ignored",
                json!({}),
                json!({"conditions": [cond("Suspended", "False")]}),
                ["Running", "0/1", ""],
            ),
            (
                "failure target",
                json!({}),
                json!({"conditions": [cond("FailureTarget", "True")]}),
                ["FailureTarget", "0/1", ""],
            ),
            (
                // printers.go of 1.32 has no SuccessCriteriaMet status: the
                // Complete condition follows it shortly.
                "success criteria met is still running",
                json!({}),
                json!({"conditions": [cond("SuccessCriteriaMet", "True")]}),
                ["Running", "0/1", ""],
            ),
            (
                "work queue with parallelism",
                json!({"parallelism": 4}),
                json!({"succeeded": 2}),
                ["Running", "2/1 of 4", ""],
            ),
            (
                "parallelism one",
                json!({"parallelism": 1}),
                json!({}),
                ["Running", "0/1", ""],
            ),
        ];
        for (name, spec, status, [st, completions, duration]) in cases {
            assert_eq!(
                Value::from(cells(&job(spec, status))),
                json!([
                    "pi",
                    st,
                    completions,
                    duration,
                    "10m",
                    "pi",
                    "perl:5.34",
                    "batch.kubernetes.io/controller-uid=abc"
                ]),
                "{name}"
            );
        }
        let mut deleting = job(
            json!({}),
            json!({"conditions": [cond("Suspended", "True")]}),
        );
        deleting.metadata.deletion_timestamp = Some(object(json!(ago(1))));
        assert_eq!(cells(&deleting)[1], json!("Terminating"));
        let mut done = job(json!({}), json!({"conditions": [cond("Complete", "True")]}));
        done.metadata.deletion_timestamp = Some(object(json!(ago(1))));
        assert_eq!(cells(&done)[1], json!("Complete"));
    }

    #[test]
    fn cronjob_prints_schedule_timezone_suspend_and_last_schedule() {
        assert_eq!(
            headers::<CronJob>(),
            [
                ("Name", 0),
                ("Schedule", 0),
                ("Timezone", 0),
                ("Suspend", 0),
                ("Active", 0),
                ("Last Schedule", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ]
        );
        let tpl = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "hello", "image": "busybox"}]}}}});
        let cj: CronJob = object(json!({
            "metadata": {"name": "hello", "creationTimestamp": ago(3 * 86400)},
            "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "suspend": true,
                     "jobTemplate": tpl},
            "status": {"active": [{"name": "hello-1"}, {"name": "hello-2"}], "lastScheduleTime": ago(62)},
        }));
        assert_eq!(
            Value::from(cells(&cj)),
            json!([
                "hello",
                "*/5 * * * *",
                "Etc/UTC",
                "True",
                2,
                "62s",
                "3d",
                "hello",
                "busybox",
                "<none>"
            ])
        );
        let fresh: CronJob = object(json!({
            "metadata": {"name": "hello", "creationTimestamp": ago(10)},
            "spec": {"schedule": "@hourly", "jobTemplate": tpl},
        }));
        assert_eq!(
            Value::from(cells(&fresh)),
            json!([
                "hello", "@hourly", "<none>", "False", 0, "<none>", "10s", "hello", "busybox",
                "<none>"
            ])
        );
    }
}
