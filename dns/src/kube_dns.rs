//! The `kube-dns` Service in kube-system: the ClusterIP pods are told to
//! use (k3s's 10.43.0.10: the tenth address of the service range). The
//! server is a host process, not a pod, so like the `kubernetes` Service it
//! has no selector and its Endpoints and EndpointSlice are written here,
//! pointing at the node address and the port the server listens on.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

pub const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "kube-dns";
const MANAGER: &str = "ferrokube-dns";

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("cannot apply {kind} kube-system/kube-dns: {source}")]
    Apply {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// The cluster DNS address of a service range: its tenth address
/// (10.43.0.0/16 → 10.43.0.10), as k3s and kubeadm pick it.
pub fn cluster_dns_ip(network: std::net::Ipv4Addr) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(network).wrapping_add(10))
}

/// Applies the Service (and, when `node_ip` can be an endpoint, its
/// Endpoints and EndpointSlice) with server-side apply, so a restart with
/// another port updates them in place.
pub async fn register(
    client: &Client,
    cluster_ip: IpAddr,
    node_ip: IpAddr,
    port: u16,
) -> Result<(), RegisterError> {
    let params = PatchParams::apply(MANAGER).force();
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                "kubernetes.io/name": "ferrokube-dns"}},
        "spec": {"clusterIP": cluster_ip.to_string(), "type": "ClusterIP",
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port}]},
    });
    Api::<Service>::namespaced(client.clone(), NAMESPACE)
        .patch(NAME, &params, &Patch::Apply(&svc))
        .await
        .map_err(|source| RegisterError::Apply {
            kind: "Service",
            source,
        })?;
    // Kubernetes refuses loopback and unspecified endpoint addresses: a
    // server reachable only there has no address pods could use.
    if node_ip.is_loopback() || node_ip.is_unspecified() {
        tracing::warn!(%node_ip, "no usable node address: kube-dns gets no endpoints");
        return Ok(());
    }
    let ports = json!([{"name": "dns", "port": port, "protocol": "UDP"},
                       {"name": "dns-tcp", "port": port, "protocol": "TCP"}]);
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"k8s-app": "kube-dns",
                                "endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": node_ip.to_string()}], "ports": ports}],
    });
    Api::<Endpoints>::namespaced(client.clone(), NAMESPACE)
        .patch(NAME, &params, &Patch::Apply(&endpoints))
        .await
        .map_err(|source| RegisterError::Apply {
            kind: "Endpoints",
            source,
        })?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"k8s-app": "kube-dns",
                                "kubernetes.io/service-name": NAME,
                                // Not the EndpointSlice controller's to manage.
                                "endpointslice.kubernetes.io/managed-by": MANAGER}},
        "addressType": if node_ip.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [node_ip.to_string()],
                       "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": ports,
    });
    Api::<EndpointSlice>::namespaced(client.clone(), NAMESPACE)
        .patch(NAME, &params, &Patch::Apply(&slice))
        .await
        .map_err(|source| RegisterError::Apply {
            kind: "EndpointSlice",
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_dns_address_is_the_tenth_of_the_service_range() {
        assert_eq!(
            cluster_dns_ip("10.43.0.0".parse().expect("ip")).to_string(),
            "10.43.0.10"
        );
        assert_eq!(
            cluster_dns_ip("10.96.0.0".parse().expect("ip")).to_string(),
            "10.96.0.10"
        );
    }
}
