//! The Pod strategy (`pkg/registry/core/pod/strategy.go`): pending status
//! and QoS class on create, the narrow set of spec fields an update may
//! change, and the pod field selectors.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus, Toleration};

use super::pod_defaults::default_pod;
use super::pod_validation::{SpecOf, validate_pod_spec, validate_tolerations};
use super::quantity::parse_nanos;
use super::validation::invalid_rendered;
use crate::admission::Admission;
use crate::registry::{FieldError, FieldPath, Strategy};

/// The Pod strategy, with the admission plugins that mutate new pods.
pub struct PodStrategy {
    pub admission: Admission,
}

impl PodStrategy {
    /// Every admission plugin on, as kube-apiserver runs by default.
    pub const DEFAULT: PodStrategy = PodStrategy {
        admission: Admission::ALL,
    };
}

/// The text of Kubernetes' refusal of a pod spec update.
pub const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `qos.GetPodQOS` over cpu and memory of all containers.
pub fn pod_qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    // Requests are read as defaulted from limits (a request missing for a
    // limited resource is the limit), whether or not the defaulting pass
    // has already run; read in place, since every create runs this.
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let Some(r) = &c.resources else {
            guaranteed = false;
            continue;
        };
        for name in ["cpu", "memory"] {
            let q = r
                .requests
                .as_ref()
                .and_then(|m| m.get(name))
                .or_else(|| r.limits.as_ref().and_then(|m| m.get(name)));
            if let Some(v) = q.and_then(parse_nanos).filter(|v| *v > 0) {
                *requests.entry(name).or_default() += v;
            }
        }
        let mut found = (false, false);
        for (name, q) in r.limits.iter().flatten() {
            let name = match name.as_str() {
                "cpu" => "cpu",
                "memory" => "memory",
                _ => continue,
            };
            if let Some(v) = parse_nanos(q).filter(|v| *v > 0) {
                if name == "cpu" {
                    found.0 = true;
                } else {
                    found.1 = true;
                }
                *limits.entry(name).or_default() += v;
            }
        }
        if found != (true, true) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

/// `validateOnlyAddedTolerations`: existing tolerations stay, except for
/// their tolerationSeconds.
fn only_added_tolerations(new: &PodSpec, old: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let new_t = new.tolerations.as_deref().unwrap_or(&[]);
    for o in old.tolerations.iter().flatten() {
        let kept = new_t.iter().any(|n| {
            let mut o = o.clone();
            o.toleration_seconds = n.toleration_seconds;
            &o == n
        });
        if !kept {
            return vec![FieldError::forbidden(
                path,
                "existing toleration can not be modified except its tolerationSeconds",
            )];
        }
    }
    validate_tolerations(new_t, path)
}

/// Lists the top-level spec fields that differ, Kubernetes prints a diff.
fn spec_diff(new: &PodSpec, old: &PodSpec) -> String {
    let (Ok(serde_json::Value::Object(n)), Ok(serde_json::Value::Object(o))) =
        (serde_json::to_value(new), serde_json::to_value(old))
    else {
        return String::new();
    };
    let mut keys: Vec<&String> = n.keys().chain(o.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| n.get(*k) != o.get(*k))
        .map(|k| format!("  spec.{k}: {} -> {}", render(o.get(k)), render(n.get(k))))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render(v: Option<&serde_json::Value>) -> String {
    v.map(|v| v.to_string())
        .unwrap_or_else(|| "<unset>".to_string())
}

fn validate_pod_update(new: &PodSpec, old: &PodSpec) -> Vec<FieldError> {
    let spec_path = FieldPath::new("spec");
    let mut errs = validate_pod_spec(new, &spec_path, SpecOf::Pod);
    let ads_path = spec_path.child("activeDeadlineSeconds");
    match (new.active_deadline_seconds, old.active_deadline_seconds) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(
                &ads_path,
                n,
                "must be between 0 and 2147483647, inclusive",
            ));
            return errs;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(FieldError::invalid(
                &ads_path,
                n,
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (None, Some(_)) => {
            errs.push(invalid_rendered(
                &ads_path,
                "null".to_string(),
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }
    if new.containers.len() != old.containers.len()
        || new.init_containers.as_ref().map(Vec::len) != old.init_containers.as_ref().map(Vec::len)
    {
        errs.push(FieldError::forbidden(
            &spec_path,
            &format!("{POD_UPDATE_FORBIDDEN}\n{}", spec_diff(new, old)),
        ));
        return errs;
    }
    // Copy what may change from the new spec onto the old one; whatever
    // still differs is a forbidden change.
    let mut munged = new.clone();
    for (m, o) in munged.containers.iter_mut().zip(&old.containers) {
        m.image.clone_from(&o.image);
    }
    for (m, o) in munged
        .init_containers
        .iter_mut()
        .flatten()
        .zip(old.init_containers.iter().flatten())
    {
        m.image.clone_from(&o.image);
    }
    munged.active_deadline_seconds = old.active_deadline_seconds;
    munged.tolerations.clone_from(&old.tolerations);
    let negative_to_one = old.termination_grace_period_seconds.is_some_and(|t| t < 0)
        && new.termination_grace_period_seconds == Some(1);
    if negative_to_one {
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds;
    }
    // Scheduling gates may only be removed.
    let old_gates = old.scheduling_gates.as_deref().unwrap_or(&[]);
    if new
        .scheduling_gates
        .iter()
        .flatten()
        .all(|g| old_gates.contains(g))
    {
        munged.scheduling_gates.clone_from(&old.scheduling_gates);
    }
    if &munged != old {
        errs.push(FieldError::forbidden(
            &spec_path,
            &format!("{POD_UPDATE_FORBIDDEN}\n{}", spec_diff(&munged, old)),
        ));
    }
    errs.extend(only_added_tolerations(
        new,
        old,
        &spec_path.child("tolerations"),
    ));
    errs
}

/// `v1.DefaultTolerationSeconds`-admission's taints, tolerated for 300s.
const DEFAULT_TOLERATED_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// What Kubernetes' default admission plugins add to every new pod and
/// `kubectl get pod -o yaml` therefore shows: the `default` service account
/// (ServiceAccount, with its token volume), priority 0 without a priority class (Priority), and
/// 300s tolerations of unready/unreachable nodes (DefaultTolerationSeconds).
/// Each step leaves what the pod already specifies alone; a plugin turned
/// off in `admission` adds nothing.
pub fn apply_default_admission(spec: &mut PodSpec, admission: &Admission) {
    if admission.service_account
        && spec
            .service_account_name
            .as_deref()
            .unwrap_or("")
            .is_empty()
    {
        spec.service_account_name = Some("default".to_string());
        spec.service_account = Some("default".to_string());
    }
    if admission.priority
        && spec.priority_class_name.as_deref().unwrap_or("").is_empty()
        && spec.priority.is_none()
    {
        spec.priority = Some(0);
        spec.preemption_policy
            .get_or_insert_with(|| "PreemptLowerPriority".to_string());
    }
    if admission.default_toleration_seconds {
        add_default_tolerations(spec);
    }
    if admission.service_account {
        super::pod_serviceaccount::mount_service_account_token(spec);
    }
}

/// DefaultTolerationSeconds, which also runs on pod updates.
fn add_default_tolerations(spec: &mut PodSpec) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for key in DEFAULT_TOLERATED_TAINTS {
        let tolerated = tolerations.iter().any(|t| {
            let t_key = t.key.as_deref().unwrap_or("");
            let effect = t.effect.as_deref().unwrap_or("");
            (t_key == key || t_key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".to_string()),
                effect: Some("NoExecute".to_string()),
                toleration_seconds: Some(300),
                value: None,
            });
        }
    }
}

impl Strategy for PodStrategy {
    const FIELD_SOURCES: &'static [&'static str] = &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    ];

    type Object = Pod;

    /// Kubernetes' pod `CheckGracefulDelete`: a pod no kubelet runs (not
    /// bound, or already finished) goes at once; otherwise it waits for its
    /// kubelet to stop it, up to the requested or the pod's grace period.
    fn grace_period(&self, pod: &Pod, requested: Option<i64>) -> Option<i64> {
        let spec = pod.spec.as_ref();
        let bound = spec
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("");
        if !bound || matches!(phase, "Failed" | "Succeeded") {
            return Some(0);
        }
        let default = spec
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Some(requested.unwrap_or(default).max(0))
    }

    fn default(&self, pod: &mut Pod) {
        default_pod(pod);
    }

    fn prepare_for_create(&self, pod: &mut Pod) {
        let spec = pod.spec.get_or_insert_with(Default::default);
        apply_default_admission(spec, &self.admission);
        let mut status = PodStatus {
            phase: Some("Pending".to_string()),
            qos_class: Some(pod_qos_class(spec).to_string()),
            ..Default::default()
        };
        if spec
            .scheduling_gates
            .as_ref()
            .is_some_and(|g| !g.is_empty())
        {
            status.conditions = Some(vec![PodCondition {
                type_: "PodScheduled".to_string(),
                status: "False".to_string(),
                reason: Some("SchedulingGated".to_string()),
                message: Some(
                    "Scheduling is blocked due to non-empty scheduling gates".to_string(),
                ),
                ..Default::default()
            }]);
        }
        pod.status = Some(status);
    }

    fn bound_node<'a>(&self, pod: &'a Pod) -> Option<&'a str> {
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
    }

    /// `assignPod`: the node name and a true PodScheduled condition.
    fn bind(&self, pod: &mut Pod, node: &str) {
        pod.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
        let conditions = pod
            .status
            .get_or_insert_with(Default::default)
            .conditions
            .get_or_insert_with(Vec::new);
        conditions.retain(|c| c.type_ != "PodScheduled");
        conditions.push(PodCondition {
            type_: "PodScheduled".to_string(),
            status: "True".to_string(),
            last_transition_time: Some(crate::registry::write::now()),
            ..Default::default()
        });
    }

    fn prepare_for_update(&self, new: &mut Pod, _old: &Pod) {
        if self.admission.default_toleration_seconds {
            add_default_tolerations(new.spec.get_or_insert_with(Default::default));
        }
    }

    fn validate(&self, pod: &Pod) -> Vec<FieldError> {
        let empty = PodSpec::default();
        validate_pod_spec(
            pod.spec.as_ref().unwrap_or(&empty),
            &FieldPath::new("spec"),
            SpecOf::Pod,
        )
    }

    fn validate_update(&self, new: &Pod, old: &Pod) -> Vec<FieldError> {
        let empty = PodSpec::default();
        validate_pod_update(
            new.spec.as_ref().unwrap_or(&empty),
            old.spec.as_ref().unwrap_or(&empty),
        )
    }

    fn selectable_fields(&self, pod: &Pod) -> Vec<(&'static str, String)> {
        // Runs for every watch cache event: borrow, never clone spec/status.
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let text = |v: Option<&String>| v.cloned().unwrap_or_default();
        let pod_ip = status
            .and_then(|s| s.pod_ips.as_ref())
            .and_then(|ips| ips.first())
            .map(|ip| &ip.ip)
            .or(status.and_then(|s| s.pod_ip.as_ref()));
        vec![
            (
                "spec.nodeName",
                text(spec.and_then(|s| s.node_name.as_ref())),
            ),
            (
                "spec.restartPolicy",
                text(spec.and_then(|s| s.restart_policy.as_ref())),
            ),
            (
                "spec.schedulerName",
                text(spec.and_then(|s| s.scheduler_name.as_ref())),
            ),
            (
                "spec.serviceAccountName",
                text(spec.and_then(|s| s.service_account_name.as_ref())),
            ),
            (
                "spec.hostNetwork",
                spec.and_then(|s| s.host_network)
                    .unwrap_or(false)
                    .to_string(),
            ),
            ("status.phase", text(status.and_then(|s| s.phase.as_ref()))),
            ("status.podIP", text(pod_ip)),
            (
                "status.nominatedNodeName",
                text(status.and_then(|s| s.nominated_node_name.as_ref())),
            ),
        ]
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;
