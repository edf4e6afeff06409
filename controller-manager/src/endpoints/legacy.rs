//! The legacy Endpoints object (Kubernetes `pkg/controller/endpoint`) for
//! older clients: one object named like the Service, whose subsets list
//! ready addresses and `notReadyAddresses` per distinct port list.
//! Terminating pods are left out (unless the Service publishes not-ready
//! addresses), as the Endpoints controller has always done.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::podinfo;
use super::slices::HEADLESS_LABEL;

/// The Endpoints object `svc` should have (without resourceVersion).
pub fn desired(svc: &Service, pods: &[Arc<Pod>]) -> Endpoints {
    let publish = podinfo::publish_not_ready(svc);
    let spec = svc.spec.clone().unwrap_or_default();
    let svc_ports = spec.ports.clone().unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let svc_name = svc.name_any();
    // Subsets keyed by their port list, each with (ready, not ready).
    type Addrs = (Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, Addrs)> = BTreeMap::new();
    for pod in pods {
        if !podinfo::should_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = podinfo::pod_ipv4(pod) else {
            continue;
        };
        let pod_spec = pod.spec.as_ref();
        let address = EndpointAddress {
            ip: ip.to_string(),
            hostname: pod_spec
                .filter(|s| s.subdomain.as_deref() == Some(svc_name.as_str()))
                .and_then(|s| s.hostname.clone()),
            node_name: pod_spec.and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
        };
        let ports: Vec<EndpointPort> = svc_ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: p.name.clone().filter(|n| !n.is_empty()),
                    port: podinfo::find_port(pod, p)?,
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        // A pod with none of the Service's ports is no endpoint, except for
        // a headless Service without ports (DNS only).
        if ports.is_empty() && !(svc_ports.is_empty() && headless) {
            continue;
        }
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let entry = groups
            .entry(key)
            .or_insert_with(|| (ports, (Vec::new(), Vec::new())));
        if publish || crate::pods::is_ready(pod) {
            entry.1.0.push(address);
        } else {
            entry.1.1.push(address);
        }
    }
    let subsets: Vec<EndpointSubset> = groups
        .into_values()
        .map(|(mut ports, (mut ready, mut not_ready))| {
            ports.sort_by(|a, b| a.name.cmp(&b.name).then(a.port.cmp(&b.port)));
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    let mut labels = svc.labels().clone();
    if headless {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    Endpoints {
        metadata: ObjectMeta {
            name: Some(svc_name),
            namespace: svc.namespace(),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// Whether `current` already says what `want` says.
pub fn up_to_date(current: &Endpoints, want: &Endpoints) -> bool {
    current.subsets.as_deref().unwrap_or_default() == want.subsets.as_deref().unwrap_or_default()
        && current.labels() == want.labels()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool, terminating: bool) -> Arc<Pod> {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if terminating {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        Arc::new(serde_json::from_value(v).expect("pod"))
    }

    #[test]
    fn ready_and_not_ready_addresses_share_a_subset_and_terminating_pods_leave() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }))
        .expect("svc");
        let pods = vec![
            pod("b", "10.42.0.3", false, false),
            pod("a", "10.42.0.2", true, false),
            pod("c", "10.42.0.4", true, true),
        ];
        let e = desired(&svc, &pods);
        let subsets = e.subsets.expect("subsets");
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        let ips = |a: &Option<Vec<EndpointAddress>>| {
            a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ips(&s.addresses), vec!["10.42.0.2"]);
        assert_eq!(ips(&s.not_ready_addresses), vec!["10.42.0.3"]);
        assert_eq!(s.ports.as_ref().expect("ports")[0].port, 8080);
        let current = desired(&svc, &pods);
        assert!(up_to_date(&current, &desired(&svc, &pods)));
        let b_ready = vec![pod("b", "10.42.0.3", true, false), pods[1].clone()];
        assert!(!up_to_date(&current, &desired(&svc, &b_ready)));
    }
}
