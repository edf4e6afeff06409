//! Event strategies for core/v1 and events.k8s.io/v1
//! (`pkg/apis/core/validation/events.go`). Kubernetes validates both
//! through the internal Event, so both are read into one view here and the
//! messages carry the internal field names (`involvedObject`, `message`).

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::api::events::v1::Event as EventsV1Event;

use super::validation::{invalid_all, is_dns1123_subdomain, is_qualified_name};
use crate::registry::{FieldError, FieldPath, NameRule, Strategy};

pub struct EventStrategy;
pub struct EventsV1EventStrategy;

const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

/// The internal Event fields validation looks at.
#[derive(Debug, Clone, PartialEq)]
struct EventView {
    namespace: String,
    involved: ObjectReference,
    has_event_time: bool,
    reporting_controller: String,
    reporting_instance: String,
    action: String,
    reason: String,
    message: String,
    type_: String,
    has_first_timestamp: bool,
    has_last_timestamp: bool,
    count: i32,
    source_set: bool,
    series: Option<(i32, bool)>,
}

impl EventView {
    fn from_core(e: &Event) -> EventView {
        let source = e.source.clone().unwrap_or_default();
        EventView {
            namespace: e.metadata.namespace.clone().unwrap_or_default(),
            involved: e.involved_object.clone(),
            has_event_time: e.event_time.is_some(),
            reporting_controller: e.reporting_component.clone().unwrap_or_default(),
            reporting_instance: e.reporting_instance.clone().unwrap_or_default(),
            action: e.action.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            type_: e.type_.clone().unwrap_or_default(),
            has_first_timestamp: e.first_timestamp.is_some(),
            has_last_timestamp: e.last_timestamp.is_some(),
            count: e.count.unwrap_or(0),
            source_set: source.component.is_some_and(|c| !c.is_empty())
                || source.host.is_some_and(|h| !h.is_empty()),
            series: e
                .series
                .as_ref()
                .map(|s| (s.count.unwrap_or(0), s.last_observed_time.is_some())),
        }
    }

    fn from_events_v1(e: &EventsV1Event) -> EventView {
        let source = e.deprecated_source.clone().unwrap_or_default();
        EventView {
            namespace: e.metadata.namespace.clone().unwrap_or_default(),
            involved: e.regarding.clone().unwrap_or_default(),
            has_event_time: e.event_time.is_some(),
            reporting_controller: e.reporting_controller.clone().unwrap_or_default(),
            reporting_instance: e.reporting_instance.clone().unwrap_or_default(),
            action: e.action.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.note.clone().unwrap_or_default(),
            type_: e.type_.clone().unwrap_or_default(),
            has_first_timestamp: e.deprecated_first_timestamp.is_some(),
            has_last_timestamp: e.deprecated_last_timestamp.is_some(),
            count: e.deprecated_count.unwrap_or(0),
            source_set: source.component.is_some_and(|c| !c.is_empty())
                || source.host.is_some_and(|h| !h.is_empty()),
            series: e.series.as_ref().map(|s| (s.count, true)),
        }
    }
}

fn too_long(path: &str, limit: usize) -> FieldError {
    FieldError::invalid(
        &FieldPath::new(path),
        "",
        &format!("can have at most {limit} characters"),
    )
}

/// `legacyValidateEvent`; `core_v1` names the reporting controller field
/// `source` as the core/v1 API does.
fn legacy_validate(e: &EventView, core_v1: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let involved_ns = e.involved.namespace.clone().unwrap_or_default();
    let ns_path = FieldPath::new("involvedObject.namespace");
    let mismatch = || FieldError::invalid(&ns_path, &involved_ns, "does not match event.namespace");
    if !e.has_event_time {
        if involved_ns.is_empty() {
            if !e.namespace.is_empty() && e.namespace != "default" {
                errs.push(mismatch());
            }
        } else if e.namespace != involved_ns {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && e.namespace != "default" && e.namespace != "kube-system" {
            errs.push(mismatch());
        }
        let controller_field = if core_v1 {
            "source"
        } else {
            "reportingController"
        };
        let cp = FieldPath::new(controller_field);
        if e.reporting_controller.is_empty() {
            errs.push(FieldError::required(&cp, ""));
        }
        errs.extend(invalid_all(
            &cp,
            &e.reporting_controller,
            is_qualified_name(&e.reporting_controller),
        ));
        if e.reporting_instance.is_empty() {
            errs.push(FieldError::required(
                &FieldPath::new("reportingInstance"),
                "",
            ));
        }
        if e.reporting_instance.len() > REPORTING_INSTANCE_LENGTH_LIMIT {
            errs.push(too_long(
                "reportingInstance",
                REPORTING_INSTANCE_LENGTH_LIMIT,
            ));
        }
        if e.action.is_empty() {
            errs.push(FieldError::required(&FieldPath::new("action"), ""));
        }
        if e.action.len() > ACTION_LENGTH_LIMIT {
            errs.push(too_long("action", ACTION_LENGTH_LIMIT));
        }
        if e.reason.is_empty() {
            errs.push(FieldError::required(&FieldPath::new("reason"), ""));
        }
        if e.reason.len() > REASON_LENGTH_LIMIT {
            errs.push(too_long("reason", REASON_LENGTH_LIMIT));
        }
        if e.message.len() > NOTE_LENGTH_LIMIT {
            errs.push(too_long("message", NOTE_LENGTH_LIMIT));
        }
    }
    errs.extend(invalid_all(
        &FieldPath::new("namespace"),
        &e.namespace,
        is_dns1123_subdomain(&e.namespace),
    ));
    errs
}

fn validate_series(e: &EventView) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some((count, has_last_observed)) = e.series {
        if count < 2 {
            errs.push(FieldError::invalid(
                &FieldPath::new("series.count"),
                "",
                "should be at least 2",
            ));
        }
        if !has_last_observed {
            errs.push(FieldError::required(
                &FieldPath::new("series.lastObservedTime"),
                "",
            ));
        }
    }
    errs
}

/// The strict checks events.k8s.io/v1 adds on create.
fn strict_validate(e: &EventView) -> Vec<FieldError> {
    let mut errs = validate_series(e);
    if !e.has_event_time {
        errs.push(FieldError::required(&FieldPath::new("eventTime"), ""));
    }
    if e.type_ != "Normal" && e.type_ != "Warning" {
        errs.push(FieldError::invalid(
            &FieldPath::new("type"),
            "",
            &format!("has invalid value: {}", e.type_),
        ));
    }
    let unset = [
        ("firstTimestamp", e.has_first_timestamp),
        ("lastTimestamp", e.has_last_timestamp),
        ("count", e.count != 0),
        ("source", e.source_set),
    ];
    for (field, set) in unset {
        if set {
            errs.push(FieldError::invalid(
                &FieldPath::new(field),
                "",
                "needs to be unset",
            ));
        }
    }
    errs
}

fn immutable_fields(new: &EventsV1Event, old: &EventsV1Event) -> Vec<FieldError> {
    let checks: [(&str, bool, String); 11] = [
        (
            "involvedObject",
            new.regarding == old.regarding,
            serde_json::to_string(&new.regarding).unwrap_or_default(),
        ),
        (
            "reason",
            new.reason == old.reason,
            format!("{:?}", new.reason.clone().unwrap_or_default()),
        ),
        (
            "message",
            new.note == old.note,
            format!("{:?}", new.note.clone().unwrap_or_default()),
        ),
        (
            "source",
            new.deprecated_source == old.deprecated_source,
            serde_json::to_string(&new.deprecated_source).unwrap_or_default(),
        ),
        (
            "firstTimestamp",
            new.deprecated_first_timestamp == old.deprecated_first_timestamp,
            serde_json::to_string(&new.deprecated_first_timestamp).unwrap_or_default(),
        ),
        (
            "lastTimestamp",
            new.deprecated_last_timestamp == old.deprecated_last_timestamp,
            serde_json::to_string(&new.deprecated_last_timestamp).unwrap_or_default(),
        ),
        (
            "count",
            new.deprecated_count == old.deprecated_count,
            new.deprecated_count.unwrap_or(0).to_string(),
        ),
        (
            "type",
            new.type_ == old.type_,
            format!("{:?}", new.type_.clone().unwrap_or_default()),
        ),
        (
            "eventTime",
            new.event_time == old.event_time,
            serde_json::to_string(&new.event_time).unwrap_or_default(),
        ),
        (
            "action",
            new.action == old.action,
            format!("{:?}", new.action.clone().unwrap_or_default()),
        ),
        (
            "related",
            new.related == old.related,
            serde_json::to_string(&new.related).unwrap_or_default(),
        ),
    ];
    let mut errs: Vec<FieldError> = checks
        .into_iter()
        .filter(|(_, same, _)| !same)
        .map(|(field, _, rendered)| {
            super::validation::invalid_rendered(
                &FieldPath::new(field),
                rendered,
                "field is immutable",
            )
        })
        .collect();
    for (field, same, value) in [
        (
            "reportingController",
            new.reporting_controller == old.reporting_controller,
            &new.reporting_controller,
        ),
        (
            "reportingInstance",
            new.reporting_instance == old.reporting_instance,
            &new.reporting_instance,
        ),
    ] {
        if !same {
            errs.push(FieldError::invalid(
                &FieldPath::new(field),
                value.clone().unwrap_or_default(),
                "field is immutable",
            ));
        }
    }
    errs
}

impl Strategy for EventStrategy {
    const FIELD_SOURCES: &'static [&'static str] = &[
        "involvedObject",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];

    type Object = Event;

    /// core/v1 events skip name validation beyond path safety.
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, e: &Event) -> Vec<FieldError> {
        legacy_validate(&EventView::from_core(e), true)
    }

    fn selectable_fields(&self, e: &Event) -> Vec<(&'static str, String)> {
        let o = &e.involved_object;
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        let component = e
            .source
            .as_ref()
            .and_then(|s| s.component.clone())
            .filter(|c| !c.is_empty());
        let source = component
            .or_else(|| e.reporting_component.clone())
            .unwrap_or_default();
        vec![
            ("involvedObject.kind", s(&o.kind)),
            ("involvedObject.namespace", s(&o.namespace)),
            ("involvedObject.name", s(&o.name)),
            ("involvedObject.uid", s(&o.uid)),
            ("involvedObject.apiVersion", s(&o.api_version)),
            ("involvedObject.resourceVersion", s(&o.resource_version)),
            ("involvedObject.fieldPath", s(&o.field_path)),
            ("reason", s(&e.reason)),
            ("reportingComponent", s(&e.reporting_component)),
            ("source", source),
            ("type", s(&e.type_)),
        ]
    }
}

impl Strategy for EventsV1EventStrategy {
    const FIELD_SOURCES: &'static [&'static str] =
        &["regarding", "reason", "reportingController", "type"];

    type Object = EventsV1Event;

    fn validate(&self, e: &EventsV1Event) -> Vec<FieldError> {
        let view = EventView::from_events_v1(e);
        let mut errs = legacy_validate(&view, false);
        errs.extend(strict_validate(&view));
        errs
    }

    fn validate_update(&self, new: &EventsV1Event, old: &EventsV1Event) -> Vec<FieldError> {
        let view = EventView::from_events_v1(new);
        let mut errs = legacy_validate(&view, false);
        if new.series != old.series {
            errs.extend(validate_series(&view));
        }
        errs.extend(immutable_fields(new, old));
        errs
    }

    /// The events.k8s.io names of the core event field selectors.
    fn selectable_fields(&self, e: &EventsV1Event) -> Vec<(&'static str, String)> {
        let o = e.regarding.clone().unwrap_or_default();
        let s = |v: Option<String>| v.unwrap_or_default();
        vec![
            ("regarding.kind", s(o.kind)),
            ("regarding.namespace", s(o.namespace)),
            ("regarding.name", s(o.name)),
            ("regarding.uid", s(o.uid)),
            ("regarding.apiVersion", s(o.api_version)),
            ("regarding.resourceVersion", s(o.resource_version)),
            ("regarding.fieldPath", s(o.field_path)),
            ("reason", s(e.reason.clone())),
            ("reportingController", s(e.reporting_controller.clone())),
            ("type", s(e.type_.clone())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::EventSource;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;
    use crate::registry::strategies::testutil::{messages, meta};

    fn core_event() -> Event {
        Event {
            metadata: meta("web.1"),
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            reason: Some("Scheduled".into()),
            type_: Some("Normal".into()),
            source: Some(EventSource {
                component: Some("default-scheduler".into()),
                host: None,
            }),
            ..Default::default()
        }
    }

    fn v1_event() -> EventsV1Event {
        EventsV1Event {
            metadata: meta("web.2"),
            event_time: Some(MicroTime(jiff::Timestamp::UNIX_EPOCH)),
            regarding: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            }),
            reason: Some("Started".into()),
            action: Some("Start".into()),
            reporting_controller: Some("kubelet".into()),
            reporting_instance: Some("node-1".into()),
            type_: Some("Normal".into()),
            ..Default::default()
        }
    }

    #[test]
    fn core_events_use_legacy_validation_and_selectors() {
        let e = core_event();
        assert!(EventStrategy.validate(&e).is_empty());
        let mut other = e.clone();
        other.involved_object.namespace = Some("kube-system".into());
        assert_eq!(
            messages(&EventStrategy.validate(&other)),
            vec![
                r#"involvedObject.namespace: Invalid value: "kube-system": does not match event.namespace"#
            ]
        );
        let fields = EventStrategy.selectable_fields(&e);
        assert!(fields.contains(&("source", "default-scheduler".to_string())));
        assert!(fields.contains(&("involvedObject.name", "web".to_string())));
        assert!(fields.contains(&("type", "Normal".to_string())));
        let mut new_style = e.clone();
        new_style.event_time = Some(MicroTime(jiff::Timestamp::UNIX_EPOCH));
        // As in Kubernetes, an empty controller also fails the qualified-name check.
        let got = messages(&EventStrategy.validate(&new_style));
        assert_eq!(got[0], "source: Required value");
        assert_eq!(
            got[1],
            r#"source: Invalid value: "": name part must be non-empty"#
        );
        assert_eq!(
            got[3..],
            [
                "reportingInstance: Required value",
                "action: Required value"
            ]
        );
        assert_eq!(EventStrategy.name_rule(), NameRule::PathSegment);
    }

    #[test]
    fn events_v1_events_are_validated_strictly() {
        let e = v1_event();
        assert_eq!(
            messages(&EventsV1EventStrategy.validate(&e)),
            Vec::<String>::new()
        );
        type Edit = fn(&mut EventsV1Event);
        let cases: Vec<(Edit, &str)> = vec![
            (
                |e| e.type_ = Some("Info".into()),
                r#"type: Invalid value: "": has invalid value: Info"#,
            ),
            (|e| e.event_time = None, "eventTime: Required value"),
            (
                |e| e.reporting_controller = None,
                "reportingController: Required value",
            ),
            (
                |e| e.deprecated_count = Some(3),
                r#"count: Invalid value: "": needs to be unset"#,
            ),
            (
                |e| e.note = Some("x".repeat(1025)),
                r#"message: Invalid value: "": can have at most 1024 characters"#,
            ),
        ];
        for (edit, want) in cases {
            let mut e = v1_event();
            edit(&mut e);
            let got = messages(&EventsV1EventStrategy.validate(&e));
            assert!(got.contains(&want.to_string()), "{want}: {got:#?}");
        }
        let mut changed = e.clone();
        changed.reason = Some("Killed".into());
        assert_eq!(
            messages(&EventsV1EventStrategy.validate_update(&changed, &e)),
            vec![r#"reason: Invalid value: "Killed": field is immutable"#]
        );
        assert!(
            EventsV1EventStrategy
                .selectable_fields(&e)
                .contains(&("regarding.name", "web".to_string()))
        );
    }
}
