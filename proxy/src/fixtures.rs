//! Test fixtures shared by both backends' rendering and proxier tests, so
//! the iptables and nftables twins test the very same Services.

use std::net::Ipv4Addr;

use crate::model::{Endpoint, ServicePort};
use crate::rules::RulesConfig;

pub fn cfg() -> RulesConfig {
    RulesConfig {
        prefix: "FK".into(),
        cluster_cidr: "10.42.0.0/16".into(),
        service_cidr: "10.43.0.0/16".into(),
        masq_mark: 0x4000,
    }
}

pub fn ep(last: u8, ready: bool, local: bool) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 42, 0, last),
        port: 8080,
        ready,
        serving: ready,
        terminating: false,
        local,
    }
}

/// `default/web:http`, ClusterIP 10.43.0.10:80, no node port.
pub fn port(endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        key: "default/web:http".into(),
        protocol: "tcp".into(),
        cluster_ip: Some(Ipv4Addr::new(10, 43, 0, 10)),
        port: 80,
        node_port: None,
        load_balancer_ips: Vec::new(),
        external_local: false,
        internal_local: false,
        affinity_seconds: None,
        endpoints,
    }
}

/// Service `default/s<i>` (ClusterIP 10.43.0.i) with `endpoints` ready
/// local endpoints at 10.42.i.2 onwards.
pub fn numbered(i: u8, endpoints: u8, node_port: Option<u16>) -> ServicePort {
    ServicePort {
        key: format!("default/s{i}:"),
        cluster_ip: Some(Ipv4Addr::new(10, 43, 0, i)),
        node_port,
        endpoints: (0..endpoints)
            .map(|e| Endpoint {
                ip: Ipv4Addr::new(10, 42, i, e + 2),
                ..ep(0, true, true)
            })
            .collect(),
        ..port(Vec::new())
    }
}
