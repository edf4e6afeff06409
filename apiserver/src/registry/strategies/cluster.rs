//! Cluster-scoped kinds: Namespace (`pkg/registry/core/namespace`), Node
//! (`pkg/registry/core/node`) and PriorityClass (`pkg/registry/scheduling`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, NamespaceStatus, Node};
use k8s_openapi::api::scheduling::v1::PriorityClass;

use super::validation::{
    invalid_all, is_qualified_name, is_valid_label_value, validate_finalizers,
};
use crate::registry::{FieldError, FieldErrorKind, FieldPath, NameRule, Strategy};

pub struct NamespaceStrategy;
pub struct NodeStrategy;
pub struct PriorityClassStrategy;

/// `v1.LabelMetadataName`, set on every namespace to its own name.
pub const LABEL_METADATA_NAME: &str = "kubernetes.io/metadata.name";

impl Strategy for NamespaceStrategy {
    const FIELD_SOURCES: &'static [&'static str] = &["status.phase"];

    type Object = Namespace;

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Label
    }

    fn default(&self, ns: &mut Namespace) {
        if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
            ns.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(LABEL_METADATA_NAME.to_string(), name);
        }
        if let Some(status) = ns.status.as_mut()
            && status.phase.as_deref().unwrap_or("").is_empty()
        {
            status.phase = Some("Active".to_string());
        }
    }

    /// New namespaces are Active and carry the `kubernetes` finalizer,
    /// which the namespace controller removes once the content is gone.
    fn prepare_for_create(&self, ns: &mut Namespace) {
        ns.status = Some(NamespaceStatus {
            phase: Some("Active".to_string()),
            ..Default::default()
        });
        let finalizers = ns
            .spec
            .get_or_insert_with(Default::default)
            .finalizers
            .get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == "kubernetes") {
            finalizers.push("kubernetes".to_string());
        }
    }

    /// Spec finalizers change only through the `finalize` subresource in
    /// Kubernetes. We do not serve `finalize`, so an update of a
    /// terminating namespace may drop spec finalizers (never add them):
    /// that is how the namespace controller releases it.
    fn prepare_for_update(&self, new: &mut Namespace, old: &Namespace) {
        let old_finalizers = old.spec.as_ref().and_then(|s| s.finalizers.clone());
        let terminating = old.metadata.deletion_timestamp.is_some();
        let spec = new.spec.get_or_insert_with(Default::default);
        spec.finalizers = match (terminating, old_finalizers) {
            (true, Some(old)) => {
                let wanted = spec.finalizers.clone().unwrap_or_default();
                let kept: Vec<String> = old.into_iter().filter(|f| wanted.contains(f)).collect();
                (!kept.is_empty()).then_some(kept)
            }
            (_, old) => old,
        };
    }

    fn validate(&self, ns: &Namespace) -> Vec<FieldError> {
        let finalizers = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        validate_finalizers(&finalizers, &FieldPath::new("spec").child("finalizers"))
    }

    fn selectable_fields(&self, ns: &Namespace) -> Vec<(&'static str, String)> {
        let phase = ns
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        vec![
            ("status.phase", phase),
            // Kept by Kubernetes for old clients.
            ("name", ns.metadata.name.clone().unwrap_or_default()),
        ]
    }
}

fn is_valid_cidr(value: &str) -> bool {
    let Some((ip, bits)) = value.split_once('/') else {
        return false;
    };
    let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) else {
        return false;
    };
    bits <= if ip.is_ipv4() { 32 } else { 128 }
}

const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

fn validate_node(node: &Node) -> Vec<FieldError> {
    let spec = node.spec.clone().unwrap_or_default();
    let path = FieldPath::new("spec");
    let mut errs = Vec::new();
    let cidrs = spec.pod_cidrs.clone().unwrap_or_default();
    let cidr_path = path.child("podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        if !is_valid_cidr(c) {
            errs.push(FieldError::invalid(
                &cidr_path.index(i),
                c,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    if cidrs.len() > 1 {
        let families: BTreeSet<bool> = cidrs
            .iter()
            .filter_map(|c| {
                c.split_once('/')
                    .and_then(|(ip, _)| ip.parse::<IpAddr>().ok())
            })
            .map(|ip| ip.is_ipv4())
            .collect();
        if cidrs.len() > 2 || families.len() != 2 {
            errs.push(FieldError {
                field: cidr_path.render(),
                kind: FieldErrorKind::Invalid(super::gofmt::go_string_slice(&cidrs)),
                detail: "may specify no more than one CIDR for each IP family".to_string(),
            });
        }
    }
    let mut unique: BTreeSet<(String, String)> = BTreeSet::new();
    for (i, taint) in spec.taints.iter().flatten().enumerate() {
        let tp = path.item("taints", i);
        errs.extend(invalid_all(
            &tp.child("key"),
            &taint.key,
            is_qualified_name(&taint.key),
        ));
        let value = taint.value.clone().unwrap_or_default();
        let msgs = is_valid_label_value(&value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                &tp.child("value"),
                &value,
                &msgs.join(";"),
            ));
        }
        if taint.effect.is_empty() {
            errs.push(FieldError::required(&tp.child("effect"), ""));
        } else if !TAINT_EFFECTS.contains(&taint.effect.as_str()) {
            errs.push(FieldError::not_supported(
                &tp.child("effect"),
                &taint.effect,
                TAINT_EFFECTS,
            ));
        }
        if !unique.insert((taint.effect.clone(), taint.key.clone())) {
            errs.push(FieldError {
                field: tp.render(),
                kind: FieldErrorKind::Duplicate(format!(
                    "core.Taint{{Key:{:?}, Value:{value:?}, Effect:{:?}, TimeAdded:(*v1.Time)(nil)}}",
                    taint.key, taint.effect
                )),
                detail: "taints must be unique by key and effect pair".to_string(),
            });
        }
    }
    errs
}

const POD_CIDR_FORBIDDEN: &str = "node updates may not change podCIDR except from \"\" to valid";

impl Strategy for NodeStrategy {
    const FIELD_SOURCES: &'static [&'static str] = &["spec.unschedulable"];

    type Object = Node;

    fn default(&self, node: &mut Node) {
        if let Some(spec) = node.spec.as_mut() {
            // The v1 conversion keeps podCIDR and podCIDRs[0] in step.
            let single = spec.pod_cidr.clone().filter(|c| !c.is_empty());
            if spec.pod_cidrs.as_ref().is_none_or(|c| c.is_empty())
                && let Some(c) = single
            {
                spec.pod_cidrs = Some(vec![c]);
            }
            if let Some(first) = spec.pod_cidrs.as_ref().and_then(|c| c.first()) {
                spec.pod_cidr = Some(first.clone());
            }
        }
        if let Some(status) = node.status.as_mut()
            && status.allocatable.is_none()
        {
            status.allocatable.clone_from(&status.capacity);
        }
    }

    fn validate(&self, node: &Node) -> Vec<FieldError> {
        validate_node(node)
    }

    fn validate_update(&self, new: &Node, old: &Node) -> Vec<FieldError> {
        let mut errs = validate_node(new);
        let new_spec = new.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        let old_cidrs = old_spec.pod_cidrs.unwrap_or_default();
        let new_cidrs = new_spec.pod_cidrs.unwrap_or_default();
        let cidr_path = FieldPath::new("spec.podCIDRs");
        if !old_cidrs.is_empty() {
            if old_cidrs.len() != new_cidrs.len() {
                errs.push(FieldError::forbidden(&cidr_path, POD_CIDR_FORBIDDEN));
            } else {
                for (o, n) in old_cidrs.iter().zip(&new_cidrs) {
                    if o != n {
                        errs.push(FieldError::forbidden(&cidr_path, POD_CIDR_FORBIDDEN));
                    }
                }
            }
        }
        let old_provider = old_spec.provider_id.unwrap_or_default();
        if !old_provider.is_empty() && Some(&old_provider) != new_spec.provider_id.as_ref() {
            errs.push(FieldError::forbidden(
                &FieldPath::new("spec").child("providerID"),
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        errs
    }

    fn selectable_fields(&self, node: &Node) -> Vec<(&'static str, String)> {
        let unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        vec![("spec.unschedulable", unschedulable.to_string())]
    }
}

/// `scheduling.HighestUserDefinablePriority`.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i32 = 1_000_000_000;
/// The built-in classes (`scheduling.SystemPriorityClasses`).
const SYSTEM_PRIORITY_CLASSES: &[(&str, i32)] = &[
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];
const PREEMPTION_POLICIES: &[&str] = &["PreemptLowerPriority", "Never"];

fn known_system_class(pc: &PriorityClass, name: &str) -> Result<(), String> {
    let Some((_, value)) = SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) else {
        return Err(format!("{name} is not a known system priority class"));
    };
    if pc.value != *value {
        return Err(format!("value of {name} PriorityClass must be {value}"));
    }
    if pc.global_default.unwrap_or(false) {
        return Err(format!(
            "globalDefault of {name} PriorityClass must be false"
        ));
    }
    Ok(())
}

impl Strategy for PriorityClassStrategy {
    type Object = PriorityClass;

    fn default(&self, pc: &mut PriorityClass) {
        if pc.preemption_policy.is_none() {
            pc.preemption_policy = Some("PreemptLowerPriority".to_string());
        }
    }

    fn validate(&self, pc: &PriorityClass) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = pc.metadata.name.clone().unwrap_or_default();
        if name.starts_with("system-") {
            if let Err(e) = known_system_class(pc, &name) {
                errs.push(FieldError::forbidden(
                    &FieldPath::new("metadata").child("name"),
                    &format!(
                        "priority class names with 'system-' prefix are reserved for system use only. error: {e}"
                    ),
                ));
            }
        } else if pc.value > HIGHEST_USER_DEFINABLE_PRIORITY {
            errs.push(FieldError::forbidden(
                &FieldPath::new("value"),
                &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"),
            ));
        }
        if let Some(policy) = pc.preemption_policy.as_deref() {
            let p = FieldPath::new("preemptionPolicy");
            if policy.is_empty() {
                errs.push(FieldError::required(&p, ""));
            } else if !PREEMPTION_POLICIES.contains(&policy) {
                errs.push(FieldError::not_supported(&p, policy, PREEMPTION_POLICIES));
            }
        }
        errs
    }

    fn validate_update(&self, new: &PriorityClass, old: &PriorityClass) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if new.value != old.value {
            errs.push(FieldError::forbidden(
                &FieldPath::new("value"),
                "may not be changed in an update.",
            ));
        }
        if new.preemption_policy != old.preemption_policy {
            errs.push(FieldError::invalid(
                &FieldPath::new("preemptionPolicy"),
                new.preemption_policy.clone().unwrap_or_default(),
                "field is immutable",
            ));
        }
        errs
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
