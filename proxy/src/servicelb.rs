//! The load balancer of a node-only cluster, as k3s's service load
//! balancer does: a `LoadBalancer` Service's `status.loadBalancer.ingress`
//! is the InternalIPs of the Ready Nodes, and the proxy DNATs those
//! addresses on the Service's port like a ClusterIP. Every proxy computes
//! the same list, so several writing it agree.

use k8s_openapi::api::core::v1::{Node, Service};
use serde_json::{Value, json};

/// The ingress list `svc` should have, or `None` if it is not a
/// LoadBalancer.
pub fn wanted_ingress(svc: &Service, nodes: &[std::sync::Arc<Node>]) -> Option<Vec<String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    // Another load balancer implementation owns this Service.
    if spec.load_balancer_class.is_some() {
        return None;
    }
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| is_ready(n))
        .filter_map(|n| {
            n.status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .find(|a| a.type_ == "InternalIP")
                .map(|a| a.address.clone())
        })
        .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .collect();
    ips.sort();
    ips.dedup();
    Some(ips)
}

fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The status patch that sets `ips`, if the Service does not show them.
pub fn status_patch(svc: &Service, ips: &[String]) -> Option<Value> {
    let current: Vec<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect();
    if current == ips {
        return None;
    }
    let ingress: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
        .collect();
    Some(json!({"status": {"loadBalancer": {"ingress": ingress}}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn node(ip: &str, ready: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"status": {
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "h"}],
                "conditions": [{"type": "Ready", "status": ready}]}}))
            .expect("node"),
        )
    }

    #[test]
    fn load_balancers_get_the_ready_nodes_internal_ips() {
        let lb: Service =
            serde_json::from_value(json!({"spec": {"type": "LoadBalancer"}})).expect("svc");
        let nodes = [
            node("192.168.1.2", "True"),
            node("192.168.1.3", "False"),
            node("192.168.1.1", "True"),
        ];
        let ips = wanted_ingress(&lb, &nodes).expect("lb");
        assert_eq!(ips, ["192.168.1.1", "192.168.1.2"]);
        let patch = status_patch(&lb, &ips).expect("patch");
        assert_eq!(
            patch["status"]["loadBalancer"]["ingress"][0]["ip"],
            "192.168.1.1"
        );
        let done: Service = serde_json::from_value(json!({"spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.1"}, {"ip": "192.168.1.2"}]}}}))
        .expect("svc");
        assert_eq!(status_patch(&done, &ips), None);
        let cluster_ip: Service =
            serde_json::from_value(json!({"spec": {"type": "ClusterIP"}})).expect("svc");
        assert_eq!(wanted_ingress(&cluster_ip, &nodes), None);
    }
}
