//! What the endpoint controllers read off a pod, after Kubernetes'
//! `pkg/controller/util/endpoint` and `pkg/api/v1/pod`: whether a pod
//! belongs in a Service's endpoints at all, its readiness, and the port a
//! Service port's `targetPort` means for this pod (a named targetPort is
//! resolved per pod, so two pods may serve one Service port on different
//! container ports).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The pod's IPv4 address, if it has one (`status.podIP`, else the first
/// IPv4 of `status.podIPs`); only IPv4 slices are managed.
pub fn pod_ipv4(pod: &Pod) -> Option<Ipv4Addr> {
    let status = pod.status.as_ref()?;
    let primary = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok());
    primary.or_else(|| {
        status
            .pod_ips
            .iter()
            .flatten()
            .find_map(|ip| ip.ip.parse().ok())
    })
}

/// `ShouldPodBeInEndpoints`: a pod with an IP that has not finished
/// (Succeeded/Failed); a terminating pod only if `include_terminating`
/// (EndpointSlices keep it with `terminating: true`, Endpoints drop it).
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    if pod_ipv4(pod).is_none() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// The endpoint conditions of a pod for `svc`, as the EndpointSlice
/// controller computes them: `serving` is the pod's Ready condition;
/// `ready` is serving and not terminating, unless the Service publishes
/// not-ready addresses (then every address is ready).
pub fn conditions(pod: &Pod, svc: &Service) -> (bool, bool, bool) {
    let publish = publish_not_ready(svc);
    let serving = crate::pods::is_ready(pod);
    let terminating = is_terminating(pod);
    let mut ready = publish || serving;
    if terminating && !publish {
        ready = false;
    }
    (ready, serving, terminating)
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// `FindPort`: the container port a Service port's targetPort means for
/// this pod. A number is taken as is; a name is looked up among the pod's
/// container ports of the same protocol; no targetPort means `port`.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            spec.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Whether a Service's equality selector selects these labels. A Service
/// without a selector (or an empty one) selects nothing: its endpoints are
/// managed by hand, as in Kubernetes.
pub fn selects(svc: &Service, labels: &BTreeMap<String, String>) -> bool {
    match svc.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(sel) if !sel.is_empty() => sel.iter().all(|(k, v)| labels.get(k) == Some(v)),
        _ => false,
    }
}

/// Services the endpoint controllers manage: with a selector, not
/// `ExternalName`.
pub fn is_managed(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    spec.type_.as_deref() != Some("ExternalName")
        && spec.selector.as_ref().is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    fn svc_port(v: serde_json::Value) -> ServicePort {
        serde_json::from_value(v).expect("port")
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_protocol() {
        let p = pod(json!({"spec": {"containers": [
            {"name": "a", "ports": [{"name": "http", "containerPort": 8080},
                                    {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]}}));
        let cases = [
            (json!({"port": 80, "targetPort": "http"}), Some(8080)),
            (json!({"port": 80, "targetPort": 9000}), Some(9000)),
            (json!({"port": 80}), Some(80)),
            (json!({"port": 53, "targetPort": "dns"}), None),
            (
                json!({"port": 53, "targetPort": "dns", "protocol": "UDP"}),
                Some(53),
            ),
            (json!({"port": 80, "targetPort": "missing"}), None),
        ];
        for (port, want) in cases {
            assert_eq!(find_port(&p, &svc_port(port.clone())), want, "{port}");
        }
    }

    #[test]
    fn terminating_pods_are_serving_but_not_ready() {
        let s: Service = serde_json::from_value(json!({"spec": {}})).expect("svc");
        let p = pod(json!({
            "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"podIP": "10.42.0.5", "conditions": [{"type": "Ready", "status": "True"}]},
        }));
        assert_eq!(conditions(&p, &s), (false, true, true));
        assert!(should_be_in_endpoints(&p, true));
        assert!(!should_be_in_endpoints(&p, false));
        let publish: Service =
            serde_json::from_value(json!({"spec": {"publishNotReadyAddresses": true}}))
                .expect("svc");
        assert_eq!(conditions(&p, &publish), (true, true, true));
    }

    #[test]
    fn finished_or_addressless_pods_are_left_out() {
        let done = pod(json!({"status": {"phase": "Succeeded", "podIP": "10.42.0.5"}}));
        let no_ip = pod(json!({"status": {"phase": "Running"}}));
        assert!(!should_be_in_endpoints(&done, true));
        assert!(!should_be_in_endpoints(&no_ip, true));
    }
}
