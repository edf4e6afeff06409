//! The Service table (TYPE CLUSTER-IP EXTERNAL-IP PORT(S), wide SELECTOR)
//! and the Endpoints table (ENDPOINTS), which list a service's addresses.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};
use serde_json::Value;

use super::descriptions as doc;
use super::format::{self, NONE, UNKNOWN};
use super::{AGE, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

/// How many endpoints the ENDPOINTS column lists before "+ N more...".
const MAX_ENDPOINTS: usize = 3;

impl Printer for Service {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Type", "string", 0, doc::SERVICE_SPEC_TYPE),
            Column::new("Cluster-IP", "string", 0, doc::SERVICE_SPEC_CLUSTER_IP),
            Column::new("External-IP", "string", 0, doc::SERVICE_SPEC_EXTERNAL_IPS),
            Column::new("Port(s)", "string", 0, doc::SERVICE_SPEC_PORTS),
            AGE,
            Column::new("Selector", "string", 1, doc::SERVICE_SPEC_SELECTOR),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.as_ref();
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let ports = if ports.is_empty() {
            NONE.to_string()
        } else {
            port_string(ports)
        };
        vec![
            name_cell(&self.metadata),
            Value::from(service_type(self)),
            Value::from(cluster_ip(self)),
            Value::from(external_ip(self)),
            Value::from(ports),
            age_cell(&self.metadata, now),
            Value::from(format::format_labels(
                spec.and_then(|s| s.selector.as_ref()),
            )),
        ]
    }
}

/// SetDefaults_Service: an unset type is ClusterIP.
fn service_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .filter(|t| !t.is_empty())
        .unwrap_or("ClusterIP")
}

/// The primary cluster IP (`None` for a headless service) or `<none>`.
/// The v1-to-internal conversion makes `clusterIP` authoritative over
/// `clusterIPs[0]`.
fn cluster_ip(svc: &Service) -> &str {
    let Some(spec) = svc.spec.as_ref() else {
        return NONE;
    };
    match spec.cluster_ip.as_deref() {
        Some(ip) if !ip.is_empty() => ip,
        _ => spec
            .cluster_ips
            .as_deref()
            .and_then(|ips| ips.first())
            .map_or(NONE, String::as_str),
    }
}

/// `getServiceExternalIP` as the server calls it (wide, so load balancer
/// addresses are never clipped).
fn external_ip(svc: &Service) -> String {
    let spec = svc.spec.as_ref();
    let external_ips = spec
        .and_then(|s| s.external_ips.as_deref())
        .unwrap_or_default();
    match service_type(svc) {
        "ClusterIP" | "NodePort" => format::join_or_none(external_ips),
        "LoadBalancer" => {
            let ingress: BTreeSet<&str> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_deref())
                .unwrap_or_default()
                .iter()
                .filter_map(|i| {
                    let ip = format::opt(&i.ip);
                    let host = format::opt(&i.hostname);
                    if !ip.is_empty() {
                        Some(ip)
                    } else if !host.is_empty() {
                        Some(host)
                    } else {
                        None
                    }
                })
                .collect();
            let all: Vec<&str> = ingress
                .into_iter()
                .chain(external_ips.iter().map(String::as_str))
                .collect();
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => spec
            .and_then(|s| s.external_name.clone())
            .unwrap_or_default(),
        _ => UNKNOWN.to_string(),
    }
}

/// `makePortString`: `80/TCP`, or `80:30080/TCP` with a node port.
fn port_string(ports: &[ServicePort]) -> String {
    ports
        .iter()
        .map(|p| {
            // SetDefaults_ServicePort: an unset protocol is TCP.
            let protocol = p
                .protocol
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or("TCP");
            match p.node_port {
                Some(node_port) if node_port > 0 => {
                    format!("{}:{node_port}/{protocol}", p.port)
                }
                _ => format!("{}/{protocol}", p.port),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Printer for Endpoints {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Endpoints", "string", 0, doc::ENDPOINTS_SUBSETS),
            AGE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        vec![
            name_cell(&self.metadata),
            Value::from(format_endpoints(self)),
            age_cell(&self.metadata, now),
        ]
    }
}

/// `formatEndpoints`: ready `ip:port` pairs (just IPs for a headless
/// service without ports), three at most, `<none>` without subsets.
fn format_endpoints(ep: &Endpoints) -> String {
    let subsets = ep.subsets.as_deref().unwrap_or_default();
    if subsets.is_empty() {
        return NONE.to_string();
    }
    let mut items = Vec::new();
    for ss in subsets {
        let addresses = ss.addresses.as_deref().unwrap_or_default();
        let ports = ss.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            items.extend(addresses.iter().map(|a| a.ip.clone()));
            continue;
        }
        for port in ports {
            items.extend(addresses.iter().map(|a| join_host_port(&a.ip, port.port)));
        }
    }
    format::join_truncated(items, MAX_ENDPOINTS)
}

/// Go's `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::printers::testing::{ago, cells, headers, object};
    use serde_json::json;

    fn service(spec: Value, status: Value) -> Service {
        object(json!({
            "metadata": {"name": "web", "creationTimestamp": ago(3 * 3600 + 5 * 60)},
            "spec": spec,
            "status": status,
        }))
    }

    #[test]
    fn service_columns_follow_printers_go() {
        assert_eq!(
            headers::<Service>(),
            [
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1),
            ]
        );
    }

    #[test]
    fn service_cells_cover_each_type() {
        let cases = [
            (
                "cluster ip",
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                       "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}),
                json!({}),
                ["ClusterIP", "10.96.0.10", "<none>", "80/TCP", "app=web"],
            ),
            (
                "defaults: type, protocol, no selector",
                json!({"clusterIPs": ["10.96.0.11"], "ports": [{"port": 53, "protocol": "UDP"}, {"port": 8080}]}),
                json!({}),
                [
                    "ClusterIP",
                    "10.96.0.11",
                    "<none>",
                    "53/UDP,8080/TCP",
                    "<none>",
                ],
            ),
            (
                "headless without ports",
                json!({"clusterIP": "None", "selector": {"app": "db", "tier": "be"}}),
                json!({}),
                ["ClusterIP", "None", "<none>", "<none>", "app=db,tier=be"],
            ),
            (
                "node port with external ips",
                json!({"type": "NodePort", "clusterIP": "10.96.1.1",
                       "externalIPs": ["1.2.3.4", "5.6.7.8"],
                       "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
                json!({}),
                [
                    "NodePort",
                    "10.96.1.1",
                    "1.2.3.4,5.6.7.8",
                    "80:30080/TCP",
                    "<none>",
                ],
            ),
            (
                "load balancer still pending",
                json!({"type": "LoadBalancer", "clusterIP": "10.96.2.2",
                       "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}),
                json!({}),
                [
                    "LoadBalancer",
                    "10.96.2.2",
                    "<pending>",
                    "443:31443/TCP",
                    "<none>",
                ],
            ),
            (
                "load balancer with ingress (sorted, never clipped) and external ips",
                json!({"type": "LoadBalancer", "clusterIP": "10.96.2.3", "externalIPs": ["9.9.9.9"],
                       "ports": [{"port": 80, "protocol": "TCP"}]}),
                json!({"loadBalancer": {"ingress": [
                    {"hostname": "lb.example.com"}, {"ip": "203.0.113.200"}, {"ip": "203.0.113.200"}]}}),
                [
                    "LoadBalancer",
                    "10.96.2.3",
                    "203.0.113.200,lb.example.com,9.9.9.9",
                    "80/TCP",
                    "<none>",
                ],
            ),
            (
                "external name",
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({}),
                [
                    "ExternalName",
                    "<none>",
                    "db.example.com",
                    "<none>",
                    "<none>",
                ],
            ),
            (
                "an unknown type",
                json!({"type": "Weird", "clusterIP": "10.0.0.1"}),
                json!({}),
                ["Weird", "10.0.0.1", "<unknown>", "<none>", "<none>"],
            ),
        ];
        for (name, spec, status, [type_, cip, eip, ports, selector]) in cases {
            assert_eq!(
                cells(&service(spec, status)),
                [
                    json!("web"),
                    json!(type_),
                    json!(cip),
                    json!(eip),
                    json!(ports),
                    json!("3h5m"),
                    json!(selector),
                ],
                "{name}"
            );
        }
    }

    #[test]
    fn endpoints_list_three_then_count_the_rest() {
        assert_eq!(
            headers::<Endpoints>(),
            [("Name", 0), ("Endpoints", 0), ("Age", 0)]
        );
        let cases = [
            ("no subsets", json!(null), "<none>"),
            ("empty subsets", json!([]), "<none>"),
            (
                "a subset without addresses",
                json!([{"ports": [{"port": 80}]}]),
                "",
            ),
            (
                "ip:port pairs",
                json!([{"addresses": [{"ip": "10.1.0.4"}, {"ip": "10.1.0.5"}], "ports": [{"port": 8080}]}]),
                "10.1.0.4:8080,10.1.0.5:8080",
            ),
            (
                "headless without ports lists bare IPs",
                json!([{"addresses": [{"ip": "10.1.0.4"}]}]),
                "10.1.0.4",
            ),
            (
                "ipv6 in brackets",
                json!([{"addresses": [{"ip": "fd00::4"}], "ports": [{"port": 443}]}]),
                "[fd00::4]:443",
            ),
            (
                "more than three over several ports and subsets",
                json!([
                    {"addresses": [{"ip": "10.1.0.4"}, {"ip": "10.1.0.5"}],
                     "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}]},
                    {"addresses": [{"ip": "10.1.0.6"}], "ports": [{"port": 80}]},
                ]),
                "10.1.0.4:80,10.1.0.5:80,10.1.0.4:443 + 2 more...",
            ),
            (
                "not-ready addresses are not listed",
                json!([{"notReadyAddresses": [{"ip": "10.1.0.9"}], "ports": [{"port": 80}]}]),
                "",
            ),
        ];
        for (name, subsets, want) in cases {
            let ep: Endpoints = object(json!({
                "metadata": {"name": "web", "creationTimestamp": ago(30)},
                "subsets": subsets,
            }));
            assert_eq!(
                cells(&ep),
                [json!("web"), json!(want), json!("30s")],
                "{name}"
            );
        }
    }
}
