//! The EndpointSlice controller's plan (Kubernetes
//! `pkg/controller/endpointslice`, `staging/.../endpointslice/reconciler.go`):
//! from a Service and its selected pods, which slices to create, update and
//! delete. Pure: the driver in [`super`] reads the caches and applies it.
//!
//! Endpoints are grouped by their resolved ports (a named targetPort can
//! differ per pod, and a slice has one port list), at most
//! [`MAX_ENDPOINTS`] per slice. To keep churn low, as Kubernetes does, an
//! endpoint stays in the slice that already holds it, new endpoints fill
//! existing slices before new ones are made, and a slice is written only
//! when its content changes. A Service with no endpoints keeps one empty
//! placeholder slice.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use super::podinfo;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS: usize = 100;

/// What to write to make the Service's slices match its pods.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// A port list in a canonical, comparable form.
type PortKey = String;

fn port_key(ports: &[EndpointPort]) -> PortKey {
    serde_json::to_string(ports).unwrap_or_default()
}

/// The endpoints the Service should have, grouped by resolved ports.
pub fn desired(
    svc: &Service,
    pods: &[Arc<Pod>],
) -> BTreeMap<PortKey, (Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut groups: BTreeMap<PortKey, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    let svc_ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let svc_name = svc.name_any();
    for pod in pods {
        if !podinfo::should_be_in_endpoints(pod, true) {
            continue;
        }
        let Some(ip) = podinfo::pod_ipv4(pod) else {
            continue;
        };
        let ports: Vec<EndpointPort> = svc_ports
            .iter()
            .filter_map(|p| {
                Some(EndpointPort {
                    name: Some(p.name.clone().unwrap_or_default()),
                    port: Some(podinfo::find_port(pod, p)?),
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        let (ready, serving, terminating) = podinfo::conditions(pod, svc);
        let spec = pod.spec.as_ref();
        let hostname = spec
            .filter(|s| s.subdomain.as_deref() == Some(svc_name.as_str()))
            .and_then(|s| s.hostname.clone());
        let endpoint = Endpoint {
            addresses: vec![ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname,
            node_name: spec.and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            ..Endpoint::default()
        };
        let key = port_key(&ports);
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(endpoint);
    }
    for (_, endpoints) in groups.values_mut() {
        endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    }
    groups
}

/// The labels every slice of `svc` carries: the Service's own, then the
/// controller's (which win).
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    let headless = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
    if headless {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

fn owner(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.name_any(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn new_slice(svc: &Service, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.namespace(),
            labels: Some(slice_labels(svc)),
            owner_references: Some(vec![owner(svc)]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: Some(ports),
    }
}

fn address(e: &Endpoint) -> &str {
    e.addresses.first().map(String::as_str).unwrap_or_default()
}

/// The slices this controller owns for `svc` among `existing`.
pub fn is_ours(slice: &EndpointSlice, svc: &Service) -> bool {
    let labels = slice.labels();
    slice.address_type == "IPv4"
        && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME)
        && labels.get(SERVICE_NAME_LABEL) == Some(&svc.name_any())
}

/// Plans the writes that turn `existing` (this controller's slices of the
/// Service) into the `desired` grouping.
pub fn plan(
    svc: &Service,
    mut desired: BTreeMap<PortKey, (Vec<EndpointPort>, Vec<Endpoint>)>,
    existing: &[EndpointSlice],
) -> Plan {
    let placeholder = desired.is_empty();
    if placeholder {
        desired.insert(port_key(&[]), (Vec::new(), Vec::new()));
    }
    let labels = slice_labels(svc);
    let owners = vec![owner(svc)];
    let mut by_group: HashMap<PortKey, Vec<&EndpointSlice>> = HashMap::new();
    let mut out = Plan::default();
    for slice in existing {
        let key = port_key(slice.ports.as_deref().unwrap_or_default());
        if desired.contains_key(&key) {
            by_group.entry(key).or_default().push(slice);
        } else {
            out.delete.push(slice.name_any());
        }
    }
    for (key, (ports, endpoints)) in desired {
        let mut wanted: BTreeMap<&str, &Endpoint> =
            endpoints.iter().map(|e| (address(e), e)).collect();
        let mut slices = by_group.remove(&key).unwrap_or_default();
        slices.sort_by_key(|s| s.name_any());
        // Each kept slice keeps the wanted endpoints it already holds.
        let mut filled: Vec<(&EndpointSlice, Vec<Endpoint>)> = Vec::new();
        let mut seen = BTreeSet::new();
        for slice in slices {
            let kept: Vec<Endpoint> = slice
                .endpoints
                .iter()
                .filter(|e| seen.insert(address(e).to_string()))
                .filter_map(|e| wanted.get(address(e)).map(|w| (*w).clone()))
                .take(MAX_ENDPOINTS)
                .collect();
            filled.push((slice, kept));
        }
        for (_, kept) in &filled {
            for e in kept {
                wanted.remove(address(e));
            }
        }
        // New endpoints fill the fullest slices with room first.
        let mut rest: Vec<Endpoint> = wanted.into_values().cloned().collect();
        filled.sort_by_key(|(_, kept)| std::cmp::Reverse(kept.len()));
        for (_, kept) in filled.iter_mut() {
            while kept.len() < MAX_ENDPOINTS && !rest.is_empty() && !kept.is_empty() {
                kept.push(rest.remove(0));
            }
        }
        for (_, kept) in filled.iter_mut() {
            while kept.len() < MAX_ENDPOINTS && !rest.is_empty() {
                kept.push(rest.remove(0));
            }
        }
        let mut live = 0;
        for (slice, mut kept) in filled {
            if kept.is_empty() && !(placeholder && live == 0) {
                out.delete.push(slice.name_any());
                continue;
            }
            live += 1;
            kept.sort_by(|a, b| a.addresses.cmp(&b.addresses));
            let same = slice.endpoints == kept
                && slice.labels() == &labels
                && slice.metadata.owner_references.as_ref() == Some(&owners);
            if !same {
                let mut updated = slice.clone();
                updated.endpoints = kept;
                updated.metadata.labels = Some(labels.clone());
                updated.metadata.owner_references = Some(owners.clone());
                out.update.push(updated);
            }
        }
        for chunk in rest.chunks(MAX_ENDPOINTS) {
            live += 1;
            out.create
                .push(new_slice(svc, ports.clone(), chunk.to_vec()));
        }
        if live == 0 {
            out.create.push(new_slice(svc, ports, Vec::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": "http"}]},
        }))
        .expect("svc")
    }

    fn pod(name: &str, ip: &str, container_port: i32, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                             "labels": {"app": "web"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [
                    {"name": "http", "containerPort": container_port}]}]},
                "status": {"phase": "Running", "podIP": ip, "conditions": [
                    {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .expect("pod"),
        )
    }

    fn materialise(plan: Plan, existing: Vec<EndpointSlice>) -> Vec<EndpointSlice> {
        let mut out: Vec<EndpointSlice> = existing
            .into_iter()
            .filter(|s| !plan.delete.contains(&s.name_any()))
            .map(|s| {
                plan.update
                    .iter()
                    .find(|u| u.name_any() == s.name_any())
                    .cloned()
                    .unwrap_or(s)
            })
            .collect();
        for (i, mut c) in plan.create.into_iter().enumerate() {
            c.metadata.name = Some(format!("web-new{i}-{}", out.len()));
            out.push(c);
        }
        out
    }

    #[test]
    fn pods_with_different_named_ports_land_in_separate_slices() {
        let pods = vec![
            pod("a", "10.42.0.2", 8080, true),
            pod("b", "10.42.0.3", 9090, false),
        ];
        let plan = plan(&svc(), desired(&svc(), &pods), &[]);
        assert_eq!(plan.create.len(), 2);
        let a = &plan.create[0];
        assert_eq!(a.ports.as_ref().expect("ports")[0].port, Some(8080));
        assert_eq!(a.endpoints[0].addresses, vec!["10.42.0.2"]);
        let conds = a.endpoints[0].conditions.clone().expect("conditions");
        assert_eq!(
            (conds.ready, conds.serving, conds.terminating),
            (Some(true), Some(true), Some(false))
        );
        assert_eq!(a.endpoints[0].node_name.as_deref(), Some("n1"));
        assert_eq!(
            a.endpoints[0]
                .target_ref
                .as_ref()
                .and_then(|r| r.name.as_deref()),
            Some("a")
        );
        let b = &plan.create[1];
        assert_eq!(
            b.endpoints[0].conditions.as_ref().and_then(|c| c.ready),
            Some(false)
        );
        let labels = a.labels();
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(labels["tier"], "front");
        assert_eq!(a.metadata.generate_name.as_deref(), Some("web-"));
    }

    #[test]
    fn slices_hold_at_most_one_hundred_endpoints_and_fill_before_growing() {
        let pods: Vec<_> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.42.{}.{}", i / 200, i % 200 + 2),
                    8080,
                    true,
                )
            })
            .collect();
        let first = plan(&svc(), desired(&svc(), &pods), &[]);
        assert_eq!(
            first
                .create
                .iter()
                .map(|s| s.endpoints.len())
                .collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
        let slices = materialise(first, vec![]);
        // Removing one pod rewrites exactly one slice; adding one fills a
        // slice with room instead of making a new one.
        let mut fewer = pods.clone();
        fewer.remove(10);
        fewer.push(pod("extra", "10.42.9.9", 8080, true));
        let next = plan(&svc(), desired(&svc(), &fewer), &slices);
        assert!(next.create.is_empty() && next.delete.is_empty(), "{next:?}");
        assert_eq!(
            next.update.len(),
            1,
            "the slice that lost one gains the new one"
        );
        let slices = materialise(next, slices);
        let again = plan(&svc(), desired(&svc(), &fewer), &slices);
        assert!(again.is_empty(), "a converged Service plans nothing");
    }

    #[test]
    fn a_service_without_endpoints_keeps_one_placeholder_slice() {
        let first = plan(&svc(), desired(&svc(), &[]), &[]);
        assert_eq!(first.create.len(), 1);
        assert!(first.create[0].endpoints.is_empty());
        let slices = materialise(first, vec![]);
        assert!(plan(&svc(), desired(&svc(), &[]), &slices).is_empty());
        // Pods arriving replace the placeholder (different ports).
        let filled = plan(
            &svc(),
            desired(&svc(), &[pod("a", "10.42.0.2", 8080, true)]),
            &slices,
        );
        assert_eq!((filled.create.len(), filled.delete.len()), (1, 1));
    }

    #[test]
    fn a_deleted_pod_is_terminating_then_gone() {
        let mut p = (*pod("a", "10.42.0.2", 8080, true)).clone();
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:00:00Z".parse().expect("time"),
        ));
        let d = desired(&svc(), &[Arc::new(p)]);
        let e = &d.values().next().expect("group").1[0];
        let c = e.conditions.clone().expect("conditions");
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
    }
}
