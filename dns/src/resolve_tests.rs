//! Table-driven tests of the name → record logic.

use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::*;

fn service(ns: &str, name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("service")
}

fn slice(ns: &str, svc: &str, suffix: &str, body: serde_json::Value) -> EndpointSlice {
    let mut v = json!({
        "metadata": {"name": format!("{svc}-{suffix}"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
    });
    if let (Some(o), Some(b)) = (v.as_object_mut(), body.as_object()) {
        o.extend(b.clone());
    }
    serde_json::from_value(v).expect("slice")
}

fn index() -> Index {
    let services = [
        service(
            "default",
            "web",
            json!({"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20", "fd00::20"],
                   "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                             {"name": "dns", "port": 53, "protocol": "UDP"},
                             {"port": 9000}]}),
        ),
        service(
            "default",
            "db",
            json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}),
        ),
        service(
            "default",
            "empty",
            json!({"clusterIP": "None", "ports": [{"name": "x", "port": 1}]}),
        ),
        service(
            "shop",
            "ext",
            json!({"type": "ExternalName", "externalName": "Example.COM."}),
        ),
        // Not allocated yet: no records.
        service("default", "pending", json!({"ports": [{"port": 80}]})),
    ];
    let slices = [
        slice(
            "default",
            "db",
            "a",
            json!({
                "endpoints": [
                    {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                    {"addresses": ["10.42.0.6"], "hostname": "db-1"},
                    {"addresses": ["10.42.0.7"], "hostname": "db-2", "conditions": {"ready": false}},
                    {"addresses": ["10.42.0.8"]},
                ],
                "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}],
            }),
        ),
        slice(
            "default",
            "empty",
            "a",
            json!({"endpoints": [{"addresses": ["10.42.0.9"], "conditions": {"ready": false}}]}),
        ),
        // A slice of a Service that does not exist is ignored.
        slice(
            "default",
            "ghost",
            "a",
            json!({"endpoints": [{"addresses": ["10.42.0.10"]}]}),
        ),
    ];
    Index::build(services.iter(), slices.iter())
}

/// One line per record: `TYPE rdata`, answers then `+` additionals.
fn render(outcome: Outcome) -> Vec<String> {
    match outcome {
        Outcome::Answer {
            answers,
            additionals,
        } => {
            let mut lines: Vec<String> = answers
                .iter()
                .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
                .collect();
            lines.extend(
                additionals
                    .iter()
                    .map(|r| format!("+{} {} {}", r.name, r.record_type(), r.data)),
            );
            lines
        }
        Outcome::NoData => vec!["NODATA".into()],
        Outcome::NxDomain => vec!["NXDOMAIN".into()],
        Outcome::Forward => vec!["FORWARD".into()],
    }
}

#[test]
fn names_resolve_as_the_kubernetes_dns_specification_says() {
    use RecordType::*;
    let index = index();
    let zone = Zone::new("cluster.local.", 5);
    let cases: &[(&str, RecordType, &[&str])] = &[
        (
            "web.default.svc.cluster.local.",
            A,
            &["web.default.svc.cluster.local. A 10.43.0.20"],
        ),
        // Any case, no trailing dot.
        (
            "WEB.Default.svc.cluster.local",
            A,
            &["web.default.svc.cluster.local. A 10.43.0.20"],
        ),
        (
            "web.default.svc.cluster.local.",
            AAAA,
            &["web.default.svc.cluster.local. AAAA fd00::20"],
        ),
        ("web.default.svc.cluster.local.", MX, &["NODATA"]),
        // Headless: the ready endpoints (nil `ready` counts as ready).
        (
            "db.default.svc.cluster.local.",
            A,
            &[
                "db.default.svc.cluster.local. A 10.42.0.5",
                "db.default.svc.cluster.local. A 10.42.0.6",
                "db.default.svc.cluster.local. A 10.42.0.8",
            ],
        ),
        ("db.default.svc.cluster.local.", AAAA, &["NODATA"]),
        ("empty.default.svc.cluster.local.", A, &["NODATA"]),
        // StatefulSet pods by hostname; a not-ready one is not published.
        (
            "db-0.db.default.svc.cluster.local.",
            A,
            &["db-0.db.default.svc.cluster.local. A 10.42.0.5"],
        ),
        ("db-2.db.default.svc.cluster.local.", A, &["NXDOMAIN"]),
        (
            "10-42-0-8.db.default.svc.cluster.local.",
            A,
            &["10-42-0-8.db.default.svc.cluster.local. A 10.42.0.8"],
        ),
        // Endpoint names exist only below headless Services.
        ("x.web.default.svc.cluster.local.", A, &["NXDOMAIN"]),
        // SRV for named ports: ClusterIP → the Service name, headless → each endpoint.
        (
            "_http._tcp.web.default.svc.cluster.local.",
            SRV,
            &[
                "_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local.",
                "+web.default.svc.cluster.local. A 10.43.0.20",
                "+web.default.svc.cluster.local. AAAA fd00::20",
            ],
        ),
        (
            "_dns._udp.web.default.svc.cluster.local.",
            SRV,
            &[
                "_dns._udp.web.default.svc.cluster.local. SRV 0 100 53 web.default.svc.cluster.local.",
                "+web.default.svc.cluster.local. A 10.43.0.20",
                "+web.default.svc.cluster.local. AAAA fd00::20",
            ],
        ),
        ("_dns._tcp.web.default.svc.cluster.local.", SRV, &["NXDOMAIN"]),
        ("_nope._tcp.web.default.svc.cluster.local.", SRV, &["NXDOMAIN"]),
        ("_http._tcp.web.default.svc.cluster.local.", A, &["NODATA"]),
        (
            "_pg._tcp.db.default.svc.cluster.local.",
            SRV,
            &[
                "_pg._tcp.db.default.svc.cluster.local. SRV 0 33 5433 db-0.db.default.svc.cluster.local.",
                "_pg._tcp.db.default.svc.cluster.local. SRV 0 33 5433 db-1.db.default.svc.cluster.local.",
                "_pg._tcp.db.default.svc.cluster.local. SRV 0 33 5433 10-42-0-8.db.default.svc.cluster.local.",
                "+db-0.db.default.svc.cluster.local. A 10.42.0.5",
                "+db-1.db.default.svc.cluster.local. A 10.42.0.6",
                "+10-42-0-8.db.default.svc.cluster.local. A 10.42.0.8",
            ],
        ),
        // SRV on the Service name: every named port.
        (
            "web.default.svc.cluster.local.",
            SRV,
            &[
                "web.default.svc.cluster.local. SRV 0 50 80 web.default.svc.cluster.local.",
                "web.default.svc.cluster.local. SRV 0 50 53 web.default.svc.cluster.local.",
                "+web.default.svc.cluster.local. A 10.43.0.20",
                "+web.default.svc.cluster.local. AAAA fd00::20",
            ],
        ),
        (
            "ext.shop.svc.cluster.local.",
            A,
            &["ext.shop.svc.cluster.local. CNAME example.com."],
        ),
        ("pending.default.svc.cluster.local.", A, &["NXDOMAIN"]),
        ("ghost.default.svc.cluster.local.", A, &["NXDOMAIN"]),
        ("nope.default.svc.cluster.local.", A, &["NXDOMAIN"]),
        ("default.svc.cluster.local.", A, &["NODATA"]),
        ("nope.svc.cluster.local.", A, &["NXDOMAIN"]),
        ("svc.cluster.local.", A, &["NODATA"]),
        ("cluster.local.", A, &["NODATA"]),
        (
            "cluster.local.",
            SOA,
            &["cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"],
        ),
        ("a.b.c.d.e.f.cluster.local.", A, &["NXDOMAIN"]),
        (
            "10-42-0-99.default.pod.cluster.local.",
            A,
            &["10-42-0-99.default.pod.cluster.local. A 10.42.0.99"],
        ),
        ("bad.default.pod.cluster.local.", A, &["NXDOMAIN"]),
        // PTR for ClusterIPs and named headless endpoints; other addresses go upstream.
        (
            "20.0.43.10.in-addr.arpa.",
            PTR,
            &["20.0.43.10.in-addr.arpa. PTR web.default.svc.cluster.local."],
        ),
        (
            "5.0.42.10.in-addr.arpa.",
            PTR,
            &["5.0.42.10.in-addr.arpa. PTR db-0.db.default.svc.cluster.local."],
        ),
        (
            "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.",
            PTR,
            &["0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. PTR web.default.svc.cluster.local."],
        ),
        ("8.8.8.8.in-addr.arpa.", PTR, &["FORWARD"]),
        ("example.com.", A, &["FORWARD"]),
        ("cluster.local.example.com.", A, &["FORWARD"]),
        ("notcluster.local.", A, &["FORWARD"]),
    ];
    for (name, qtype, want) in cases {
        let got = render(resolve(&index, &zone, name, *qtype));
        assert_eq!(got, *want, "{name} {qtype}");
    }
}

#[test]
fn another_cluster_domain_is_honoured() {
    let index = index();
    let zone = Zone::new("corp.example", 30);
    assert_eq!(
        render(resolve(&index, &zone, "web.default.svc.corp.example.", RecordType::A)),
        vec!["web.default.svc.corp.example. A 10.43.0.20"]
    );
    assert_eq!(
        render(resolve(&index, &zone, "web.default.svc.cluster.local.", RecordType::A)),
        vec!["FORWARD"]
    );
}
