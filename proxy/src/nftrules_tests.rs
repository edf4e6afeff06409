//! Table-driven tests of the nftables rendering, the twins of
//! `rules_tests.rs`: the same cases, the same expectations in nft terms.

use std::net::Ipv4Addr;

use super::*;
use crate::fixtures::{cfg, ep, port};

/// Every rule as `CHAIN: rule` and every element as `map: key : verdict`,
/// with the hashes in names replaced by `<kind>`, and chain names reduced
/// to the kind, so the expectations stay readable.
fn render(r: &NftPort) -> Vec<String> {
    let short = |w: &str| -> String {
        for kind in ["service", "local", "external", "endpoint", "affinity"] {
            if let Some(rest) = w.strip_prefix(&format!("{kind}-"))
                && rest.len() > 9
                && rest.as_bytes()[8] == b'-'
            {
                return match rest.split_once("__") {
                    Some((_, ep)) => format!("<{kind} {ep}>"),
                    None => format!("<{kind}>"),
                };
            }
            if let Some(rest) = w.strip_prefix(&format!("@{kind}-"))
                && let Some((_, ep)) = rest.split_once("__")
            {
                return format!("@<{kind} {ep}>");
            }
        }
        w.to_string()
    };
    let words = |l: &str| {
        l.split(' ')
            .map(|w| match w.strip_suffix(',') {
                Some(w) => format!("{},", short(w)),
                None => short(w),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    r.chains
        .iter()
        .flat_map(|(name, rules)| {
            rules
                .iter()
                .map(move |l| format!("{}: {}", short(name), words(l)))
        })
        .chain(
            r.elements
                .iter()
                .map(|e| format!("{}: {} : {}", e.map, e.key, words(&e.verdict))),
        )
        .collect()
}

#[test]
fn three_ready_endpoints_are_spread_evenly_by_numgen() {
    let r = port_rules(
        &cfg(),
        &port(vec![
            ep(2, true, true),
            ep(3, true, false),
            ep(4, true, false),
        ]),
    );
    let lines = render(&r);
    assert_eq!(
        lines,
        [
            "<service>: meta l4proto tcp dnat to numgen random mod 3 map { 0 : 10.42.0.2 . 8080, 1 : 10.42.0.3 . 8080, 2 : 10.42.0.4 . 8080 }",
            "service-ips: 10.43.0.10 . tcp . 80 : goto <service>",
        ],
        "one chain, no endpoint chains, no NodePort, no rejects"
    );
    let ips: Vec<Ipv4Addr> = (2..=4).map(|i| Ipv4Addr::new(10, 42, 0, i)).collect();
    assert_eq!(
        r.hairpin.iter().copied().collect::<Vec<_>>(),
        ips,
        "hairpin traffic is masqueraded"
    );
}

#[test]
fn rules_by_case() {
    struct Case {
        name: &'static str,
        port: ServicePort,
        has: &'static [&'static str],
        lacks: &'static [&'static str],
    }
    let nodeport = |mut p: ServicePort, local: bool| {
        p.node_port = Some(30080);
        p.external_local = local;
        p
    };
    let cases = [
        Case {
            name: "no endpoints: rejected from the filter map, nothing in nat",
            port: port(vec![ep(2, false, true)]),
            has: &["no-endpoint-services: 10.43.0.10 . tcp . 80 : goto reject-chain"],
            lacks: &["<service>", "dnat", "service-ips"],
        },
        Case {
            name: "one endpoint needs no numgen",
            port: port(vec![ep(2, true, true)]),
            has: &["<service>: meta l4proto tcp dnat to 10.42.0.2:8080"],
            lacks: &["numgen", "<endpoint"],
        },
        Case {
            name: "NodePort with policy Cluster masquerades external traffic",
            port: nodeport(port(vec![ep(2, true, false)]), false),
            has: &[
                "service-nodeports: tcp . 30080 : goto <external>",
                "<external>: jump mark-for-masquerade",
                "<external>: goto <service>",
            ],
            lacks: &["<local>"],
        },
        Case {
            name: "NodePort with policy Local keeps outsiders on local endpoints",
            port: nodeport(port(vec![ep(2, true, true), ep(3, true, false)]), true),
            has: &[
                "<external>: ip saddr 10.42.0.0/16 goto <service>",
                "<external>: fib saddr type local jump mark-for-masquerade",
                "<external>: fib saddr type local goto <service>",
                "<external>: goto <local>",
                "<local>: meta l4proto tcp dnat to 10.42.0.2:8080",
                "<service>: meta l4proto tcp dnat to numgen random mod 2 map { 0 : 10.42.0.2 . 8080, 1 : 10.42.0.3 . 8080 }",
            ],
            lacks: &["<external>: jump mark-for-masquerade"],
        },
        Case {
            name: "policy Local without local endpoints drops outsiders",
            port: nodeport(port(vec![ep(3, true, false)]), true),
            has: &["<external>: drop"],
            lacks: &["<local>"],
        },
        Case {
            name: "NodePort without endpoints is rejected from its own map",
            port: nodeport(port(vec![]), false),
            has: &["no-endpoint-nodeports: tcp . 30080 : goto reject-chain"],
            lacks: &["service-nodeports", "<external>"],
        },
        Case {
            name: "internalTrafficPolicy Local sends ClusterIP traffic to local endpoints",
            port: ServicePort {
                internal_local: true,
                ..port(vec![ep(2, true, true), ep(3, true, false)])
            },
            has: &[
                "service-ips: 10.43.0.10 . tcp . 80 : goto <local>",
                "<local>: meta l4proto tcp dnat to 10.42.0.2:8080",
            ],
            lacks: &["service-ips: 10.43.0.10 . tcp . 80 : goto <service>"],
        },
        Case {
            name: "internalTrafficPolicy Local with only remote endpoints drops",
            port: ServicePort {
                internal_local: true,
                ..port(vec![ep(3, true, false)])
            },
            has: &["no-endpoint-services: 10.43.0.10 . tcp . 80 : drop"],
            lacks: &["<local>", "reject"],
        },
        Case {
            name: "internalTrafficPolicy Local without any endpoint rejects",
            port: ServicePort {
                internal_local: true,
                ..port(vec![ep(3, false, false)])
            },
            has: &["no-endpoint-services: 10.43.0.10 . tcp . 80 : goto reject-chain"],
            lacks: &["<local>", ": drop"],
        },
        Case {
            name: "ClientIP affinity checks the set first and records on DNAT",
            port: ServicePort {
                affinity_seconds: Some(600),
                ..port(vec![ep(2, true, true), ep(3, true, true)])
            },
            has: &[
                "<service>: ip saddr @<affinity 10.42.0.2/8080> goto <endpoint 10.42.0.2/8080>",
                "<service>: ip saddr @<affinity 10.42.0.3/8080> goto <endpoint 10.42.0.3/8080>",
                "<endpoint 10.42.0.2/8080>: update @<affinity 10.42.0.2/8080> { ip saddr }",
                "<endpoint 10.42.0.2/8080>: meta l4proto tcp dnat to 10.42.0.2:8080",
                "<service>: numgen random mod 2 vmap { 0 : goto <endpoint 10.42.0.2/8080>, 1 : goto <endpoint 10.42.0.3/8080> }",
            ],
            lacks: &["dnat to numgen"],
        },
        Case {
            name: "load balancer IPs go to the external chain",
            port: ServicePort {
                load_balancer_ips: vec![Ipv4Addr::new(192, 168, 1, 5)],
                ..port(vec![ep(2, true, true)])
            },
            has: &["service-ips: 192.168.1.5 . tcp . 80 : goto <external>"],
            lacks: &[],
        },
        Case {
            name: "terminating serving endpoints are used when none is ready",
            port: port(vec![Endpoint {
                terminating: true,
                serving: true,
                ..ep(2, false, true)
            }]),
            has: &["dnat to 10.42.0.2:8080"],
            lacks: &["reject"],
        },
    ];
    for c in cases {
        let lines = render(&port_rules(&cfg(), &c.port));
        for want in c.has {
            assert!(
                lines.iter().any(|l| l == want || l.contains(want)),
                "{}: missing {want}\n{lines:#?}",
                c.name
            );
        }
        for unwanted in c.lacks {
            assert!(
                !lines.iter().any(|l| l == unwanted || l.contains(unwanted)),
                "{}: has {unwanted}\n{lines:#?}",
                c.name
            );
        }
    }
}

#[test]
fn affinity_sets_carry_the_timeout_and_change_name_with_it() {
    let with = |secs| {
        port_rules(
            &cfg(),
            &ServicePort {
                affinity_seconds: Some(secs),
                ..port(vec![ep(2, true, true)])
            },
        )
    };
    let (a, b) = (with(600), with(700));
    assert_eq!(a.sets.len(), 1);
    assert_eq!(a.sets[0].1, 600);
    assert_ne!(a.sets[0].0, b.sets[0].0);
}

#[test]
fn names_are_stable_readable_and_table_names_follow_the_prefix() {
    let r = port_rules(&cfg(), &port(vec![ep(2, true, true)]));
    assert_eq!(r, port_rules(&cfg(), &port(vec![ep(2, true, true)])));
    let svc = &r
        .chains
        .iter()
        .find(|(n, _)| n.starts_with("service-"))
        .expect("svc")
        .0;
    assert!(svc.ends_with("-default/web/tcp/http"), "{svc}");
    assert_eq!(table_name(&cfg()), "ferrokube-fk");
    let default = RulesConfig {
        prefix: "FKUBE".into(),
        ..cfg()
    };
    assert_eq!(table_name(&default), "ferrokube");
}
