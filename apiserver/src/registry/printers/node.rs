//! The Node table: NAME STATUS ROLES AGE VERSION, and with `-o wide`
//! INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use super::descriptions as doc;
use super::format::{NONE, UNKNOWN};
use super::{AGE, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

/// `node-role.kubernetes.io/<role>` labels name a role each.
const NODE_ROLE_PREFIX: &str = "node-role.kubernetes.io/";
/// The older `kubernetes.io/role=<role>` label.
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

impl Printer for Node {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Status", "string", 0, "The status of the node"),
            Column::new("Roles", "string", 0, "The roles of the node"),
            AGE,
            Column::new(
                "Version",
                "string",
                0,
                doc::NODE_SYSTEM_INFO_KUBELET_VERSION,
            ),
            Column::new("Internal-IP", "string", 1, doc::NODE_STATUS_ADDRESSES),
            Column::new("External-IP", "string", 1, doc::NODE_STATUS_ADDRESSES),
            Column::new("OS-Image", "string", 1, doc::NODE_SYSTEM_INFO_OS_IMAGE),
            Column::new(
                "Kernel-Version",
                "string",
                1,
                doc::NODE_SYSTEM_INFO_KERNEL_VERSION,
            ),
            Column::new(
                "Container-Runtime",
                "string",
                1,
                doc::NODE_SYSTEM_INFO_CONTAINER_RUNTIME_VERSION,
            ),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let status = self.status.as_ref();
        let info = status.and_then(|s| s.node_info.as_ref());
        let info_or_unknown = |f: fn(&k8s_openapi::api::core::v1::NodeSystemInfo) -> &str| {
            info.map(f)
                .filter(|s| !s.is_empty())
                .unwrap_or(UNKNOWN)
                .to_string()
        };
        let roles = roles(self);
        vec![
            name_cell(&self.metadata),
            Value::from(node_status(self)),
            Value::from(if roles.is_empty() {
                NONE.to_string()
            } else {
                roles.join(",")
            }),
            age_cell(&self.metadata, now),
            Value::from(info.map_or("", |i| i.kubelet_version.as_str())),
            Value::from(address(self, "InternalIP")),
            Value::from(address(self, "ExternalIP")),
            Value::from(info_or_unknown(|i| &i.os_image)),
            Value::from(info_or_unknown(|i| &i.kernel_version)),
            Value::from(info_or_unknown(|i| &i.container_runtime_version)),
        ]
    }
}

/// `Ready`, `NotReady` or `Unknown`, then `SchedulingDisabled` for a
/// cordoned node. The last Ready condition in the list counts, as the Go
/// printer's map keeps the last one.
fn node_status(node: &Node) -> String {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .rfind(|c| c.type_ == "Ready");
    let mut status = vec![match ready {
        Some(c) if c.status == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

/// The sorted, distinct roles from the node's labels.
fn roles(node: &Node) -> Vec<&str> {
    let mut roles = BTreeSet::new();
    for (k, v) in node.metadata.labels.iter().flatten() {
        if let Some(role) = k.strip_prefix(NODE_ROLE_PREFIX) {
            if !role.is_empty() {
                roles.insert(role);
            }
        } else if k == NODE_ROLE_LABEL && !v.is_empty() {
            roles.insert(v.as_str());
        }
    }
    roles.into_iter().collect()
}

/// The first address of `type_`, or `<none>`.
fn address<'a>(node: &'a Node, type_: &str) -> &'a str {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|a| a.type_ == type_)
        .map_or(NONE, |a| a.address.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::printers::testing::{ago, cells, headers, object};
    use serde_json::json;

    fn node(labels: Value, spec: Value, status: Value) -> Node {
        object(json!({
            "metadata": {"name": "n1", "labels": labels, "creationTimestamp": ago(10 * 86400)},
            "spec": spec,
            "status": status,
        }))
    }

    #[test]
    fn node_columns_follow_printers_go() {
        assert_eq!(
            headers::<Node>(),
            [
                ("Name", 0),
                ("Status", 0),
                ("Roles", 0),
                ("Age", 0),
                ("Version", 0),
                ("Internal-IP", 1),
                ("External-IP", 1),
                ("OS-Image", 1),
                ("Kernel-Version", 1),
                ("Container-Runtime", 1),
            ]
        );
    }

    #[test]
    fn node_status_and_roles() {
        let ready = |s: &str| json!({"conditions": [{"type": "Ready", "status": s}]});
        let cases = [
            (
                "no conditions",
                json!({}),
                json!({}),
                json!({}),
                "Unknown",
                "<none>",
            ),
            (
                "ready",
                json!({}),
                json!({}),
                ready("True"),
                "Ready",
                "<none>",
            ),
            (
                "not ready",
                json!({}),
                json!({}),
                ready("False"),
                "NotReady",
                "<none>",
            ),
            (
                "unknown",
                json!({}),
                json!({}),
                ready("Unknown"),
                "NotReady",
                "<none>",
            ),
            (
                "cordoned",
                json!({}),
                json!({"unschedulable": true}),
                ready("True"),
                "Ready,SchedulingDisabled",
                "<none>",
            ),
            (
                "cordoned without conditions",
                json!({}),
                json!({"unschedulable": true}),
                json!({}),
                "Unknown,SchedulingDisabled",
                "<none>",
            ),
            (
                "roles from both label styles, sorted and distinct",
                json!({
                    "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/": "",
                    "node-role.kubernetes.io/worker": "true",
                    "kubernetes.io/role": "worker",
                    "kubernetes.io/hostname": "n1",
                }),
                json!({}),
                ready("True"),
                "Ready",
                "control-plane,worker",
            ),
        ];
        for (name, labels, spec, status, want_status, want_roles) in cases {
            let c = cells(&node(labels, spec, status));
            assert_eq!(
                (c[1].clone(), c[2].clone()),
                (json!(want_status), json!(want_roles)),
                "{name}"
            );
            assert_eq!(c[3], json!("10d"), "{name}");
        }
    }

    #[test]
    fn node_wide_cells_show_addresses_and_system_info() {
        let n = node(
            json!({}),
            json!({}),
            json!({
                "addresses": [
                    {"type": "Hostname", "address": "n1"},
                    {"type": "InternalIP", "address": "192.168.1.10"},
                    {"type": "InternalIP", "address": "192.168.1.11"},
                ],
                "nodeInfo": {
                    "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "containerd://1.7.20",
                    "kernelVersion": "6.8.0-45-generic", "kubeProxyVersion": "", "kubeletVersion": "v1.33.1",
                    "machineID": "", "operatingSystem": "linux", "osImage": "Ubuntu 24.04.1 LTS",
                    "systemUUID": "",
                },
            }),
        );
        assert_eq!(
            &cells(&n)[4..],
            &[
                json!("v1.33.1"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Ubuntu 24.04.1 LTS"),
                json!("6.8.0-45-generic"),
                json!("containerd://1.7.20"),
            ]
        );
        let bare = node(json!({}), json!({}), json!({}));
        assert_eq!(
            &cells(&bare)[4..],
            &[
                json!(""),
                json!("<none>"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<unknown>"),
                json!("<unknown>"),
            ]
        );
    }
}
