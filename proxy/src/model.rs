//! The proxy's view of a Service: one [`ServicePort`] per port, with the
//! endpoints its EndpointSlices list for that port (kube-proxy's
//! `ServicePortName` and `Endpoint`), built from the API objects without
//! I/O.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// One port of a Service, as the dataplane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `namespace/name:port` (kube-proxy's ServicePortName; the port name
    /// may be empty).
    pub key: String,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub cluster_ip: Option<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `sessionAffinity: ClientIP` timeout.
    pub affinity_seconds: Option<i32>,
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this proxy's node.
    pub local: bool,
}

impl ServicePort {
    pub fn has_external(&self) -> bool {
        self.node_port.is_some() || !self.load_balancer_ips.is_empty()
    }
}

/// The ports of `svc` with their endpoints from `slices` (the Service's
/// slices, any manager). `node` decides which endpoints are local.
/// Headless and ExternalName Services have no dataplane: empty.
pub fn service_ports(svc: &Service, slices: &[&EndpointSlice], node: &str) -> Vec<ServicePort> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let cluster_ip = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
    let Some(cluster_ip) = cluster_ip else {
        return Vec::new();
    };
    let namespace = svc.metadata.namespace.as_deref().unwrap_or_default();
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    let lb = spec.type_.as_deref() == Some("LoadBalancer");
    let mut load_balancer_ips: Vec<Ipv4Addr> = if lb {
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref()?.parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    load_balancer_ips.sort();
    load_balancer_ips.dedup();
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(10800)
    });
    let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port_name = p.name.clone().unwrap_or_default();
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let mut endpoints: Vec<Endpoint> = slices
                .iter()
                .filter(|s| s.address_type == "IPv4")
                .flat_map(|s| {
                    let port = s.ports.iter().flatten().find(|sp| {
                        sp.name.as_deref().unwrap_or_default() == port_name
                            && sp.protocol.as_deref().unwrap_or("TCP") == protocol
                    });
                    let port = port
                        .and_then(|sp| sp.port)
                        .and_then(|n| u16::try_from(n).ok());
                    s.endpoints.iter().filter_map(move |e| {
                        let c = e.conditions.clone().unwrap_or_default();
                        // Unset ready means ready (the API's documented default).
                        let ready = c.ready.unwrap_or(true);
                        Some(Endpoint {
                            ip: e.addresses.first()?.parse().ok()?,
                            port: port?,
                            ready,
                            serving: c.serving.unwrap_or(ready),
                            terminating: c.terminating.unwrap_or(false),
                            local: e.node_name.as_deref() == Some(node),
                        })
                    })
                })
                .collect();
            endpoints.sort();
            endpoints.dedup_by(|a, b| a.ip == b.ip && a.port == b.port);
            Some(ServicePort {
                key: format!("{namespace}/{name}:{port_name}"),
                protocol: protocol.to_lowercase(),
                cluster_ip: Some(cluster_ip),
                port: u16::try_from(p.port).ok()?,
                node_port: p
                    .node_port
                    .filter(|_| node_ports)
                    .and_then(|n| u16::try_from(n).ok()),
                load_balancer_ips: load_balancer_ips.clone(),
                external_local,
                internal_local,
                affinity_seconds,
                endpoints,
            })
        })
        .collect()
}

/// kube-proxy's `CategorizeEndpoints` for one set: the ready endpoints, or
/// if none is ready, the serving terminating ones (so connections drain
/// to pods still able to serve during a rollout).
pub fn usable(endpoints: &[Endpoint], local_only: bool) -> Vec<&Endpoint> {
    let pool: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| !local_only || e.local)
        .collect();
    let ready: Vec<&Endpoint> = pool.iter().copied().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    pool.into_iter()
        .filter(|e| e.serving && e.terminating)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_come_from_the_slice_port_of_the_same_name() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.10", "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP"}]},
        }))
        .expect("svc");
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-1"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.3"], "nodeName": "n1", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.2"], "nodeName": "n2", "conditions": {"ready": false, "serving": true, "terminating": true}}],
        }))
        .expect("slice");
        let ports = service_ports(&svc, &[&slice], "n1");
        assert_eq!(ports.len(), 2);
        let http = &ports[0];
        assert_eq!(http.key, "ns/web:http");
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.endpoints.len(), 2);
        assert_eq!(http.endpoints[1].ip.to_string(), "10.42.0.3");
        assert!(http.endpoints[1].local && !http.endpoints[0].local);
        assert_eq!(usable(&http.endpoints, false).len(), 1);
        assert!(ports[1].endpoints.is_empty(), "no udp port in the slice");
    }

    #[test]
    fn terminating_serving_endpoints_are_used_only_when_none_is_ready() {
        let ep = |ready, serving, terminating| Endpoint {
            ip: Ipv4Addr::new(10, 42, 0, 2),
            port: 80,
            ready,
            serving,
            terminating,
            local: true,
        };
        assert_eq!(
            usable(&[ep(false, true, true), ep(true, true, false)], false).len(),
            1
        );
        assert_eq!(usable(&[ep(false, true, true)], false).len(), 1);
        assert!(usable(&[ep(false, false, true), ep(false, false, false)], false).is_empty());
    }

    #[test]
    fn headless_and_external_name_services_have_no_ports() {
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "h", "namespace": "ns"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
        }))
        .expect("svc");
        assert!(service_ports(&headless, &[], "n1").is_empty());
    }
}
