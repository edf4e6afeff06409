//! Table-driven validation tests for Ingress and IngressClass.

use serde_json::{Value, json};

use super::*;
use crate::registry::strategies::testutil::messages;

fn ingress(spec: Value) -> Ingress {
    serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}))
        .expect("ingress")
}

fn backend(name: &str, port: Value) -> Value {
    json!({"service": {"name": name, "port": port}})
}

fn rule(host: &str, path: &str, path_type: Option<&str>) -> Value {
    let mut p = json!({"path": path, "backend": backend("web", json!({"number": 80}))});
    if let Some(t) = path_type {
        p["pathType"] = json!(t);
    }
    json!({"host": host, "http": {"paths": [p]}})
}

#[test]
fn ingress_validation_matches_kubernetes() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"rules": [rule("a.example", "/a", Some("Prefix"))]}), vec![]),
        (json!({"rules": [rule("*.example.com", "/", Some("Exact"))]}), vec![]),
        (
            json!({"rules": [rule("", "", Some("ImplementationSpecific"))],
                   "ingressClassName": "ferrokube",
                   "tls": [{"hosts": ["*.example.com"], "secretName": "tls"}]}),
            vec![],
        ),
        (json!({"defaultBackend": backend("web", json!({"name": "http"}))}), vec![]),
        (
            json!({}),
            vec!["spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"],
        ),
        (
            json!({"rules": [rule("10.0.0.1", "/", Some("Prefix"))]}),
            vec![r#"spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address"#],
        ),
        (
            json!({"rules": [rule("a.*.example", "/", Some("Prefix"))]}),
            vec![concat!(
                r#"spec.rules[0].host: Invalid value: "a.*.example": a wildcard DNS-1123 subdomain must start with '*.', "#,
                "followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' ",
                "and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is ",
                r"'\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            )],
        ),
        (
            json!({"rules": [rule("a.example", "/a", None)]}),
            vec!["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"],
        ),
        (
            json!({"rules": [rule("a.example", "/a", Some("Regex"))]}),
            vec![r#"spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix""#],
        ),
        (
            json!({"rules": [rule("a.example", "a", Some("Prefix"))]}),
            vec![r#"spec.rules[0].http.paths[0].path: Invalid value: "a": must be an absolute path"#],
        ),
        (
            json!({"rules": [rule("a.example", "/a//b/..", Some("Exact"))]}),
            vec![
                r#"spec.rules[0].http.paths[0].path: Invalid value: "/a//b/..": must not contain '//'"#,
                r#"spec.rules[0].http.paths[0].path: Invalid value: "/a//b/..": cannot end with '/..'"#,
            ],
        ),
        (
            json!({"rules": [{"host": "a.example", "http": {"paths": []}}]}),
            vec!["spec.rules[0].http.paths: Required value"],
        ),
        (
            json!({"defaultBackend": backend("Web", json!({"number": 0}))}),
            vec![
                r#"spec.defaultBackend.service.name: Invalid value: "Web": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#,
                "spec.defaultBackend: Required value: port name or number is required",
            ],
        ),
        (
            json!({"defaultBackend": backend("web", json!({"name": "http", "number": 80}))}),
            vec![r#"spec.defaultBackend: Invalid value: "": cannot set both port name & port number"#],
        ),
        (
            json!({"defaultBackend": backend("web", json!({"number": 70000}))}),
            vec!["spec.defaultBackend.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive"],
        ),
        (
            json!({"defaultBackend": {}}),
            vec![r#"spec.defaultBackend: Invalid value: "": resource or service backend is required"#],
        ),
        (
            json!({"defaultBackend": backend("web", json!({"number": 80})), "ingressClassName": "Bad_Class"}),
            vec![r#"spec.ingressClassName: Invalid value: "Bad_Class": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#],
        ),
    ];
    for (spec, want) in cases {
        let ing = ingress(spec.clone());
        assert_eq!(messages(&IngressStrategy.validate(&ing)), want, "{spec}");
    }
}

#[test]
fn the_class_annotation_must_agree_with_the_field_on_create() {
    let mut ing = ingress(json!({"ingressClassName": "a", "defaultBackend": backend("web", json!({"number": 80}))}));
    ing.metadata.annotations = Some([(INGRESS_CLASS_ANNOTATION.to_string(), "b".to_string())].into());
    assert_eq!(
        messages(&IngressStrategy.validate(&ing)),
        vec![r#"annotations.kubernetes.io/ingress.class: Invalid value: "b": must match `ingressClassName` when both are specified"#]
    );
    // Updates of objects stored before the rule keep working.
    assert!(IngressStrategy.validate_update(&ing, &ing).is_empty());
}

fn class(spec: Value) -> IngressClass {
    serde_json::from_value(json!({"metadata": {"name": "ferrokube"}, "spec": spec})).expect("class")
}

#[test]
fn ingress_class_validation_matches_kubernetes() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"controller": "ferrokube.io/ingress"}), vec![]),
        (
            json!({"controller": "ferrokube.io/ingress",
                   "parameters": {"kind": "Params", "name": "p", "scope": "Namespace", "namespace": "default"}}),
            vec![],
        ),
        (json!({}), vec!["spec.controller: Required value"]),
        (
            json!({"controller": "ingress"}),
            vec![r#"spec.controller: Invalid value: "ingress": must be a domain-prefixed path (such as "acme.io/foo")"#],
        ),
        (
            json!({"controller": "ferrokube.io/ingress",
                   "parameters": {"kind": "", "name": "p", "scope": "Namespace"}}),
            vec![
                "spec.parameters.kind: Required value: kind is required",
                "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'",
            ],
        ),
        (
            json!({"controller": "ferrokube.io/ingress",
                   "parameters": {"kind": "P", "name": "p", "scope": "Galaxy"}}),
            vec![r#"spec.parameters.scope: Unsupported value: "Galaxy": supported values: "Cluster", "Namespace""#],
        ),
    ];
    for (spec, want) in cases {
        let mut c = class(spec.clone());
        IngressClassStrategy.default(&mut c);
        assert_eq!(messages(&IngressClassStrategy.validate(&c)), want, "{spec}");
    }
    let mut with_params = class(json!({"controller": "a.io/b", "parameters": {"kind": "P", "name": "p"}}));
    IngressClassStrategy.default(&mut with_params);
    assert_eq!(
        with_params.spec.as_ref().and_then(|s| s.parameters.as_ref()).and_then(|p| p.scope.as_deref()),
        Some("Cluster")
    );
    let old = class(json!({"controller": "a.io/b"}));
    let new = class(json!({"controller": "a.io/c"}));
    assert_eq!(
        messages(&IngressClassStrategy.validate_update(&new, &old)),
        vec![r#"spec.controller: Invalid value: "a.io/c": field is immutable"#]
    );
}
