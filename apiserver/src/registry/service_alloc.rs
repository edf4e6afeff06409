//! Cluster IP and node port allocation for Services. Each allocated IP or
//! port is a key in storage (`/registry/ranges/serviceips/<ip>`,
//! `/registry/ranges/servicenodeports/<port>`) created only if absent, so
//! concurrent creates can never get the same one and a restart forgets
//! nothing — the shape of Kubernetes' newer per-IP `IPAddress` allocator.

use std::net::Ipv4Addr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use rand::Rng;
use serde_json::{Value, json};

use super::FieldPath;
use super::hooks::WriteHooks;
use crate::error::ApiError;
use crate::registry::FieldError;
use crate::storage::{Storage, StorageError};

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";
/// Random probes before falling back to a scan of the allocated set.
const RANDOM_TRIES: usize = 32;

/// An IPv4 CIDR such as `10.43.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: u32,
    pub bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, bits) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let bits: u8 = bits.parse().ok().filter(|b| *b <= 30)?;
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        Some(Cidr {
            base: u32::from(ip) & mask,
            bits,
        })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.bits)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip).wrapping_sub(self.base) < self.size()
    }

    /// The address Kubernetes gives the `kubernetes` Service: the first.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.bits)
    }
}

pub struct ServiceAllocator {
    storage: Arc<dyn Storage>,
    range: Cidr,
    ports: (u16, u16),
}

/// Kubernetes' `calculateRangeOffset` (KEP-3070): the first
/// min(max(16, size/16), 256) addresses of a Service range are a static
/// band that random allocation uses last, so addresses that are asked for
/// by number (the cluster DNS's tenth) stay free.
fn static_band(size: u32) -> u32 {
    if size < 16 {
        0
    } else {
        (size / 16).clamp(16, 256)
    }
}

fn needs_node_ports(spec: &Value) -> bool {
    match spec["type"].as_str() {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec["allocateLoadBalancerNodePorts"] != json!(false),
        _ => false,
    }
}

fn needs_cluster_ip(spec: &Value) -> bool {
    spec["type"].as_str() != Some("ExternalName") && spec["clusterIP"].as_str() != Some("None")
}

fn invalid(field: FieldPath, value: impl std::fmt::Debug, detail: &str, obj: &Value) -> ApiError {
    let info = common::resources::find("", "v1", "services");
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    match info {
        Some(info) => ApiError::invalid(info, name, &[FieldError::invalid(&field, value, detail)]),
        None => ApiError::internal(detail.to_string()),
    }
}

impl ServiceAllocator {
    pub fn new(storage: Arc<dyn Storage>, range: Cidr, ports: (u16, u16)) -> ServiceAllocator {
        ServiceAllocator {
            storage,
            range,
            ports,
        }
    }

    /// Claims one key; false if someone holds it.
    async fn claim(&self, key: &str, owner: &str) -> Result<bool, ApiError> {
        match self
            .storage
            .create(key, Bytes::from(owner.to_string()))
            .await
        {
            Ok(_) => Ok(true),
            Err(StorageError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(ApiError::internal(format!("allocation failed: {e}"))),
        }
    }

    async fn free(&self, key: &str) {
        if let Err(e) = self.storage.delete(key, None).await
            && !matches!(e, StorageError::NotFound { .. })
        {
            tracing::warn!(key, error = %e, "cannot release allocation");
        }
    }

    /// Claims a free value: random probes, then a scan of what is taken.
    async fn claim_any(
        &self,
        prefix: &str,
        lo: u32,
        hi: u32,
        owner: &str,
        render: impl Fn(u32) -> String,
    ) -> Result<Option<u32>, ApiError> {
        for _ in 0..RANDOM_TRIES {
            let v = rand::rng().random_range(lo..=hi);
            if self.claim(&format!("{prefix}{}", render(v)), owner).await? {
                return Ok(Some(v));
            }
        }
        let taken = self
            .storage
            .list(prefix, None, 0, None)
            .await
            .map_err(|e| ApiError::internal(format!("allocation failed: {e}")))?;
        let taken: std::collections::HashSet<String> =
            taken.kvs.into_iter().map(|kv| kv.key).collect();
        for v in lo..=hi {
            let key = format!("{prefix}{}", render(v));
            if !taken.contains(&key) && self.claim(&key, owner).await? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    async fn allocate_ip(&self, obj: &mut Value, owner: &str) -> Result<(), ApiError> {
        let spec = &obj["spec"];
        if !needs_cluster_ip(spec) {
            return Ok(());
        }
        let requested = spec["clusterIP"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let path = FieldPath::new("spec.clusterIPs");
        let ip = match requested {
            Some(ip) => {
                let parsed: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| invalid(path, [&ip], "must be a valid IP address", obj))?;
                if !self.range.contains(parsed) {
                    return Err(invalid(
                        path,
                        [&ip],
                        &format!(
                            "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                            self.range
                        ),
                        obj,
                    ));
                }
                if !self.claim(&format!("{IP_PREFIX}{ip}"), owner).await? {
                    return Err(invalid(
                        path,
                        [&ip],
                        &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                        obj,
                    ));
                }
                ip
            }
            None => {
                // The network address and the first IP (the `kubernetes`
                // Service's) are never handed out at random, and the
                // static band only once the rest is taken.
                let (first, band, hi) = (
                    self.range.base + 2,
                    static_band(self.range.size()),
                    self.range.base + self.range.size() - 2,
                );
                let split = (self.range.base + 1 + band).max(first);
                let render = |v: u32| Ipv4Addr::from(v).to_string();
                let mut got = self.claim_any(IP_PREFIX, split, hi, owner, render).await?;
                if got.is_none() && split > first {
                    got = self
                        .claim_any(IP_PREFIX, first, split - 1, owner, render)
                        .await?;
                }
                match got {
                    Some(v) => Ipv4Addr::from(v).to_string(),
                    None => {
                        return Err(invalid(
                            path,
                            Vec::<String>::new(),
                            "failed to allocate a serviceIP: range is full",
                            obj,
                        ));
                    }
                }
            }
        };
        obj["spec"]["clusterIP"] = json!(ip);
        obj["spec"]["clusterIPs"] = json!([ip]);
        Ok(())
    }

    /// Allocates node ports for ports without one; `keep` are ports the
    /// object already held (on update), which need no claim.
    async fn allocate_ports(
        &self,
        obj: &mut Value,
        owner: &str,
        keep: &[u64],
    ) -> Result<(), ApiError> {
        if !needs_node_ports(&obj["spec"]) {
            return Ok(());
        }
        let count = obj["spec"]["ports"].as_array().map_or(0, Vec::len);
        for i in 0..count {
            let requested = obj["spec"]["ports"][i]["nodePort"]
                .as_u64()
                .filter(|p| *p != 0);
            let spec = FieldPath::new("spec");
            let port_path = spec.item("ports", i);
            let path = port_path.child("nodePort");
            let port = match requested {
                Some(p) if keep.contains(&p) => p,
                Some(p) => {
                    if p < u64::from(self.ports.0) || p > u64::from(self.ports.1) {
                        return Err(invalid(
                            path,
                            p,
                            &format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                self.ports.0, self.ports.1
                            ),
                            obj,
                        ));
                    }
                    if !self.claim(&format!("{PORT_PREFIX}{p}"), owner).await? {
                        return Err(invalid(path, p, "provided port is already allocated", obj));
                    }
                    p
                }
                None => {
                    let got = self
                        .claim_any(
                            PORT_PREFIX,
                            u32::from(self.ports.0),
                            u32::from(self.ports.1),
                            owner,
                            |v| v.to_string(),
                        )
                        .await?;
                    match got {
                        Some(v) => u64::from(v),
                        None => {
                            return Err(invalid(
                                path,
                                0,
                                "failed to allocate a nodePort: range is full",
                                obj,
                            ));
                        }
                    }
                }
            };
            obj["spec"]["ports"][i]["nodePort"] = json!(port);
        }
        Ok(())
    }

    fn node_ports(obj: &Value) -> Vec<u64> {
        obj["spec"]["ports"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p["nodePort"].as_u64())
                    .filter(|p| *p != 0)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn cluster_ip(obj: &Value) -> Option<String> {
        obj["spec"]["clusterIP"]
            .as_str()
            .filter(|ip| !ip.is_empty() && *ip != "None")
            .map(str::to_string)
    }
}

fn owner_of(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default()
    )
}

#[async_trait]
impl WriteHooks for ServiceAllocator {
    async fn before_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        let owner = owner_of(obj);
        self.allocate_ip(obj, &owner).await?;
        if let Err(e) = self.allocate_ports(obj, &owner, &[]).await {
            self.release(obj).await;
            return Err(e);
        }
        Ok(())
    }

    async fn before_update(&self, old: &Value, new: &mut Value) -> Result<(), ApiError> {
        // A PUT without the allocated values keeps them, as Kubernetes'
        // `patchAllocatedValues` does.
        if needs_cluster_ip(&new["spec"])
            && new["spec"]["clusterIP"].as_str().is_none_or(str::is_empty)
        {
            new["spec"]["clusterIP"] = old["spec"]["clusterIP"].clone();
            new["spec"]["clusterIPs"] = old["spec"]["clusterIPs"].clone();
        }
        if needs_node_ports(&new["spec"])
            && let (Some(new_ports), Some(old_ports)) = (
                new["spec"]["ports"].as_array_mut(),
                old["spec"]["ports"].as_array(),
            )
        {
            for p in new_ports.iter_mut() {
                if p["nodePort"].as_u64().unwrap_or(0) != 0 {
                    continue;
                }
                if let Some(o) = old_ports
                    .iter()
                    .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"])
                {
                    p["nodePort"] = o["nodePort"].clone();
                }
            }
        }
        let owner = owner_of(new);
        if Self::cluster_ip(new).is_some() && Self::cluster_ip(old).is_none() {
            self.allocate_ip(new, &owner).await?;
        }
        self.allocate_ports(new, &owner, &Self::node_ports(old))
            .await
    }

    async fn after_update(&self, old: &Value, new: Option<&Value>, attempted: &Value) {
        // On success free what only the old object held; on failure free
        // what only the attempt held.
        let (held, kept) = match new {
            Some(new) => (old, new),
            None => (attempted, old),
        };
        let kept_ports = Self::node_ports(kept);
        for p in Self::node_ports(held) {
            if !kept_ports.contains(&p) {
                self.free(&format!("{PORT_PREFIX}{p}")).await;
            }
        }
        if let Some(ip) = Self::cluster_ip(held)
            && Self::cluster_ip(kept).as_deref() != Some(ip.as_str())
        {
            self.free(&format!("{IP_PREFIX}{ip}")).await;
        }
    }

    async fn release(&self, obj: &Value) {
        if let Some(ip) = Self::cluster_ip(obj) {
            self.free(&format!("{IP_PREFIX}{ip}")).await;
        }
        for p in Self::node_ports(obj) {
            self.free(&format!("{PORT_PREFIX}{p}")).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::EmbeddedStore;

    fn allocator(dir: &std::path::Path, cidr: &str) -> ServiceAllocator {
        let storage: Arc<dyn Storage> = Arc::new(EmbeddedStore::open(dir).expect("open"));
        ServiceAllocator::new(storage, Cidr::parse(cidr).expect("cidr"), (30000, 30002))
    }

    fn svc(name: &str, ty: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"},
               "spec": {"type": ty, "ports": [{"port": 80, "protocol": "TCP"}]}})
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let c = Cidr::parse("10.43.0.0/16").expect("cidr");
        assert_eq!(c.to_string(), "10.43.0.0/16");
        assert_eq!(c.first(), Ipv4Addr::new(10, 43, 0, 1));
        assert!(c.contains(Ipv4Addr::new(10, 43, 255, 254)));
        assert!(!c.contains(Ipv4Addr::new(10, 44, 0, 1)));
        assert!(Cidr::parse("10.43.0.0").is_none());
    }

    #[test]
    fn the_static_band_is_a_sixteenth_between_16_and_256_addresses() {
        assert_eq!(static_band(8), 0);
        assert_eq!(static_band(64), 16);
        assert_eq!(static_band(1024), 64);
        assert_eq!(static_band(65536), 256);
    }

    #[tokio::test]
    async fn random_ips_come_from_above_the_static_band_until_it_is_all_that_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A /26: .2–.16 is the static band, .17–.62 the dynamic part.
        let a = allocator(dir.path(), "10.0.0.0/26");
        let last_octet = |s: &Value| -> u8 {
            let ip: Ipv4Addr = s["spec"]["clusterIP"]
                .as_str()
                .expect("ip")
                .parse()
                .expect("an IP");
            ip.octets()[3]
        };
        for i in 0..46 {
            let mut s = svc(&format!("s{i}"), "ClusterIP");
            a.before_create(&mut s).await.expect("allocate");
            assert!((17..=62).contains(&last_octet(&s)), "{s}");
        }
        let mut s = svc("low", "ClusterIP");
        a.before_create(&mut s)
            .await
            .expect("the static band is used last");
        assert!((2..=16).contains(&last_octet(&s)), "{s}");
    }

    #[tokio::test]
    async fn every_service_gets_a_distinct_ip_until_the_range_is_full() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A /29 has 8 addresses: network, .1 reserved, broadcast-1 limit → 5 usable.
        let a = allocator(dir.path(), "10.0.0.0/29");
        let mut seen = std::collections::HashSet::new();
        for i in 0..5 {
            let mut s = svc(&format!("s{i}"), "ClusterIP");
            a.before_create(&mut s).await.expect("allocate");
            assert!(seen.insert(s["spec"]["clusterIP"].as_str().expect("ip").to_string()));
        }
        let mut s = svc("full", "ClusterIP");
        let e = a.before_create(&mut s).await.expect_err("full");
        assert_eq!(e.code, 422);
    }

    #[tokio::test]
    async fn a_taken_ip_or_port_is_refused_with_kubernetes_message_and_freed_on_release() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = allocator(dir.path(), "10.43.0.0/16");
        let mut first = svc("a", "NodePort");
        first["spec"]["clusterIP"] = json!("10.43.0.10");
        first["spec"]["ports"][0]["nodePort"] = json!(30001);
        a.before_create(&mut first).await.expect("allocate");
        let mut second = first.clone();
        second["metadata"]["name"] = json!("b");
        let e = a.before_create(&mut second).await.expect_err("taken ip");
        assert!(
            e.message.contains("provided IP is already allocated"),
            "{}",
            e.message
        );
        second["spec"]["clusterIP"] = json!("");
        let e = a.before_create(&mut second).await.expect_err("taken port");
        assert!(
            e.message.contains(
                "spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated"
            ),
            "{}",
            e.message
        );
        a.release(&first).await;
        let mut third = first.clone();
        a.before_create(&mut third).await.expect("freed");
    }

    #[tokio::test]
    async fn an_update_keeps_allocated_values_a_put_leaves_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = allocator(dir.path(), "10.43.0.0/16");
        let mut old = svc("a", "NodePort");
        a.before_create(&mut old).await.expect("allocate");
        let mut new = svc("a", "NodePort");
        a.before_update(&old, &mut new).await.expect("update");
        assert_eq!(new["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        assert_eq!(
            new["spec"]["ports"][0]["nodePort"],
            old["spec"]["ports"][0]["nodePort"]
        );
    }
}
