//! The apps/v1 tables: deployments (READY UP-TO-DATE AVAILABLE),
//! replicasets (DESIRED CURRENT READY), daemonsets (DESIRED CURRENT READY
//! UP-TO-DATE AVAILABLE NODE SELECTOR) and statefulsets (READY), each with
//! the wide CONTAINERS IMAGES (SELECTOR) columns.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::descriptions as doc;
use super::format;
use super::{AGE, CONTAINERS, IMAGES, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

/// SetDefaults_Deployment / _ReplicaSet / _StatefulSet: unset replicas are 1.
fn desired(replicas: Option<i32>) -> i64 {
    i64::from(replicas.unwrap_or(1))
}

/// The wide CONTAINERS and IMAGES cells of a pod template.
fn container_cells(template: &PodTemplateSpec) -> [Value; 2] {
    let containers = template
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let (names, images) = format::container_cells(containers);
    [Value::from(names), Value::from(images)]
}

impl Printer for Deployment {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Ready", "string", 0, "Number of the pod with ready state"),
            Column::new(
                "Up-to-date",
                "string",
                0,
                doc::DEPLOYMENT_STATUS_UPDATED_REPLICAS,
            ),
            Column::new(
                "Available",
                "string",
                0,
                doc::DEPLOYMENT_STATUS_AVAILABLE_REPLICAS,
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", 1, doc::DEPLOYMENT_SPEC_SELECTOR),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        let ready = status.and_then(|s| s.ready_replicas).unwrap_or(0);
        let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
        let available = status.and_then(|s| s.available_replicas).unwrap_or(0);
        // Unlike the other workloads, printDeployment prints the bare
        // selector string: empty for an empty selector, `<invalid>` on error.
        let selector = format::label_selector_string(spec.map(|s| &s.selector))
            .unwrap_or_else(|_| "<invalid>".to_string());
        let [names, images] = spec.map_or([Value::from(""), Value::from("")], |s| {
            container_cells(&s.template)
        });
        vec![
            name_cell(&self.metadata),
            Value::from(format!(
                "{ready}/{}",
                desired(spec.and_then(|s| s.replicas))
            )),
            Value::from(i64::from(updated)),
            Value::from(i64::from(available)),
            age_cell(&self.metadata, now),
            names,
            images,
            Value::from(selector),
        ]
    }
}

impl Printer for ReplicaSet {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Desired", "integer", 0, doc::REPLICA_SET_SPEC_REPLICAS),
            Column::new("Current", "integer", 0, doc::REPLICA_SET_STATUS_REPLICAS),
            Column::new(
                "Ready",
                "integer",
                0,
                doc::REPLICA_SET_STATUS_READY_REPLICAS,
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", 1, doc::REPLICA_SET_SPEC_SELECTOR),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        let [names, images] = spec
            .and_then(|s| s.template.as_ref())
            .map_or([Value::from(""), Value::from("")], container_cells);
        vec![
            name_cell(&self.metadata),
            Value::from(desired(spec.and_then(|s| s.replicas))),
            Value::from(i64::from(status.map_or(0, |s| s.replicas))),
            Value::from(i64::from(
                status.and_then(|s| s.ready_replicas).unwrap_or(0),
            )),
            age_cell(&self.metadata, now),
            names,
            images,
            Value::from(format::format_label_selector(spec.map(|s| &s.selector))),
        ]
    }
}

impl Printer for DaemonSet {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new(
                "Desired",
                "integer",
                0,
                doc::DAEMON_SET_STATUS_DESIRED_NUMBER_SCHEDULED,
            ),
            Column::new(
                "Current",
                "integer",
                0,
                doc::DAEMON_SET_STATUS_CURRENT_NUMBER_SCHEDULED,
            ),
            Column::new("Ready", "integer", 0, doc::DAEMON_SET_STATUS_NUMBER_READY),
            Column::new(
                "Up-to-date",
                "integer",
                0,
                doc::DAEMON_SET_STATUS_UPDATED_NUMBER_SCHEDULED,
            ),
            Column::new(
                "Available",
                "integer",
                0,
                doc::DAEMON_SET_STATUS_NUMBER_AVAILABLE,
            ),
            Column::new("Node Selector", "string", 0, doc::POD_SPEC_NODE_SELECTOR),
            AGE,
            CONTAINERS,
            IMAGES,
            Column::new("Selector", "string", 1, doc::DAEMON_SET_SPEC_SELECTOR),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        let node_selector = spec
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.node_selector.as_ref());
        let [names, images] = spec.map_or([Value::from(""), Value::from("")], |s| {
            container_cells(&s.template)
        });
        vec![
            name_cell(&self.metadata),
            Value::from(i64::from(status.map_or(0, |s| s.desired_number_scheduled))),
            Value::from(i64::from(status.map_or(0, |s| s.current_number_scheduled))),
            Value::from(i64::from(status.map_or(0, |s| s.number_ready))),
            Value::from(i64::from(
                status.and_then(|s| s.updated_number_scheduled).unwrap_or(0),
            )),
            Value::from(i64::from(
                status.and_then(|s| s.number_available).unwrap_or(0),
            )),
            Value::from(format::format_labels(node_selector)),
            age_cell(&self.metadata, now),
            names,
            images,
            Value::from(format::format_label_selector(spec.map(|s| &s.selector))),
        ]
    }
}

impl Printer for StatefulSet {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Ready", "string", 0, "Number of the pod with ready state"),
            AGE,
            CONTAINERS,
            IMAGES,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.as_ref();
        let ready = self
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        let [names, images] = spec.map_or([Value::from(""), Value::from("")], |s| {
            container_cells(&s.template)
        });
        vec![
            name_cell(&self.metadata),
            Value::from(format!(
                "{ready}/{}",
                desired(spec.and_then(|s| s.replicas))
            )),
            age_cell(&self.metadata, now),
            names,
            images,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::printers::testing::{ago, cells, headers, object};
    use serde_json::json;

    fn template() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [
                {"name": "web", "image": "nginx:1.27"},
                {"name": "log", "image": "fluent-bit:3"}]},
        })
    }

    #[test]
    fn deployment_prints_ready_fraction_and_raw_selector() {
        assert_eq!(
            headers::<Deployment>(),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ]
        );
        let cases = [
            (
                "rolled out",
                json!({"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()}),
                json!({"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                json!([
                    "web",
                    "3/3",
                    3,
                    3,
                    "5m",
                    "web,log",
                    "nginx:1.27,fluent-bit:3",
                    "app=web"
                ]),
            ),
            (
                "fresh with defaulted replicas and empty selector",
                json!({"selector": {}, "template": template()}),
                json!(null),
                json!([
                    "web",
                    "0/1",
                    0,
                    0,
                    "5m",
                    "web,log",
                    "nginx:1.27,fluent-bit:3",
                    ""
                ]),
            ),
            (
                "invalid selector",
                json!({"replicas": 0, "template": template(), "selector": {
                    "matchExpressions": [{"key": "app", "operator": "In"}]}}),
                json!({}),
                json!([
                    "web",
                    "0/0",
                    0,
                    0,
                    "5m",
                    "web,log",
                    "nginx:1.27,fluent-bit:3",
                    "<invalid>"
                ]),
            ),
        ];
        for (name, spec, status, want) in cases {
            let d: Deployment = object(json!({
                "metadata": {"name": "web", "creationTimestamp": ago(300)},
                "spec": spec,
                "status": status,
            }));
            assert_eq!(Value::from(cells(&d)), want, "{name}");
        }
    }

    #[test]
    fn replicaset_prints_desired_current_ready() {
        assert_eq!(
            headers::<ReplicaSet>(),
            [
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ]
        );
        let rs: ReplicaSet = object(json!({
            "metadata": {"name": "web-5d8f", "creationTimestamp": ago(90)},
            "spec": {"replicas": 2, "template": template(), "selector": {
                "matchLabels": {"app": "web", "pod-template-hash": "5d8f"}}},
            "status": {"replicas": 2, "readyReplicas": 1},
        }));
        assert_eq!(
            Value::from(cells(&rs)),
            json!([
                "web-5d8f",
                2,
                2,
                1,
                "90s",
                "web,log",
                "nginx:1.27,fluent-bit:3",
                "app=web,pod-template-hash=5d8f"
            ])
        );
        let bare: ReplicaSet = object(json!({"metadata": {"name": "x"}, "spec": {"selector": {}}}));
        assert_eq!(
            Value::from(cells(&bare)),
            json!(["x", 1, 0, 0, "<unknown>", "", "", "<none>"])
        );
    }

    #[test]
    fn daemonset_prints_scheduling_counts_and_node_selector() {
        assert_eq!(
            headers::<DaemonSet>(),
            [
                ("Name", 0),
                ("Desired", 0),
                ("Current", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Node Selector", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ]
        );
        let mut tpl = template();
        tpl["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        let ds: DaemonSet = object(json!({
            "metadata": {"name": "proxy", "creationTimestamp": ago(86400 * 3)},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": tpl},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                       "updatedNumberScheduled": 3, "numberAvailable": 2, "numberMisscheduled": 0},
        }));
        assert_eq!(
            Value::from(cells(&ds)),
            json!([
                "proxy",
                3,
                3,
                2,
                3,
                2,
                "kubernetes.io/os=linux",
                "3d",
                "web,log",
                "nginx:1.27,fluent-bit:3",
                "app=web"
            ])
        );
        let plain: DaemonSet = object(json!({
            "metadata": {"name": "agent", "creationTimestamp": ago(60)},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template()},
        }));
        assert_eq!(
            cells(&plain)[1..8],
            [
                json!(0),
                json!(0),
                json!(0),
                json!(0),
                json!(0),
                json!("<none>"),
                json!("60s")
            ]
        );
    }

    #[test]
    fn statefulset_prints_ready_fraction() {
        assert_eq!(
            headers::<StatefulSet>(),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1)
            ]
        );
        let sts: StatefulSet = object(json!({
            "metadata": {"name": "db", "creationTimestamp": ago(7200)},
            "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": template()},
            "status": {"replicas": 3, "readyReplicas": 2},
        }));
        assert_eq!(
            Value::from(cells(&sts)),
            json!(["db", "2/3", "120m", "web,log", "nginx:1.27,fluent-bit:3"])
        );
    }
}
