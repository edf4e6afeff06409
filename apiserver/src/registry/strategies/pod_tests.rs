//! Tests of the Pod strategy, pod defaults and pod spec validation.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, Pod, PodDNSConfig, PodSecurityContext,
    PodSpec, Probe, ResourceRequirements, TCPSocketAction, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::registry::strategies::testutil::{container, messages, meta};

fn pod(containers: Vec<Container>) -> Pod {
    Pod {
        metadata: meta("web"),
        spec: Some(PodSpec {
            containers,
            ..Default::default()
        }),
        status: None,
    }
}

fn defaulted(mut p: Pod) -> Pod {
    PodStrategy::DEFAULT.default(&mut p);
    p
}

fn resources(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Option<ResourceRequirements> {
    let map = |pairs: &[(&str, &str)]| {
        (!pairs.is_empty()).then(|| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect()
        })
    };
    Some(ResourceRequirements {
        requests: map(requests),
        limits: map(limits),
        ..Default::default()
    })
}

#[test]
fn a_minimal_pod_gets_exactly_kubernetes_defaults() {
    let mut c = container("web", "nginx");
    c.ports = Some(vec![ContainerPort {
        container_port: 80,
        ..Default::default()
    }]);
    c.readiness_probe = Some(Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(80),
            host: None,
        }),
        ..Default::default()
    });
    c.resources = resources(&[], &[("cpu", "500m")]);
    let mut p = pod(vec![c]);
    p.spec.as_mut().expect("spec").volumes = Some(vec![Volume {
        name: "cache".into(),
        ..Default::default()
    }]);
    let p = defaulted(p);
    assert_eq!(
        serde_json::to_value(&p.spec).expect("serializable"),
        serde_json::json!({
            "containers": [{
                "name": "web",
                "image": "nginx",
                "imagePullPolicy": "Always",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "readinessProbe": {
                    "tcpSocket": {"port": 80},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "500m"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
            }],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": true,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
            "volumes": [{"name": "cache", "emptyDir": {}}],
        })
    );
    assert_eq!(defaulted(p.clone()), p, "defaulting is idempotent");
    assert_eq!(
        messages(&PodStrategy::DEFAULT.validate(&p)),
        Vec::<String>::new()
    );
}

#[test]
fn a_container_without_resources_gets_empty_resources() {
    let p = defaulted(pod(vec![container("web", "nginx:1.27")]));
    let spec = serde_json::to_value(&p.spec).expect("serializable");
    assert_eq!(spec["containers"][0]["resources"], serde_json::json!({}));
    assert_eq!(defaulted(p.clone()), p, "defaulting is idempotent");
}

#[test]
fn a_created_pod_is_pending_with_its_qos_class() {
    let cases = [
        (vec![container("a", "nginx")], "BestEffort"),
        (
            vec![Container {
                resources: resources(&[], &[("cpu", "1"), ("memory", "1Gi")]),
                ..container("a", "nginx")
            }],
            "Guaranteed",
        ),
        (
            vec![Container {
                resources: resources(&[("cpu", "100m")], &[("cpu", "1"), ("memory", "1Gi")]),
                ..container("a", "nginx")
            }],
            "Burstable",
        ),
        (
            vec![
                Container {
                    resources: resources(&[], &[("cpu", "1"), ("memory", "1Gi")]),
                    ..container("a", "nginx")
                },
                container("b", "nginx"),
            ],
            "Burstable",
        ),
    ];
    for (containers, want) in cases {
        let mut p = pod(containers);
        PodStrategy::DEFAULT.prepare_for_create(&mut p);
        let status = p.status.expect("status");
        assert_eq!(status.phase.as_deref(), Some("Pending"));
        assert_eq!(status.qos_class.as_deref(), Some(want));
    }
}

#[test]
fn pod_validation_reports_kubernetes_messages() {
    type Edit = fn(&mut PodSpec);
    let cases: Vec<(Edit, &str)> = vec![
        (|s| s.containers.clear(), "spec.containers: Required value"),
        (
            |s| s.containers[0].name = "Web".into(),
            "spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        (
            |s| s.containers.push(container("web", "busybox")),
            r#"spec.containers[1].name: Duplicate value: "web""#,
        ),
        (
            |s| s.init_containers = Some(vec![container("web", "busybox")]),
            r#"spec.initContainers[0].name: Duplicate value: "web""#,
        ),
        (
            |s| s.containers[0].image = None,
            "spec.containers[0].image: Required value",
        ),
        (
            |s| {
                s.containers[0].ports = Some(vec![ContainerPort {
                    container_port: 70000,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }])
            },
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            |s| {
                s.containers[0].ports = Some(vec![
                    ContainerPort {
                        container_port: 80,
                        name: Some("http".into()),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    },
                    ContainerPort {
                        container_port: 81,
                        name: Some("http".into()),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    },
                ])
            },
            r#"spec.containers[0].ports[1].name: Duplicate value: "http""#,
        ),
        (
            |s| {
                s.containers[0].ports = Some(vec![ContainerPort {
                    container_port: 80,
                    name: Some("a-very-long-port-name".into()),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }])
            },
            r#"spec.containers[0].ports[0].name: Invalid value: "a-very-long-port-name": must be no more than 15 characters"#,
        ),
        (
            |s| {
                s.containers[0].ports = Some(vec![ContainerPort {
                    container_port: 80,
                    protocol: Some("ICMP".into()),
                    ..Default::default()
                }])
            },
            r#"spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP""#,
        ),
        (
            |s| {
                let port = ContainerPort {
                    container_port: 80,
                    host_port: Some(8080),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                };
                s.containers[0].ports = Some(vec![port.clone()]);
                let mut other = container("sidecar", "busybox");
                other.ports = Some(vec![port]);
                s.containers.push(other);
            },
            r#"spec.containers[1].ports[0].hostPort: Duplicate value: "/TCP/8080""#,
        ),
        (
            |s| {
                s.security_context = Some(PodSecurityContext {
                    run_as_user: Some(-1),
                    ..Default::default()
                })
            },
            "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        ),
        (
            |s| {
                s.dns_config = Some(PodDNSConfig {
                    nameservers: Some(vec!["8.8.8.8".into(), "x".into()]),
                    ..Default::default()
                })
            },
            r#"spec.dnsConfig.nameservers[1]: Invalid value: "x": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#,
        ),
        (
            |s| s.containers[0].env_from = Some(vec![EnvFromSource::default()]),
            "spec.containers[0].envFrom: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`",
        ),
        (
            |s| s.restart_policy = Some("Sometimes".into()),
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#,
        ),
        (
            |s| s.dns_policy = Some("Google".into()),
            r#"spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None""#,
        ),
        (
            |s| s.containers[0].resources = resources(&[("cpu", "2")], &[("cpu", "1")]),
            r#"spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1"#,
        ),
        (
            |s| s.containers[0].resources = resources(&[("cpu", "-1")], &[]),
            r#"spec.containers[0].resources.requests[cpu]: Invalid value: "-1": must be greater than or equal to 0"#,
        ),
        (
            |s| s.containers[0].resources = resources(&[("gpu", "1")], &[]),
            r#"spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers"#,
        ),
        (
            |s| {
                s.containers[0].volume_mounts = Some(vec![VolumeMount {
                    name: "data".into(),
                    mount_path: "/data".into(),
                    ..Default::default()
                }])
            },
            r#"spec.containers[0].volumeMounts[0].name: Not found: "data""#,
        ),
        (
            |s| {
                s.volumes = Some(vec![
                    Volume {
                        name: "a".into(),
                        empty_dir: Some(Default::default()),
                        ..Default::default()
                    },
                    Volume {
                        name: "a".into(),
                        empty_dir: Some(Default::default()),
                        ..Default::default()
                    },
                ])
            },
            r#"spec.volumes[1].name: Duplicate value: "a""#,
        ),
        (
            |s| {
                s.containers[0].env = Some(vec![EnvVar {
                    name: "A=B".into(),
                    ..Default::default()
                }])
            },
            r#"spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters other than '='"#,
        ),
        (
            |s| {
                s.containers[0].liveness_probe = Some(Probe {
                    success_threshold: Some(2),
                    failure_threshold: Some(3),
                    period_seconds: Some(10),
                    timeout_seconds: Some(1),
                    tcp_socket: Some(TCPSocketAction {
                        port: IntOrString::Int(80),
                        host: None,
                    }),
                    ..Default::default()
                })
            },
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        ),
        (
            |s| s.containers[0].readiness_probe = Some(Probe::default()),
            "spec.containers[0].readinessProbe: Required value: must specify a handler type",
        ),
        (
            |s| {
                s.tolerations = Some(vec![Toleration {
                    operator: Some("Equal".into()),
                    value: Some("x".into()),
                    ..Default::default()
                }])
            },
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ),
        (
            |s| s.active_deadline_seconds = Some(0),
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        ),
        (
            |s| s.containers[0].restart_policy = Some("Always".into()),
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
        ),
    ];
    for (edit, want) in cases {
        let mut p = defaulted(pod(vec![container("web", "nginx:1.27")]));
        edit(p.spec.as_mut().expect("spec"));
        let got = messages(&PodStrategy::DEFAULT.validate(&p));
        assert!(got.contains(&want.to_string()), "{want}: {got:#?}");
    }
}

#[test]
fn pod_updates_may_change_only_images_deadlines_and_added_tolerations() {
    let old = defaulted(pod(vec![container("web", "nginx:1.26")]));
    let mut image = old.clone();
    image.spec.as_mut().expect("spec").containers[0].image = Some("nginx:1.27".into());
    assert!(
        PodStrategy::DEFAULT
            .validate_update(&image, &old)
            .is_empty()
    );

    let mut added = old.clone();
    added.spec.as_mut().expect("spec").tolerations = Some(vec![Toleration {
        operator: Some("Exists".into()),
        ..Default::default()
    }]);
    assert!(
        PodStrategy::DEFAULT
            .validate_update(&added, &old)
            .is_empty()
    );
    let got = messages(&PodStrategy::DEFAULT.validate_update(&old, &added));
    assert_eq!(
        got,
        vec![
            "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
        ]
    );

    let mut port = old.clone();
    port.spec.as_mut().expect("spec").containers[0].ports = Some(vec![ContainerPort {
        container_port: 80,
        protocol: Some("TCP".into()),
        ..Default::default()
    }]);
    let got = messages(&PodStrategy::DEFAULT.validate_update(&port, &old));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(
        got[0].starts_with(&format!("spec: Forbidden: {POD_UPDATE_FORBIDDEN}\n")),
        "{got:#?}"
    );

    let mut deadline = old.clone();
    deadline
        .spec
        .as_mut()
        .expect("spec")
        .active_deadline_seconds = Some(30);
    assert!(
        PodStrategy::DEFAULT
            .validate_update(&deadline, &old)
            .is_empty()
    );
    let mut longer = deadline.clone();
    longer.spec.as_mut().expect("spec").active_deadline_seconds = Some(60);
    assert_eq!(
        messages(&PodStrategy::DEFAULT.validate_update(&longer, &deadline)),
        vec![
            "spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal to previous value"
        ]
    );
    assert_eq!(
        messages(&PodStrategy::DEFAULT.validate_update(&old, &deadline)),
        vec![
            "spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"
        ]
    );
}

#[test]
fn created_pods_get_what_default_admission_adds() {
    let mut p = defaulted(pod(vec![container("web", "nginx")]));
    PodStrategy::DEFAULT.prepare_for_create(&mut p);
    let spec = serde_json::to_value(&p.spec).expect("serializable");
    assert_eq!(spec["serviceAccountName"], "default");
    assert_eq!(spec["serviceAccount"], "default");
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(
        spec["tolerations"],
        serde_json::json!([
            {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
        ])
    );

    let mut tolerant = pod(vec![container("web", "nginx")]);
    let spec = tolerant.spec.as_mut().expect("spec");
    spec.tolerations = Some(vec![Toleration {
        operator: Some("Exists".into()),
        ..Default::default()
    }]);
    spec.service_account_name = Some("builder".into());
    spec.priority_class_name = Some("high".into());
    PodStrategy::DEFAULT.prepare_for_create(&mut tolerant);
    let spec = tolerant.spec.expect("spec");
    assert_eq!(spec.tolerations.map(|t| t.len()), Some(1));
    assert_eq!(spec.service_account_name.as_deref(), Some("builder"));
    assert_eq!(
        spec.priority, None,
        "a class's value is resolved by the store"
    );

    let mut created = defaulted(pod(vec![container("web", "nginx")]));
    PodStrategy::DEFAULT.prepare_for_create(&mut created);
    let mut update = created.clone();
    update.spec.as_mut().expect("spec").tolerations = None;
    PodStrategy::DEFAULT.prepare_for_update(&mut update, &created);
    assert!(
        PodStrategy::DEFAULT
            .validate_update(&update, &created)
            .is_empty()
    );
}

#[test]
fn pods_expose_kubernetes_field_selectors() {
    let mut p = defaulted(pod(vec![container("web", "nginx")]));
    p.spec.as_mut().expect("spec").node_name = Some("node-1".into());
    PodStrategy::DEFAULT.prepare_for_create(&mut p);
    assert_eq!(
        PodStrategy::DEFAULT.selectable_fields(&p),
        vec![
            ("spec.nodeName", "node-1".to_string()),
            ("spec.restartPolicy", "Always".to_string()),
            ("spec.schedulerName", "default-scheduler".to_string()),
            ("spec.serviceAccountName", "default".to_string()),
            ("spec.hostNetwork", "false".to_string()),
            ("status.phase", "Pending".to_string()),
            ("status.podIP", String::new()),
            ("status.nominatedNodeName", String::new()),
        ]
    );
}

#[test]
fn disabled_admission_plugins_add_nothing_to_new_pods() {
    let strategy = PodStrategy {
        admission: Admission::disabling(&[
            "ServiceAccount",
            "Priority",
            "DefaultTolerationSeconds",
        ])
        .expect("known plugins"),
    };
    let mut p = defaulted(pod(vec![container("web", "nginx")]));
    strategy.prepare_for_create(&mut p);
    let spec = p.spec.expect("spec");
    assert_eq!(spec.service_account_name, None);
    assert_eq!(spec.priority, None);
    assert_eq!(spec.tolerations.map(|t| t.len()).unwrap_or(0), 0);
    assert!(
        spec.volumes.unwrap_or_default().is_empty(),
        "no token volume"
    );
    assert!(
        spec.containers[0]
            .volume_mounts
            .as_ref()
            .is_none_or(|m| m.is_empty())
    );

    // ServiceAccount alone off: the other plugins still run.
    let strategy = PodStrategy {
        admission: Admission::disabling(&["ServiceAccount"]).expect("known plugin"),
    };
    let mut p = defaulted(pod(vec![container("web", "nginx")]));
    strategy.prepare_for_create(&mut p);
    let spec = p.spec.expect("spec");
    assert_eq!(spec.priority, Some(0));
    assert_eq!(spec.tolerations.map(|t| t.len()), Some(2));
    assert!(spec.volumes.unwrap_or_default().is_empty());
}

#[test]
fn a_volume_needs_exactly_one_source() {
    use k8s_openapi::api::core::v1::{
        EmptyDirVolumeSource, HostPathVolumeSource, ImageVolumeSource,
    };
    let with_volume = |v: Volume| {
        let mut p = defaulted(pod(vec![container("a", "nginx")]));
        if let Some(spec) = p.spec.as_mut() {
            spec.volumes = Some(vec![v]);
        }
        messages(&PodStrategy::DEFAULT.validate(&p))
    };
    let bare = Volume {
        name: "v".into(),
        ..Default::default()
    };
    assert_eq!(
        with_volume(bare.clone()),
        ["spec.volumes[0]: Required value: must specify a volume type"]
    );
    let two = Volume {
        empty_dir: Some(EmptyDirVolumeSource::default()),
        host_path: Some(HostPathVolumeSource {
            path: "/data".into(),
            ..Default::default()
        }),
        ..bare.clone()
    };
    assert_eq!(
        with_volume(two),
        ["spec.volumes[0]: Forbidden: may not specify more than 1 volume type"]
    );
    // The newest source counts like the others.
    let image = Volume {
        image: Some(ImageVolumeSource {
            reference: Some("registry.example/data:1".into()),
            ..Default::default()
        }),
        ..bare
    };
    assert_eq!(with_volume(image), Vec::<String>::new());
}
