//! Endpoints (`pkg/registry/core/endpoint`) and EndpointSlice
//! (`pkg/registry/discovery/endpointslice`) strategies.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::container_validation::{PORT_PROTOCOLS, validate_protocol};
use super::validation::{
    invalid_all, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_ip,
    is_valid_port_num, validate_dns1123_label,
};
use crate::registry::{FieldError, FieldPath, Strategy};

pub struct EndpointsStrategy;
pub struct EndpointSliceStrategy;

/// `ValidateNonSpecialIP`: endpoints may not point at these ranges.
fn validate_non_special_ip(ip: &str, path: &FieldPath) -> Vec<FieldError> {
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return Vec::new();
    };
    let msg = match addr {
        a if a.is_unspecified() => "may not be unspecified (0.0.0.0)",
        a if a.is_loopback() => "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        IpAddr::V4(v4) if v4.is_link_local() => {
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
        }
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => {
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
        }
        IpAddr::V4(v4) if v4.octets()[..3] == [224, 0, 0] => {
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
        }
        IpAddr::V6(v6) if (v6.segments()[0] & 0xff0f) == 0xff02 => {
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
        }
        _ => return Vec::new(),
    };
    vec![FieldError::invalid(path, ip, msg)]
}

fn validate_address(a: &EndpointAddress, path: &FieldPath) -> Vec<FieldError> {
    let ip_path = path.child("ip");
    let mut errs = invalid_all(&ip_path, &a.ip, is_valid_ip(&a.ip));
    if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
        errs.extend(validate_dns1123_label(h, &path.child("hostname")));
    }
    if let Some(n) = a.node_name.as_deref() {
        errs.extend(invalid_all(
            &path.child("nodeName"),
            n,
            is_dns1123_subdomain(n),
        ));
    }
    errs.extend(validate_non_special_ip(&a.ip, &ip_path));
    errs
}

fn validate_endpoints(ep: &Endpoints) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let path = FieldPath::new("subsets");
    for (i, ss) in ep.subsets.iter().flatten().enumerate() {
        let sp = path.index(i);
        let addresses = ss.addresses.as_deref().unwrap_or(&[]);
        let not_ready = ss.not_ready_addresses.as_deref().unwrap_or(&[]);
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                &sp,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (j, a) in addresses.iter().enumerate() {
            errs.extend(validate_address(a, &sp.child("addresses").index(j)));
        }
        for (j, a) in not_ready.iter().enumerate() {
            errs.extend(validate_address(a, &sp.child("notReadyAddresses").index(j)));
        }
        let ports = ss.ports.as_deref().unwrap_or(&[]);
        for (j, p) in ports.iter().enumerate() {
            let pp = sp.item("ports", j);
            let name = p.name.as_deref().unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                errs.push(FieldError::required(&pp.child("name"), ""));
            } else if !name.is_empty() {
                errs.extend(validate_dns1123_label(name, &pp.child("name")));
            }
            for msg in is_valid_port_num(p.port) {
                errs.push(FieldError::invalid(&pp.child("port"), p.port, &msg));
            }
            errs.extend(validate_protocol(
                p.protocol.as_deref(),
                &pp.child("protocol"),
            ));
            if let Some(ap) = p.app_protocol.as_deref() {
                errs.extend(invalid_all(
                    &pp.child("appProtocol"),
                    ap,
                    is_qualified_name(ap),
                ));
            }
        }
    }
    errs
}

impl Strategy for EndpointsStrategy {
    type Object = Endpoints;

    fn default(&self, ep: &mut Endpoints) {
        for ss in ep.subsets.iter_mut().flatten() {
            for p in ss.ports.iter_mut().flatten() {
                if p.protocol.as_deref().unwrap_or("").is_empty() {
                    p.protocol = Some("TCP".to_string());
                }
            }
        }
    }

    fn validate(&self, ep: &Endpoints) -> Vec<FieldError> {
        validate_endpoints(ep)
    }
}

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];

/// `IsFullyQualifiedDomainName`.
fn validate_fqdn(name: &str, path: &FieldPath) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let errs = is_dns1123_subdomain(name);
    if !errs.is_empty() {
        return vec![FieldError::invalid(path, name, &errs.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![FieldError::invalid(
            path,
            name,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    for label in name.split('.') {
        let errs = is_dns1123_label(label);
        if !errs.is_empty() {
            return vec![FieldError::invalid(path, label, &errs.join(","))];
        }
    }
    Vec::new()
}

fn validate_slice(s: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let at_path = FieldPath::new("addressType");
    match s.address_type.as_str() {
        "" => errs.push(FieldError::required(&at_path, "")),
        t if !ADDRESS_TYPES.contains(&t) => {
            errs.push(FieldError::not_supported(&at_path, t, ADDRESS_TYPES))
        }
        _ => {}
    }
    let ep_path = FieldPath::new("endpoints");
    for (i, ep) in s.endpoints.iter().enumerate() {
        let ip = ep_path.index(i);
        let ap = ip.child("addresses");
        if ep.addresses.is_empty() {
            errs.push(FieldError::required(&ap, "must contain at least 1 address"));
        }
        for (j, address) in ep.addresses.iter().enumerate() {
            let p = ap.index(j);
            match s.address_type.as_str() {
                "IPv4" | "IPv6" => {
                    let ip_errs = invalid_all(&p, address, is_valid_ip(address));
                    if !ip_errs.is_empty() {
                        errs.extend(ip_errs);
                        continue;
                    }
                    errs.extend(validate_non_special_ip(address, &p));
                    let v4 = address.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4());
                    if s.address_type == "IPv4" && !v4 {
                        errs.push(FieldError::invalid(&p, address, "must be an IPv4 address"));
                    } else if s.address_type == "IPv6" && v4 {
                        errs.push(FieldError::invalid(&p, address, "must be an IPv6 address"));
                    }
                }
                "FQDN" => errs.extend(validate_fqdn(address, &p)),
                _ => {}
            }
        }
        if let Some(n) = ep.node_name.as_deref() {
            errs.extend(invalid_all(
                &ip.child("nodeName"),
                n,
                is_dns1123_subdomain(n),
            ));
        }
        if let Some(h) = ep.hostname.as_deref() {
            errs.extend(validate_dns1123_label(h, &ip.child("hostname")));
        }
    }
    let mut names = BTreeSet::new();
    for (i, p) in s.ports.iter().flatten().enumerate() {
        let ports = FieldPath::new("ports");
        let pp = ports.index(i);
        let name = p.name.clone().unwrap_or_default();
        if !name.is_empty() {
            errs.extend(validate_dns1123_label(&name, &pp.child("name")));
        }
        if !names.insert(name.clone()) {
            errs.push(FieldError::duplicate(&pp.child("name"), &name));
        }
        match p.protocol.as_deref() {
            None => errs.push(FieldError::required(&pp.child("protocol"), "")),
            Some(proto) => {
                if !PORT_PROTOCOLS.contains(&proto) {
                    errs.push(FieldError::not_supported(
                        &pp.child("protocol"),
                        proto,
                        PORT_PROTOCOLS,
                    ));
                }
            }
        }
        if let Some(ap) = p.app_protocol.as_deref() {
            errs.extend(invalid_all(
                &pp.child("appProtocol"),
                ap,
                is_qualified_name(ap),
            ));
        }
    }
    errs
}

impl Strategy for EndpointSliceStrategy {
    type Object = EndpointSlice;

    fn default(&self, s: &mut EndpointSlice) {
        for p in s.ports.iter_mut().flatten() {
            p.name.get_or_insert_with(String::new);
            p.protocol.get_or_insert_with(|| "TCP".to_string());
        }
    }

    fn validate(&self, s: &EndpointSlice) -> Vec<FieldError> {
        validate_slice(s)
    }

    fn validate_update(&self, new: &EndpointSlice, old: &EndpointSlice) -> Vec<FieldError> {
        let mut errs = validate_slice(new);
        if new.address_type != old.address_type {
            errs.push(FieldError::invalid(
                &FieldPath::new("addressType"),
                &new.address_type,
                "field is immutable",
            ));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{EndpointPort, EndpointSubset};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort as SlicePort};

    use super::*;
    use crate::registry::strategies::testutil::{messages, meta};

    fn address(ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            ..Default::default()
        }
    }

    #[test]
    fn endpoints_default_protocols_and_validate_addresses() {
        let mut ep = Endpoints {
            metadata: meta("web"),
            subsets: Some(vec![
                EndpointSubset {
                    addresses: Some(vec![
                        address("10.0.0.1"),
                        address("127.0.0.1"),
                        address("nope"),
                    ]),
                    ports: Some(vec![
                        EndpointPort {
                            name: Some("http".into()),
                            port: 80,
                            ..Default::default()
                        },
                        EndpointPort {
                            port: 0,
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                },
                EndpointSubset::default(),
            ]),
        };
        EndpointsStrategy.default(&mut ep);
        assert_eq!(
            messages(&EndpointsStrategy.validate(&ep)),
            vec![
                r#"subsets[0].addresses[1].ip: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)"#,
                r#"subsets[0].addresses[2].ip: Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#,
                "subsets[0].ports[1].name: Required value",
                "subsets[0].ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
            ]
        );
    }

    fn slice(address_type: &str, addresses: &[&str]) -> EndpointSlice {
        EndpointSlice {
            metadata: meta("web-abc"),
            address_type: address_type.into(),
            endpoints: vec![Endpoint {
                addresses: addresses.iter().map(|a| a.to_string()).collect(),
                ..Default::default()
            }],
            ports: Some(vec![SlicePort {
                port: Some(80),
                ..Default::default()
            }]),
        }
    }

    #[test]
    fn endpoint_slices_check_address_types_and_ports() {
        let mut ok = slice("IPv4", &["10.0.0.1"]);
        EndpointSliceStrategy.default(&mut ok);
        assert_eq!(
            serde_json::to_value(&ok.ports).expect("json"),
            serde_json::json!([{"name": "", "port": 80, "protocol": "TCP"}])
        );
        assert!(EndpointSliceStrategy.validate(&ok).is_empty());
        let cases = [
            (
                slice("IPX", &["10.0.0.1"]),
                r#"addressType: Unsupported value: "IPX": supported values: "FQDN", "IPv4", "IPv6""#,
            ),
            (
                slice("IPv4", &["fd00::1"]),
                r#"endpoints[0].addresses[0]: Invalid value: "fd00::1": must be an IPv4 address"#,
            ),
            (
                slice("IPv4", &[]),
                "endpoints[0].addresses: Required value: must contain at least 1 address",
            ),
            (
                slice("FQDN", &["localhost"]),
                r#"endpoints[0].addresses[0]: Invalid value: "localhost": should be a domain with at least two segments separated by dots"#,
            ),
        ];
        for (mut s, want) in cases {
            EndpointSliceStrategy.default(&mut s);
            assert_eq!(
                messages(&EndpointSliceStrategy.validate(&s)),
                vec![want.to_string()]
            );
        }
        let mut v6 = ok.clone();
        v6.address_type = "IPv6".into();
        v6.endpoints[0].addresses = vec!["fd00::1".into()];
        assert_eq!(
            messages(&EndpointSliceStrategy.validate_update(&v6, &ok)),
            vec![r#"addressType: Invalid value: "IPv6": field is immutable"#]
        );
    }
}
