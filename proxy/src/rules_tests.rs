//! Table-driven, golden-ish tests of the rule generation.

use std::net::Ipv4Addr;

use super::*;
use crate::fixtures::{cfg, ep, port};
use crate::model::Endpoint;

/// Every line of the port's rules with hashes replaced by the chain kind,
/// so the expectations stay readable.
fn render(r: &PortRules) -> Vec<String> {
    let mut lines: Vec<String> = r
        .chains
        .iter()
        .flat_map(|(_, l)| l.clone())
        .chain(r.services.clone())
        .chain(r.nodeports.clone())
        .chain(r.rejects.clone())
        .collect();
    for l in &mut lines {
        *l = l
            .split(' ')
            .map(|w| {
                for kind in ["SVC", "SVL", "EXT", "SEP"] {
                    if w.starts_with(&format!("FK-{kind}-")) && w.len() == 3 + kind.len() + 1 + 16 {
                        return format!("<{kind}>");
                    }
                }
                w.to_string()
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    lines
}

#[test]
fn three_ready_endpoints_are_spread_evenly() {
    let r = port_rules(
        &cfg(),
        &port(vec![
            ep(2, true, true),
            ep(3, true, false),
            ep(4, true, false),
        ]),
    );
    let lines = render(&r);
    let spread: Vec<&String> = lines.iter().filter(|l| l.starts_with("-A <SVC>")).collect();
    assert_eq!(spread.len(), 3);
    assert!(
        spread[0].contains("--probability 0.3333333333 -j <SEP>"),
        "{}",
        spread[0]
    );
    assert!(
        spread[1].contains("--probability 0.5000000000 -j <SEP>"),
        "{}",
        spread[1]
    );
    assert!(
        !spread[2].contains("statistic"),
        "the last endpoint takes the rest"
    );
    assert_eq!(
        r.services,
        vec![format!(
            "-A FK-SERVICES -m comment --comment \"default/web:http\" -d 10.43.0.10/32 -m tcp -p tcp --dport 80 -j {}",
            r.chains
                .iter()
                .find(|(n, _)| n.starts_with("FK-SVC-"))
                .expect("svc")
                .0
        )]
    );
    assert!(
        lines.contains(
            &"-A <SEP> -m comment --comment \"default/web:http\" -s 10.42.0.2/32 -j FK-MARK-MASQ"
                .to_string()
        ),
        "hairpin traffic is masqueraded"
    );
    assert!(lines.contains(
        &"-A <SEP> -m comment --comment \"default/web:http\" -m tcp -p tcp -j DNAT --to-destination 10.42.0.2:8080".to_string()
    ));
    assert!(r.rejects.is_empty() && r.nodeports.is_empty());
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
            name: "no endpoints: rejected in filter, nothing in nat",
            port: port(vec![ep(2, false, true)]),
            has: &[
                "-A FK-SERVICES -m comment --comment \"default/web:http\" -d 10.43.0.10/32 -m tcp -p tcp --dport 80 -j REJECT",
            ],
            lacks: &["<SVC>", "DNAT"],
        },
        Case {
            name: "NodePort with policy Cluster masquerades external traffic",
            port: nodeport(port(vec![ep(2, true, false)]), false),
            has: &[
                "-A FK-NODEPORTS -m comment --comment \"default/web:http\" -m tcp -p tcp --dport 30080 -j <EXT>",
                "-A <EXT> -m comment --comment \"default/web:http\" -j FK-MARK-MASQ",
                "-A <EXT> -m comment --comment \"default/web:http\" -j <SVC>",
            ],
            lacks: &["<SVL>"],
        },
        Case {
            name: "NodePort with policy Local keeps outsiders on local endpoints",
            port: nodeport(port(vec![ep(2, true, true), ep(3, true, false)]), true),
            has: &[
                "-A <EXT> -m comment --comment \"default/web:http\" -s 10.42.0.0/16 -j <SVC>",
                "-A <EXT> -m comment --comment \"default/web:http\" -m addrtype --src-type LOCAL -j FK-MARK-MASQ",
                "-A <EXT> -m comment --comment \"default/web:http\" -j <SVL>",
                "-A <SVL> -m comment --comment \"default/web:http -> 10.42.0.2:8080\" -j <SEP>",
            ],
            lacks: &["-A <EXT> -m comment --comment \"default/web:http\" -j FK-MARK-MASQ"],
        },
        Case {
            name: "policy Local without local endpoints drops outsiders",
            port: nodeport(port(vec![ep(3, true, false)]), true),
            has: &[
                "-A FK-SERVICES -m comment --comment \"default/web:http\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP",
                "-A <EXT> -m comment --comment \"default/web:http\" -m addrtype --src-type LOCAL -j <SVC>",
            ],
            lacks: &[
                "<SVL>",
                "-A <EXT> -m comment --comment \"default/web:http\" -j DROP",
            ],
        },
        Case {
            name: "internalTrafficPolicy Local sends ClusterIP traffic to local endpoints",
            port: ServicePort {
                internal_local: true,
                ..port(vec![ep(2, true, true), ep(3, true, false)])
            },
            has: &["-d 10.43.0.10/32 -m tcp -p tcp --dport 80 -j <SVL>"],
            lacks: &["-m tcp -p tcp --dport 80 -j <SVC>"],
        },
        Case {
            name: "internalTrafficPolicy Local with only remote endpoints drops",
            port: ServicePort {
                internal_local: true,
                ..port(vec![ep(3, true, false)])
            },
            has: &["--dport 80 -j DROP"],
            lacks: &["<SVL>", "REJECT"],
        },
        Case {
            name: "internalTrafficPolicy Local without any endpoint rejects",
            port: ServicePort {
                internal_local: true,
                ..port(vec![ep(3, false, false)])
            },
            has: &["--dport 80 -j REJECT"],
            lacks: &["<SVL>", "DROP"],
        },
        Case {
            name: "ClientIP affinity checks recent first and records on DNAT",
            port: ServicePort {
                affinity_seconds: Some(600),
                ..port(vec![ep(2, true, true)])
            },
            has: &[
                "-A <SVC> -m comment --comment \"default/web:http\" -m recent --name <SEP> --rcheck --seconds 600 --reap -j <SEP>",
                "-A <SEP> -m comment --comment \"default/web:http\" -m tcp -p tcp -m recent --name <SEP> --set -j DNAT --to-destination 10.42.0.2:8080",
            ],
            lacks: &[],
        },
        Case {
            name: "load balancer IPs jump to the external chain",
            port: ServicePort {
                load_balancer_ips: vec![Ipv4Addr::new(192, 168, 1, 5)],
                ..port(vec![ep(2, true, true)])
            },
            has: &[
                "-A FK-SERVICES -m comment --comment \"default/web:http\" -d 192.168.1.5/32 -m tcp -p tcp --dport 80 -j <EXT>",
            ],
            lacks: &[],
        },
        Case {
            name: "terminating serving endpoints are used when none is ready",
            port: port(vec![Endpoint {
                terminating: true,
                serving: true,
                ..ep(2, false, true)
            }]),
            has: &["DNAT --to-destination 10.42.0.2:8080"],
            lacks: &["REJECT"],
        },
    ];
    for c in cases {
        let rules = port_rules(&cfg(), &c.port);
        // iptables-restore refuses the whole batch over one filtering
        // target in nat.
        let nat = rules
            .chains
            .iter()
            .flat_map(|(_, l)| l)
            .chain(&rules.services)
            .chain(&rules.nodeports);
        for line in nat {
            assert!(
                !line.ends_with("-j DROP") && !line.ends_with("-j REJECT"),
                "{}: filters in nat: {line}",
                c.name
            );
        }
        let lines = render(&rules);
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
fn chain_names_fit_iptables_and_are_stable() {
    let r = port_rules(&cfg(), &port(vec![ep(2, true, true)]));
    let again = port_rules(&cfg(), &port(vec![ep(2, true, true)]));
    assert_eq!(r, again);
    let long = RulesConfig {
        prefix: "X".repeat(MAX_PREFIX),
        ..cfg()
    };
    for (name, _) in port_rules(&long, &port(vec![ep(2, true, true)])).chains {
        assert!(name.len() <= 28, "{name}");
    }
    assert_eq!(hash16("default/web:http/tcp").len(), 16);
    assert_ne!(hash16("a"), hash16("b"));
}

#[test]
fn the_services_chain_masquerades_outsiders_and_ends_with_nodeports() {
    let lines = services_chain(&cfg(), ["-A FK-SERVICES x".to_string()].iter());
    assert_eq!(
        lines[0],
        "-A FK-SERVICES ! -s 10.42.0.0/16 -d 10.43.0.0/16 -j FK-MARK-MASQ"
    );
    assert_eq!(lines[1], "-A FK-SERVICES x");
    assert_eq!(
        lines[2],
        "-A FK-SERVICES -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j FK-NODEPORTS"
    );
}
