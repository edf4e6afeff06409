//! The Event table: LAST SEEN TYPE REASON OBJECT MESSAGE, and with `-o wide`
//! SUBOBJECT SOURCE FIRST SEEN COUNT NAME. Kubernetes serves core/v1 and
//! events.k8s.io/v1 events from one storage, so both print the same table;
//! the events.k8s.io fields map onto the core ones as the conversion does
//! (`regarding` → `involvedObject`, `note` → `message`, `deprecated*`).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, ObjectReference};
use k8s_openapi::api::events::v1::Event as EventsEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::descriptions as doc;
use super::format::{self, opt};
use super::name_cell;
use crate::registry::{Column, Printer};

/// The fields `printEvent` reads, from either API version.
struct EventView<'a> {
    metadata: &'a ObjectMeta,
    first_timestamp: Option<Timestamp>,
    last_timestamp: Option<Timestamp>,
    event_time: Option<Timestamp>,
    count: i32,
    /// `(count, lastObservedTime)` of an event series.
    series: Option<(i32, Option<Timestamp>)>,
    involved_object: Option<&'a ObjectReference>,
    source: Option<&'a EventSource>,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    type_: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn columns() -> Vec<Column> {
    vec![
        Column::new("Last Seen", "string", 0, doc::EVENT_LAST_TIMESTAMP),
        Column::new("Type", "string", 0, doc::EVENT_TYPE),
        Column::new("Reason", "string", 0, doc::EVENT_REASON),
        Column::new("Object", "string", 0, doc::EVENT_INVOLVED_OBJECT),
        Column::new("Subobject", "string", 1, doc::OBJECT_REFERENCE_FIELD_PATH),
        Column::new("Source", "string", 1, doc::EVENT_SOURCE),
        Column::new("Message", "string", 0, doc::EVENT_MESSAGE),
        Column::new("First Seen", "string", 1, doc::EVENT_FIRST_TIMESTAMP),
        Column::new("Count", "string", 1, doc::EVENT_COUNT),
        // The only table whose NAME column is last and wide-only.
        Column {
            priority: 1,
            ..super::NAME
        },
    ]
}

fn cells(ev: EventView<'_>, now: Timestamp) -> Vec<Value> {
    let first_seen = match ev.first_timestamp {
        Some(t) => format::since(Some(t), now),
        None => format::since(ev.event_time, now),
    };
    let mut last_seen = match ev.last_timestamp {
        Some(t) => format::since(Some(t), now),
        None => first_seen.clone(),
    };
    let mut count = ev.count;
    if let Some((series_count, last_observed)) = ev.series {
        last_seen = format::since(last_observed, now);
        count = series_count;
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let kind = ev
        .involved_object
        .map_or(String::new(), |o| opt(&o.kind).to_lowercase());
    let object_name = ev.involved_object.map_or("", |o| opt(&o.name));
    let target = if object_name.is_empty() {
        kind
    } else {
        format!("{kind}/{object_name}")
    };
    let field_path = ev.involved_object.map_or("", |o| opt(&o.field_path));
    vec![
        Value::from(last_seen),
        Value::from(ev.type_),
        Value::from(ev.reason),
        Value::from(target),
        Value::from(field_path),
        Value::from(event_source(
            ev.source,
            ev.reporting_controller,
            ev.reporting_instance,
        )),
        Value::from(ev.message.trim()),
        Value::from(first_seen),
        Value::from(i64::from(count)),
        name_cell(ev.metadata),
    ]
}

/// `formatEventSource`: `component, host`, falling back to the reporting
/// controller and instance of the new API.
fn event_source(source: Option<&EventSource>, controller: &str, instance: &str) -> String {
    let first_non_empty =
        |a: &'_ str, b: &'_ str| -> String { if a.is_empty() { b } else { a }.to_string() };
    let component = first_non_empty(source.map_or("", |s| opt(&s.component)), controller);
    let host = first_non_empty(source.map_or("", |s| opt(&s.host)), instance);
    if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    }
}

impl Printer for CoreEvent {
    fn columns() -> Vec<Column> {
        columns()
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let view = EventView {
            metadata: &self.metadata,
            first_timestamp: self.first_timestamp.as_ref().map(|t| t.0),
            last_timestamp: self.last_timestamp.as_ref().map(|t| t.0),
            event_time: self.event_time.as_ref().map(|t| t.0),
            count: self.count.unwrap_or(0),
            series: self.series.as_ref().map(|s| {
                (
                    s.count.unwrap_or(0),
                    s.last_observed_time.as_ref().map(|t| t.0),
                )
            }),
            involved_object: Some(&self.involved_object),
            source: self.source.as_ref(),
            reporting_controller: opt(&self.reporting_component),
            reporting_instance: opt(&self.reporting_instance),
            type_: opt(&self.type_),
            reason: opt(&self.reason),
            message: opt(&self.message),
        };
        cells(view, now)
    }
}

impl Printer for EventsEvent {
    fn columns() -> Vec<Column> {
        columns()
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let view = EventView {
            metadata: &self.metadata,
            first_timestamp: self.deprecated_first_timestamp.as_ref().map(|t| t.0),
            last_timestamp: self.deprecated_last_timestamp.as_ref().map(|t| t.0),
            event_time: self.event_time.as_ref().map(|t| t.0),
            count: self.deprecated_count.unwrap_or(0),
            series: self
                .series
                .as_ref()
                .map(|s| (s.count, Some(s.last_observed_time.0))),
            involved_object: self.regarding.as_ref(),
            source: self.deprecated_source.as_ref(),
            reporting_controller: opt(&self.reporting_controller),
            reporting_instance: opt(&self.reporting_instance),
            type_: opt(&self.type_),
            reason: opt(&self.reason),
            message: opt(&self.note),
        };
        cells(view, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::printers::testing::{ago, cells, headers, object};
    use serde_json::json;

    #[test]
    fn event_columns_put_name_last_and_wide() {
        let want = [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1),
        ];
        assert_eq!(headers::<CoreEvent>(), want);
        assert_eq!(headers::<EventsEvent>(), want);
        assert_eq!(CoreEvent::columns()[9].format, "name");
    }

    #[test]
    fn core_events_print_like_kubectl_get_events() {
        let base = || {
            json!({
                "metadata": {"name": "web.17c8", "namespace": "default"},
                "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
                "reason": "Pulled", "type": "Normal",
                "message": "  Successfully pulled image \"nginx\"\n",
                "source": {"component": "kubelet", "host": "node-1"},
            })
        };
        let with = |extra: Value| -> CoreEvent {
            let mut v = base();
            v.as_object_mut()
                .expect("object")
                .extend(extra.as_object().expect("object").clone());
            object(v)
        };
        let cases = [
            (
                "first and last timestamps with a count",
                with(json!({"firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 4})),
                json!([
                    "30s",
                    "Normal",
                    "Pulled",
                    "pod/web",
                    "spec.containers{app}",
                    "kubelet, node-1",
                    "Successfully pulled image \"nginx\"",
                    "10m",
                    4,
                    "web.17c8"
                ]),
            ),
            (
                "only an eventTime: singleton of the new API",
                with(json!({"eventTime": "2024-05-01T11:59:00.123456Z",
                            "source": {}, "reportingComponent": "scheduler", "reportingInstance": ""})),
                json!([
                    "59s",
                    "Normal",
                    "Pulled",
                    "pod/web",
                    "spec.containers{app}",
                    "scheduler",
                    "Successfully pulled image \"nginx\"",
                    "59s",
                    1,
                    "web.17c8"
                ]),
            ),
            (
                "a series overrides last seen and count",
                with(
                    json!({"firstTimestamp": ago(7200), "lastTimestamp": ago(3600), "count": 2,
                            "series": {"count": 17, "lastObservedTime": "2024-05-01T11:59:55.000000Z"}}),
                ),
                json!([
                    "5s",
                    "Normal",
                    "Pulled",
                    "pod/web",
                    "spec.containers{app}",
                    "kubelet, node-1",
                    "Successfully pulled image \"nginx\"",
                    "120m",
                    17,
                    "web.17c8"
                ]),
            ),
            (
                "no timestamps at all",
                with(json!({})),
                json!([
                    "<unknown>",
                    "Normal",
                    "Pulled",
                    "pod/web",
                    "spec.containers{app}",
                    "kubelet, node-1",
                    "Successfully pulled image \"nginx\"",
                    "<unknown>",
                    1,
                    "web.17c8"
                ]),
            ),
        ];
        for (name, ev, want) in cases {
            assert_eq!(Value::from(cells(&ev)), want, "{name}");
        }
        let nameless: CoreEvent = object(json!({
            "metadata": {"name": "cluster.1"},
            "involvedObject": {"kind": "Node"},
            "lastTimestamp": ago(3), "firstTimestamp": ago(3),
        }));
        assert_eq!(cells(&nameless)[3], json!("node"));
        assert_eq!(cells(&nameless)[5], json!(""));
    }

    #[test]
    fn events_k8s_io_events_map_onto_the_core_columns() {
        let ev: EventsEvent = object(json!({
            "metadata": {"name": "web.17c9", "namespace": "default"},
            "eventTime": "2024-05-01T11:58:00.000000Z",
            "regarding": {"kind": "Deployment", "name": "web"},
            "reason": "ScalingReplicaSet", "type": "Normal", "action": "Scale",
            "note": "Scaled up replica set web-5d8f to 3",
            "reportingController": "deployment-controller", "reportingInstance": "cp-1",
            "series": {"count": 3, "lastObservedTime": "2024-05-01T11:59:50.000000Z"},
        }));
        assert_eq!(
            Value::from(cells(&ev)),
            json!([
                "10s",
                "Normal",
                "ScalingReplicaSet",
                "deployment/web",
                "",
                "deployment-controller, cp-1",
                "Scaled up replica set web-5d8f to 3",
                "2m",
                3,
                "web.17c9"
            ])
        );
        let legacy: EventsEvent = object(json!({
            "metadata": {"name": "old"},
            "eventTime": "2024-05-01T11:00:00.000000Z",
            "deprecatedFirstTimestamp": ago(300), "deprecatedLastTimestamp": ago(200),
            "deprecatedCount": 9, "deprecatedSource": {"component": "kubelet"},
        }));
        assert_eq!(
            Value::from(cells(&legacy)),
            json!(["3m20s", "", "", "", "", "kubelet", "", "5m", 9, "old"])
        );
    }
}
