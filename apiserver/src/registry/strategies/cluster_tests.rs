//! Tests of the Namespace, Node and PriorityClass strategies.

use k8s_openapi::api::core::v1::{Namespace, NamespaceSpec, Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::registry::strategies::testutil::messages;

fn named(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        ..Default::default()
    }
}

#[test]
fn a_new_namespace_is_active_labelled_and_finalized() {
    let mut ns = Namespace {
        metadata: named("team-a"),
        ..Default::default()
    };
    NamespaceStrategy.default(&mut ns);
    NamespaceStrategy.prepare_for_create(&mut ns);
    let json = serde_json::to_value(&ns).expect("serializable");
    assert_eq!(
        json["metadata"]["labels"],
        serde_json::json!({"kubernetes.io/metadata.name": "team-a"})
    );
    assert_eq!(
        json["spec"],
        serde_json::json!({"finalizers": ["kubernetes"]})
    );
    assert_eq!(json["status"], serde_json::json!({"phase": "Active"}));
    assert_eq!(
        NamespaceStrategy.selectable_fields(&ns),
        vec![
            ("status.phase", "Active".to_string()),
            ("name", "team-a".to_string())
        ]
    );
    assert_eq!(NamespaceStrategy.name_rule(), NameRule::Dns1123Label);

    let mut update = ns.clone();
    update.spec = Some(NamespaceSpec { finalizers: None });
    NamespaceStrategy.prepare_for_update(&mut update, &ns);
    assert_eq!(
        update.spec, ns.spec,
        "finalizers change only through finalize"
    );

    let mut terminating = ns.clone();
    terminating.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
    );
    let mut release = terminating.clone();
    release.spec = Some(NamespaceSpec {
        finalizers: Some(vec!["example.com/added".into()]),
    });
    NamespaceStrategy.prepare_for_update(&mut release, &terminating);
    assert_eq!(
        release.spec,
        Some(NamespaceSpec { finalizers: None }),
        "a terminating namespace may drop spec finalizers but not add them"
    );
}

#[test]
fn namespace_finalizers_must_be_standard_or_qualified() {
    let ns = Namespace {
        metadata: named("a"),
        spec: Some(NamespaceSpec {
            finalizers: Some(vec![
                "kubernetes".into(),
                "custom".into(),
                "example.com/x".into(),
            ]),
        }),
        status: None,
    };
    assert_eq!(
        messages(&NamespaceStrategy.validate(&ns)),
        vec![
            r#"spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified"#
        ]
    );
}

fn node(taints: Vec<Taint>) -> Node {
    Node {
        metadata: named("n1"),
        spec: Some(NodeSpec {
            taints: Some(taints),
            pod_cidr: Some("10.244.0.0/24".into()),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            capacity: Some([("cpu".to_string(), Quantity("2".into()))].into()),
            ..Default::default()
        }),
    }
}

fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        ..Default::default()
    }
}

#[test]
fn nodes_default_allocatable_and_pod_cidrs() {
    let mut n = node(vec![]);
    NodeStrategy.default(&mut n);
    assert_eq!(
        n.spec.as_ref().and_then(|s| s.pod_cidrs.clone()),
        Some(vec!["10.244.0.0/24".to_string()])
    );
    assert_eq!(
        n.status.as_ref().and_then(|s| s.allocatable.clone()),
        n.status.as_ref().and_then(|s| s.capacity.clone())
    );
    assert_eq!(
        NodeStrategy.selectable_fields(&n),
        vec![("spec.unschedulable", "false".to_string())]
    );
}

#[test]
fn node_validation_reports_kubernetes_messages() {
    let mut n = node(vec![
        taint("a", "NoSchedule"),
        taint("a", "NoSchedule"),
        taint("b", "Sometimes"),
        taint("c", ""),
    ]);
    NodeStrategy.default(&mut n);
    assert_eq!(
        messages(&NodeStrategy.validate(&n)),
        vec![
            r#"spec.taints[1]: Duplicate value: core.Taint{Key:"a", Value:"", Effect:"NoSchedule", TimeAdded:(*v1.Time)(nil)}: taints must be unique by key and effect pair"#,
            r#"spec.taints[2].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute""#,
            "spec.taints[3].effect: Required value",
        ]
    );
    let old = {
        let mut o = node(vec![]);
        NodeStrategy.default(&mut o);
        o
    };
    let mut new = old.clone();
    new.spec.as_mut().expect("spec").pod_cidrs = Some(vec!["10.245.0.0/24".into()]);
    assert_eq!(
        messages(&NodeStrategy.validate_update(&new, &old)),
        vec![
            r#"spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid"#
        ]
    );
}

fn priority_class(name: &str, value: i32) -> PriorityClass {
    PriorityClass {
        metadata: named(name),
        value,
        ..Default::default()
    }
}

#[test]
fn priority_classes_default_preemption_and_bound_user_values() {
    let mut pc = priority_class("high", 1_000_000);
    PriorityClassStrategy.default(&mut pc);
    assert_eq!(
        pc.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    assert!(PriorityClassStrategy.validate(&pc).is_empty());
    let cases = [
        (
            priority_class("huge", 1_000_000_001),
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000",
        ),
        (
            priority_class("system-mine", 5),
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class",
        ),
        (
            priority_class("system-node-critical", 5),
            "metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of system-node-critical PriorityClass must be 2000001000",
        ),
    ];
    for (mut pc, want) in cases {
        PriorityClassStrategy.default(&mut pc);
        assert_eq!(
            messages(&PriorityClassStrategy.validate(&pc)),
            vec![want.to_string()]
        );
    }
    assert!(
        PriorityClassStrategy
            .validate(&priority_class("system-cluster-critical", 2_000_000_000))
            .is_empty()
    );
    let mut changed = pc.clone();
    changed.value = 7;
    changed.preemption_policy = Some("Never".into());
    assert_eq!(
        messages(&PriorityClassStrategy.validate_update(&changed, &pc)),
        vec![
            "value: Forbidden: may not be changed in an update.",
            r#"preemptionPolicy: Invalid value: "Never": field is immutable"#,
        ]
    );
}
