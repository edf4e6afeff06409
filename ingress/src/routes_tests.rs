//! Table-driven tests of class selection, backend resolution and matching.

use serde_json::{Value, json};

use super::*;

fn ingress(name: &str, class: Option<&str>, spec: Value) -> Ingress {
    let mut spec = spec;
    if let Some(c) = class {
        spec["ingressClassName"] = json!(c);
    }
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}))
        .expect("ingress")
}

fn class(name: &str, controller: &str, default: bool) -> IngressClass {
    let mut v = json!({"metadata": {"name": name}, "spec": {"controller": controller}});
    if default {
        v["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
    }
    serde_json::from_value(v).expect("class")
}

fn service(name: &str, ports: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                                  "spec": {"clusterIP": "10.43.0.50", "ports": ports}}))
    .expect("service")
}

fn slice(svc: &str, suffix: &str, port_name: &str, port: u16, eps: Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-{suffix}"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }))
    .expect("slice")
}

fn path(p: &str, t: &str, svc: &str) -> Value {
    json!({"path": p, "pathType": t, "backend": {"service": {"name": svc, "port": {"number": 80}}}})
}

#[test]
fn ingresses_are_ours_by_class_name_annotation_or_default_class() {
    let filter = ClassFilter {
        controller: "ferrokube.io/ingress".into(),
    };
    let ours = class("ferrokube", "ferrokube.io/ingress", false);
    let ours_default = class("ferrokube", "ferrokube.io/ingress", true);
    let other = class("nginx", "k8s.io/ingress-nginx", true);
    let spec = json!({"defaultBackend": {"service": {"name": "a", "port": {"number": 80}}}});
    let named = ingress("n", Some("ferrokube"), spec.clone());
    let nginx = ingress("x", Some("nginx"), spec.clone());
    let unnamed = ingress("u", None, spec.clone());
    let mut annotated = ingress("a", None, spec.clone());
    annotated.metadata.annotations = Some([(CLASS_ANNOTATION.to_string(), "ferrokube".to_string())].into());
    let cases = [
        (&named, vec![&ours], true),
        (&named, vec![], false),
        (&nginx, vec![&ours, &other], false),
        (&annotated, vec![&ours], true),
        (&unnamed, vec![&ours], false),
        (&unnamed, vec![&ours_default], true),
        (&unnamed, vec![&ours, &other], false),
    ];
    for (i, (ing, classes, want)) in cases.iter().enumerate() {
        assert_eq!(is_ours(ing, classes, &filter), *want, "case {i}");
    }
}

fn ready(ip: &str) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": true}})
}

#[test]
fn requests_route_by_host_then_longest_path() {
    let services = [
        service("a", json!([{"name": "http", "port": 80, "targetPort": "web"}])),
        service("b", json!([{"port": 80, "targetPort": 8080}])),
        service("c", json!([{"name": "http", "port": 80}])),
        service("d", json!([{"name": "http", "port": 80}])),
        service("e", json!([{"name": "http", "port": 80}])),
        service("def", json!([{"name": "http", "port": 80}])),
    ];
    let slices = [
        slice("a", "1", "http", 9001, json!([ready("10.42.0.1")])),
        slice("b", "1", "", 8080, json!([ready("10.42.0.2")])),
        slice("c", "1", "http", 80, json!([ready("10.42.0.3")])),
        slice("d", "1", "http", 80, json!([ready("10.42.0.4")])),
        slice("e", "1", "http", 80, json!([ready("10.42.0.5")])),
        slice("def", "1", "http", 80, json!([ready("10.42.0.9")])),
    ];
    let eps = Endpoints::new(services.iter(), slices.iter());
    let one = ingress(
        "one",
        None,
        json!({"rules": [
            {"host": "shop.example", "http": {"paths": [
                path("/", "Prefix", "a"),
                path("/api", "Prefix", "b"),
                path("/api/v2", "ImplementationSpecific", "c"),
                path("/api", "Exact", "d"),
            ]}},
            {"host": "*.example", "http": {"paths": [path("/", "Prefix", "e")]}},
            {"http": {"paths": [path("/b/", "Prefix", "b")]}},
        ]}),
    );
    let two = ingress(
        "two",
        None,
        json!({"defaultBackend": {"service": {"name": "def", "port": {"name": "http"}}}}),
    );
    let table = build(&[&one, &two], &eps);
    let cases = [
        ("shop.example", "/", "a"),
        ("SHOP.example", "/x/y", "a"),
        ("shop.example", "/api", "d"),
        ("shop.example", "/api/", "b"),
        ("shop.example", "/api/list", "b"),
        ("shop.example", "/apis", "a"),
        ("shop.example", "/api/v2", "c"),
        ("shop.example", "/api/v2/x", "c"),
        ("shop.example", "/api/v22", "b"),
        ("www.example", "/anything", "e"),
        // A wildcard covers exactly one label.
        ("a.b.example", "/b", "b"),
        ("example", "/b/c", "b"),
        ("other.test", "/b", "b"),
        ("other.test", "/bb", "def"),
        ("other.test", "/", "def"),
    ];
    for (host, p, want) in cases {
        match table.route(host, p) {
            Decision::Backend(b) => assert_eq!(b.service, want, "{host}{p}"),
            Decision::NoRoute => panic!("{host}{p}: no route"),
        }
    }
    // Named targetPort: the slice's port number is used.
    let Decision::Backend(a) = table.route("shop.example", "/") else {
        panic!("no route");
    };
    assert_eq!(a.pick(), Some("10.42.0.1:9001".parse().expect("addr")));
    let no_default = build(&[&one], &eps);
    assert!(matches!(no_default.route("other.test", "/"), Decision::NoRoute));
}

#[test]
fn only_ready_endpoints_are_used_round_robin() {
    let services = [service("a", json!([{"name": "http", "port": 80}]))];
    let slices = [
        slice(
            "a",
            "1",
            "http",
            8080,
            json!([ready("10.42.0.1"), {"addresses": ["10.42.0.2"], "conditions": {"ready": false}},
                   {"addresses": ["10.42.0.3"]}]),
        ),
        slice("a", "2", "http", 8081, json!([ready("10.42.1.1")])),
        // Another port of the Service: not this backend's.
        slice("a", "3", "metrics", 9090, json!([ready("10.42.2.1")])),
    ];
    let eps = Endpoints::new(services.iter(), slices.iter());
    let ing = ingress("one", None, json!({"rules": [{"http": {"paths": [path("/", "Prefix", "a")]}}]}));
    let table = build(&[&ing], &eps);
    let Decision::Backend(b) = table.route("x", "/") else {
        panic!("no route");
    };
    let picks: Vec<String> = (0..6).filter_map(|_| b.pick()).map(|a| a.to_string()).collect();
    assert_eq!(
        picks,
        [
            "10.42.0.1:8080",
            "10.42.0.3:8080",
            "10.42.1.1:8081",
            "10.42.0.1:8080",
            "10.42.0.3:8080",
            "10.42.1.1:8081"
        ]
    );
    // A Service that does not exist, or has no ready endpoint, routes to
    // a backend with nothing to pick (503).
    let ghost = ingress("g", None, json!({"rules": [{"http": {"paths": [path("/", "Prefix", "nope")]}}]}));
    let table = build(&[&ghost], &eps);
    let Decision::Backend(b) = table.route("x", "/") else {
        panic!("no route");
    };
    assert_eq!(b.pick(), None);
}
