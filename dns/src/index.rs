//! The cluster's DNS data, indexed for lookups: built from the Services and
//! EndpointSlices the watch caches hold, swapped in whole on each change so a
//! query never sees half an update.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One port of a Service (or of an endpoint, for headless SRV records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    /// Lower case, as it appears in SRV names (`_tcp`).
    pub protocol: String,
    pub port: u16,
}

/// One endpoint address of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// `spec.hostname` of a StatefulSet pod (or any pod with a subdomain).
    pub hostname: Option<String>,
    pub ready: bool,
    /// The ports of the slice this endpoint came from (target ports).
    pub ports: Vec<Port>,
}

/// What a Service name resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The ClusterIPs (IPv4 and/or IPv6).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the endpoints themselves.
    Headless,
    /// `type: ExternalName`: a CNAME.
    ExternalName(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    pub target: Target,
    pub ports: Vec<Port>,
    /// `publishNotReadyAddresses`: not-ready endpoints are published too.
    pub publish_not_ready: bool,
    pub endpoints: Vec<Endpoint>,
}

impl ServiceEntry {
    /// The endpoints DNS publishes: the ready ones, or all of them when the
    /// Service asks for not-ready addresses (StatefulSet peer discovery).
    pub fn published(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| e.ready || self.publish_not_ready)
    }
}

/// Every Service by namespace and name, plus the reverse map for PTR.
#[derive(Clone, Debug, Default)]
pub struct Index {
    pub services: HashMap<(String, String), ServiceEntry>,
    /// Namespaces that hold at least one Service (`<ns>.svc.<zone>` exists).
    pub namespaces: BTreeSet<String>,
    /// IP → names relative to the zone (`web.default.svc`), for PTR.
    pub reverse: HashMap<IpAddr, Vec<String>>,
}

fn ports_of(svc: &Service) -> Vec<Port> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect()
}

fn target_of(svc: &Service) -> Option<Target> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return spec
            .external_name
            .as_ref()
            .map(|n| Target::ExternalName(n.trim_end_matches('.').to_ascii_lowercase()));
    }
    let ips: Vec<String> = match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ips.clone(),
        (_, Some(ip)) => vec![ip.clone()],
        _ => Vec::new(),
    };
    if ips.iter().any(|ip| ip == "None") {
        return Some(Target::Headless);
    }
    let parsed: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
    // A Service the allocator has not given an address yet has no records.
    (!parsed.is_empty()).then_some(Target::ClusterIp(parsed))
}

fn endpoints_of(slice: &EndpointSlice) -> Vec<Endpoint> {
    if slice.address_type == "FQDN" {
        return Vec::new();
    }
    let ports: Vec<Port> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect();
    slice
        .endpoints
        .iter()
        .flat_map(|ep| {
            // Kubernetes: a nil `ready` means ready.
            let ready = ep
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            let hostname = ep.hostname.clone().filter(|h| !h.is_empty());
            let ports = ports.clone();
            ep.addresses.iter().filter_map(move |a| {
                Some(Endpoint {
                    ip: a.parse().ok()?,
                    hostname: hostname.clone(),
                    ready,
                    ports: ports.clone(),
                })
            })
        })
        .collect()
}

impl Index {
    /// Builds the index from the cached objects.
    pub fn build<'a>(
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Index {
        let mut index = Index::default();
        for svc in services {
            let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) else {
                continue;
            };
            let Some(target) = target_of(svc) else {
                continue;
            };
            let entry = ServiceEntry {
                target,
                ports: ports_of(svc),
                publish_not_ready: svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.publish_not_ready_addresses)
                    .unwrap_or(false),
                endpoints: Vec::new(),
            };
            index.namespaces.insert(ns.clone());
            index
                .services
                .insert((ns.clone(), name.clone()), entry);
        }
        for slice in slices {
            let Some(ns) = &slice.metadata.namespace else {
                continue;
            };
            let Some(svc) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            if let Some(entry) = index.services.get_mut(&(ns.clone(), svc.clone())) {
                entry.endpoints.extend(endpoints_of(slice));
            }
        }
        for ((ns, name), entry) in &mut index.services {
            // Several slices may list one address (dual-stack or a move
            // between slices): answer it once, ready if any copy is.
            entry.endpoints.sort_by(|a, b| (a.ip, !a.ready).cmp(&(b.ip, !b.ready)));
            entry.endpoints.dedup_by(|a, b| a.ip == b.ip);
            let svc_name = format!("{name}.{ns}.svc");
            match &entry.target {
                Target::ClusterIp(ips) => {
                    for ip in ips {
                        index.reverse.entry(*ip).or_default().push(svc_name.clone());
                    }
                }
                Target::Headless => {
                    for ep in entry.published() {
                        if let Some(h) = &ep.hostname {
                            index
                                .reverse
                                .entry(ep.ip)
                                .or_default()
                                .push(format!("{h}.{svc_name}"));
                        }
                    }
                }
                Target::ExternalName(_) => {}
            }
        }
        for names in index.reverse.values_mut() {
            names.sort();
            names.dedup();
        }
        index
    }
}
