//! Tests of the Service strategy.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::registry::strategies::testutil::{labels, messages, meta};

fn port(name: Option<&str>, port: i32) -> ServicePort {
    ServicePort {
        name: name.map(str::to_string),
        port,
        ..Default::default()
    }
}

fn service(ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: meta("web"),
        spec: Some(ServiceSpec {
            selector: Some(labels(&[("app", "web")])),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

fn defaulted(mut svc: Service) -> Service {
    ServiceStrategy.default(&mut svc);
    svc
}

#[test]
fn a_minimal_service_gets_exactly_kubernetes_defaults() {
    let svc = defaulted(service(vec![port(None, 80)]));
    assert_eq!(
        serde_json::to_value(&svc.spec).expect("serializable"),
        serde_json::json!({
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "selector": {"app": "web"},
            "sessionAffinity": "None",
            "type": "ClusterIP",
        })
    );
    assert_eq!(
        messages(&ServiceStrategy.validate(&svc)),
        Vec::<String>::new()
    );
}

#[test]
fn node_port_and_load_balancer_services_get_their_defaults() {
    let mut svc = service(vec![port(None, 80)]);
    svc.spec.as_mut().expect("spec").type_ = Some("LoadBalancer".into());
    svc.spec.as_mut().expect("spec").session_affinity = Some("ClientIP".into());
    let svc = defaulted(svc);
    let spec = svc.spec.clone().expect("spec");
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
    assert_eq!(
        spec.session_affinity_config
            .and_then(|c| c.client_ip)
            .and_then(|c| c.timeout_seconds),
        Some(10800)
    );
    assert_eq!(
        messages(&ServiceStrategy.validate(&svc)),
        Vec::<String>::new()
    );

    let mut headless = service(vec![]);
    let spec = headless.spec.as_mut().expect("spec");
    spec.cluster_ip = Some("None".into());
    spec.selector = None;
    let headless = defaulted(headless);
    assert_eq!(
        headless
            .spec
            .as_ref()
            .and_then(|s| s.ip_family_policy.as_deref()),
        Some("RequireDualStack")
    );
    assert_eq!(
        messages(&ServiceStrategy.validate(&headless)),
        Vec::<String>::new()
    );
}

#[test]
fn service_validation_reports_kubernetes_messages() {
    type Edit = fn(&mut Service);
    let cases: Vec<(Edit, &str)> = vec![
        (
            |s| s.spec.as_mut().expect("spec").ports = Some(vec![]),
            "spec.ports: Required value",
        ),
        (
            |s| {
                s.spec.as_mut().expect("spec").ports =
                    Some(vec![port(None, 80), port(Some("b"), 81)])
            },
            "spec.ports[0].name: Required value",
        ),
        (
            |s| {
                s.spec.as_mut().expect("spec").ports =
                    Some(vec![port(Some("a"), 80), port(Some("a"), 81)])
            },
            r#"spec.ports[1].name: Duplicate value: "a""#,
        ),
        (
            |s| s.spec.as_mut().expect("spec").ports = Some(vec![port(None, 70000)]),
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            |s| {
                s.spec
                    .as_mut()
                    .expect("spec")
                    .ports
                    .as_mut()
                    .expect("ports")[0]
                    .protocol = Some("HTTP".into())
            },
            r#"spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#,
        ),
        (
            |s| {
                s.spec
                    .as_mut()
                    .expect("spec")
                    .ports
                    .as_mut()
                    .expect("ports")[0]
                    .target_port = Some(IntOrString::String("Web_Port".into()))
            },
            r#"spec.ports[0].targetPort: Invalid value: "Web_Port": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"#,
        ),
        (
            |s| s.spec.as_mut().expect("spec").type_ = Some("Ingress".into()),
            r#"spec.type: Unsupported value: "Ingress": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#,
        ),
        (
            |s| {
                s.spec
                    .as_mut()
                    .expect("spec")
                    .ports
                    .as_mut()
                    .expect("ports")[0]
                    .node_port = Some(30080)
            },
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            |s| s.metadata.name = Some("1web".into()),
            "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
        (
            |s| {
                let spec = s.spec.as_mut().expect("spec");
                spec.type_ = Some("ExternalName".into());
                spec.external_name = None;
            },
            "spec.externalName: Required value",
        ),
        (
            |s| s.spec.as_mut().expect("spec").external_traffic_policy = Some("Local".into()),
            r#"spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services"#,
        ),
    ];
    for (edit, want) in cases {
        let mut svc = defaulted(service(vec![port(None, 80)]));
        edit(&mut svc);
        let got = messages(&ServiceStrategy.validate(&svc));
        assert!(got.contains(&want.to_string()), "{want}: {got:#?}");
    }
}

#[test]
fn duplicate_port_protocol_pairs_are_reported_as_kubernetes_prints_them() {
    let svc = defaulted(service(vec![port(Some("a"), 80), port(Some("b"), 80)]));
    assert_eq!(
        messages(&ServiceStrategy.validate(&svc)),
        vec![
            r#"spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#
        ]
    );
}

#[test]
fn changing_type_drops_fields_of_the_old_type() {
    let mut old = service(vec![port(None, 80)]);
    old.spec.as_mut().expect("spec").type_ = Some("NodePort".into());
    let mut old = defaulted(old);
    old.spec
        .as_mut()
        .expect("spec")
        .ports
        .as_mut()
        .expect("ports")[0]
        .node_port = Some(30080);
    let mut new = old.clone();
    new.spec.as_mut().expect("spec").type_ = Some("ClusterIP".into());
    ServiceStrategy.prepare_for_update(&mut new, &old);
    ServiceStrategy.default(&mut new);
    let spec = new.spec.clone().expect("spec");
    assert_eq!(spec.ports.expect("ports")[0].node_port, None);
    assert_eq!(spec.external_traffic_policy, None);
    assert_eq!(
        messages(&ServiceStrategy.validate_update(&new, &old)),
        Vec::<String>::new()
    );
}

#[test]
fn cluster_ips_may_not_change_once_set() {
    let mut old = defaulted(service(vec![port(None, 80)]));
    let spec = old.spec.as_mut().expect("spec");
    spec.cluster_ip = Some("10.96.0.10".into());
    spec.cluster_ips = Some(vec!["10.96.0.10".into()]);
    let mut new = old.clone();
    let spec = new.spec.as_mut().expect("spec");
    spec.cluster_ip = Some("10.96.0.11".into());
    spec.cluster_ips = Some(vec!["10.96.0.11".into()]);
    assert_eq!(
        messages(&ServiceStrategy.validate_update(&new, &old)),
        vec![
            r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set"#
        ]
    );
    assert_eq!(
        ServiceStrategy.selectable_fields(&new),
        vec![
            ("spec.clusterIP", "10.96.0.11".to_string()),
            ("spec.type", "ClusterIP".to_string())
        ]
    );
}
