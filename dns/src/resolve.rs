//! Name → records: the cluster DNS schema of Kubernetes' DNS specification
//! (`cluster/addons/dns/...`, CoreDNS's `kubernetes` plugin), as a pure
//! function of the [`Index`] so it is tested without a server.
//!
//! - `<svc>.<ns>.svc.<zone>`: A/AAAA to the ClusterIPs, to the published
//!   endpoint IPs for headless Services, CNAME for ExternalName Services;
//! - `<hostname>.<svc>.<ns>.svc.<zone>` (and `<a-b-c-d>.<svc>...`) for the
//!   endpoints of headless Services;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV for named ports;
//! - `<a-b-c-d>.<ns>.pod.<zone>` A (CoreDNS `pods insecure`);
//! - PTR for ClusterIPs and headless endpoints with a hostname;
//! - NXDOMAIN for other names in the zone; names outside it are forwarded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::index::{Endpoint, Index, ServiceEntry, Target};

/// What the server answers.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// NOERROR with these answers (and additional records for SRV targets).
    Answer {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// NOERROR, no records: the name exists, not with this type.
    NoData,
    /// The name does not exist in the cluster zone.
    NxDomain,
    /// Not a cluster name: ask the upstream resolvers.
    Forward,
}

/// The zone and TTL the records are served with.
#[derive(Clone, Debug)]
pub struct Zone {
    /// `cluster.local`, lower case, no trailing dot.
    pub domain: String,
    pub ttl: u32,
}

impl Zone {
    pub fn new(domain: &str, ttl: u32) -> Zone {
        Zone {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            ttl,
        }
    }

    fn fqdn(&self, relative: &str) -> Option<Name> {
        Name::from_str(&format!("{relative}.{}.", self.domain)).ok()
    }

    /// The SOA sent with negative answers so resolvers cache them for the
    /// TTL only (CoreDNS's `ns.dns.<zone>` / `hostmaster.<zone>`).
    pub fn soa(&self) -> Option<Record> {
        let apex = Name::from_str(&format!("{}.", self.domain)).ok()?;
        let mname = self.fqdn("ns.dns")?;
        let rname = self.fqdn("hostmaster")?;
        let soa = SOA::new(mname, rname, 1, 7200, 1800, 86400, self.ttl);
        Some(Record::from_rdata(apex, self.ttl, RData::SOA(soa)))
    }
}

fn record(name: &Name, ttl: u32, rdata: RData) -> Record {
    Record::from_rdata(name.clone(), ttl, rdata)
}

fn address(name: &Name, ttl: u32, ip: IpAddr, qtype: RecordType) -> Option<Record> {
    match (ip, qtype) {
        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => {
            Some(record(name, ttl, RData::A(A(v4))))
        }
        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
            Some(record(name, ttl, RData::AAAA(AAAA(v6))))
        }
        _ => None,
    }
}

/// `10-1-2-3` → 10.1.2.3, `fd00--1` → fd00::1 (CoreDNS's dashed form).
fn dashed_ip(label: &str) -> Option<IpAddr> {
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label.replace('-', ":").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// An endpoint's own name below its Service: its hostname, else its IP.
fn endpoint_label(ep: &Endpoint) -> String {
    ep.hostname.clone().unwrap_or_else(|| dashed(ep.ip))
}

fn answer(answers: Vec<Record>, additionals: Vec<Record>) -> Outcome {
    if answers.is_empty() {
        Outcome::NoData
    } else {
        Outcome::Answer {
            answers,
            additionals,
        }
    }
}

/// Resolves `qname` (any case, with or without the trailing dot).
pub fn resolve(index: &Index, zone: &Zone, qname: &str, qtype: RecordType) -> Outcome {
    let lower = qname.trim_end_matches('.').to_ascii_lowercase();
    let Ok(name) = Name::from_str(&format!("{lower}.")) else {
        return Outcome::NxDomain;
    };
    if lower.ends_with(".in-addr.arpa") || lower.ends_with(".ip6.arpa") {
        return reverse(index, zone, &name, qtype);
    }
    let relative = if lower == zone.domain {
        ""
    } else if let Some(r) = lower.strip_suffix(&format!(".{}", zone.domain)) {
        r
    } else {
        return Outcome::Forward;
    };
    let labels: Vec<&str> = if relative.is_empty() {
        Vec::new()
    } else {
        relative.split('.').collect()
    };
    let ttl = zone.ttl;
    match labels.as_slice() {
        [] => match (qtype, zone.soa()) {
            (RecordType::SOA, Some(soa)) => answer(vec![soa], Vec::new()),
            _ => Outcome::NoData,
        },
        ["svc"] | ["pod"] => Outcome::NoData,
        [ns, "svc"] | [ns, "pod"] => {
            if index.namespaces.contains(*ns) {
                Outcome::NoData
            } else {
                Outcome::NxDomain
            }
        }
        [ip, _ns, "pod"] => match dashed_ip(ip) {
            Some(ip) => answer(address(&name, ttl, ip, qtype).into_iter().collect(), Vec::new()),
            None => Outcome::NxDomain,
        },
        [svc, ns, "svc"] => match lookup(index, ns, svc) {
            Some(entry) => service(entry, zone, &name, ns, svc, qtype),
            None => Outcome::NxDomain,
        },
        [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            match lookup(index, ns, svc) {
                Some(entry) => srv(entry, zone, &name, ns, svc, Some((&port[1..], &proto[1..])), qtype),
                None => Outcome::NxDomain,
            }
        }
        [host, svc, ns, "svc"] => {
            let Some(entry) = lookup(index, ns, svc) else {
                return Outcome::NxDomain;
            };
            if entry.target != Target::Headless {
                return Outcome::NxDomain;
            }
            let found: Vec<&Endpoint> = entry
                .published()
                .filter(|ep| endpoint_label(ep) == *host)
                .collect();
            if found.is_empty() {
                return Outcome::NxDomain;
            }
            answer(
                found
                    .iter()
                    .filter_map(|ep| address(&name, ttl, ep.ip, qtype))
                    .collect(),
                Vec::new(),
            )
        }
        _ => Outcome::NxDomain,
    }
}

fn lookup<'a>(index: &'a Index, ns: &str, svc: &str) -> Option<&'a ServiceEntry> {
    index.services.get(&(ns.to_string(), svc.to_string()))
}

fn service(
    entry: &ServiceEntry,
    zone: &Zone,
    name: &Name,
    ns: &str,
    svc: &str,
    qtype: RecordType,
) -> Outcome {
    let ttl = zone.ttl;
    if qtype == RecordType::SRV {
        return srv(entry, zone, name, ns, svc, None, qtype);
    }
    match &entry.target {
        Target::ExternalName(target) => match Name::from_str(&format!("{target}.")) {
            Ok(t) => answer(vec![record(name, ttl, RData::CNAME(CNAME(t)))], Vec::new()),
            Err(_) => Outcome::NoData,
        },
        Target::ClusterIp(ips) => answer(
            ips.iter()
                .filter_map(|ip| address(name, ttl, *ip, qtype))
                .collect(),
            Vec::new(),
        ),
        Target::Headless => answer(
            entry
                .published()
                .filter_map(|ep| address(name, ttl, ep.ip, qtype))
                .collect(),
            Vec::new(),
        ),
    }
}

/// SRV records of a Service: for one named port (`_http._tcp.<svc>`) or,
/// queried on the Service name itself, for all its named ports.
fn srv(
    entry: &ServiceEntry,
    zone: &Zone,
    name: &Name,
    ns: &str,
    svc: &str,
    port: Option<(&str, &str)>,
    qtype: RecordType,
) -> Outcome {
    let ttl = zone.ttl;
    let wanted = |p: &crate::index::Port| {
        !p.name.is_empty()
            && port.is_none_or(|(n, proto)| p.name == n && p.protocol == proto)
    };
    // `_http._tcp.<svc>` names exist only for the Service's named ports.
    if !entry.ports.iter().any(wanted) {
        return if port.is_some() {
            Outcome::NxDomain
        } else {
            Outcome::NoData
        };
    }
    if qtype != RecordType::SRV && qtype != RecordType::ANY {
        return Outcome::NoData;
    }
    let svc_rel = format!("{svc}.{ns}.svc");
    let mut targets: Vec<(u16, Name, Option<IpAddr>)> = Vec::new();
    match &entry.target {
        Target::ClusterIp(_) | Target::ExternalName(_) => {
            let target = match &entry.target {
                Target::ExternalName(ext) => Name::from_str(&format!("{ext}.")).ok(),
                _ => zone.fqdn(&svc_rel),
            };
            let Some(target) = target else {
                return Outcome::NoData;
            };
            for p in entry.ports.iter().filter(|p| wanted(p)) {
                targets.push((p.port, target.clone(), None));
            }
        }
        Target::Headless => {
            for ep in entry.published() {
                let Some(target) = zone.fqdn(&format!("{}.{svc_rel}", endpoint_label(ep))) else {
                    continue;
                };
                for p in ep.ports.iter().filter(|p| wanted(p)) {
                    targets.push((p.port, target.clone(), Some(ep.ip)));
                }
            }
        }
    }
    let weight = u16::try_from(100 / targets.len().max(1)).unwrap_or(100);
    let answers = targets
        .iter()
        .map(|(port, target, _)| {
            record(name, ttl, RData::SRV(SRV::new(0, weight, *port, target.clone())))
        })
        .collect();
    let mut additionals: Vec<Record> = Vec::new();
    for (_, target, ip) in &targets {
        let ips: Vec<IpAddr> = match (&entry.target, ip) {
            (_, Some(ip)) => vec![*ip],
            (Target::ClusterIp(ips), None) => ips.clone(),
            _ => Vec::new(),
        };
        for ip in ips {
            let qt = if ip.is_ipv4() { RecordType::A } else { RecordType::AAAA };
            if let Some(r) = address(target, ttl, ip, qt)
                && !additionals.contains(&r)
            {
                additionals.push(r);
            }
        }
    }
    answer(answers, additionals)
}

/// `4.3.2.1.in-addr.arpa` → 1.2.3.4; nibble form for IPv6.
fn reverse_ip(name: &Name) -> Option<IpAddr> {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let (rest, tail) = labels.split_at(labels.len().checked_sub(2)?);
    match tail {
        [a, b] if a == "in-addr" && b == "arpa" && rest.len() == 4 => {
            let octets: Vec<u8> = rest.iter().rev().map(|o| o.parse().ok()).collect::<Option<_>>()?;
            Some(IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3])))
        }
        [a, b] if a == "ip6" && b == "arpa" && rest.len() == 32 => {
            let hex: String = rest.iter().rev().map(String::as_str).collect();
            let value = u128::from_str_radix(&hex, 16).ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}

fn reverse(index: &Index, zone: &Zone, name: &Name, qtype: RecordType) -> Outcome {
    let Some(names) = reverse_ip(name).and_then(|ip| index.reverse.get(&ip)) else {
        // Not a cluster address: the host's resolvers may know it (CoreDNS's
        // `fallthrough in-addr.arpa ip6.arpa`).
        return Outcome::Forward;
    };
    if qtype != RecordType::PTR && qtype != RecordType::ANY {
        return Outcome::NoData;
    }
    answer(
        names
            .iter()
            .filter_map(|n| zone.fqdn(n))
            .map(|target| record(name, zone.ttl, RData::PTR(PTR(target))))
            .collect(),
        Vec::new(),
    )
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
