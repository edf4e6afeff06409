//! `TaintToleration`: a pod may not land on a node with a NoSchedule or
//! NoExecute taint it does not tolerate; untolerated PreferNoSchedule
//! taints lower the node's score.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};

use super::ArgsError;
use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, NodeInfo, NodeScore, Plugin, ScorePlugin, Status,
    default_normalize_score,
};

pub const NAME: &str = "TaintToleration";

pub struct TaintToleration;

pub fn new(_: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    Ok(Arc::new(TaintToleration))
}

/// `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            key == taint.key
                && t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

fn taints(node: &NodeInfo) -> &[Taint] {
    &node.taints
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let tols = tolerations(pod);
        let untolerated = taints(node).iter().find(|taint| {
            matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
                && !tols.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Status::success(),
            Some(taint) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        // Only tolerations that apply to PreferNoSchedule count here.
        let tols: Vec<&Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        let count = taints(node)
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| !tols.iter().any(|t| tolerates(t, taint)))
            .count();
        Ok(count as i64)
    }

    fn normalize(&self, _: &CycleState, _: &Pod, scores: &mut [NodeScore]) -> Status {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testutil::{node, pod, run_filter, run_score};
    use serde_json::{Value, json};

    fn tainted(taints: Value) -> Arc<NodeInfo> {
        node(json!({"metadata": {"name": "n"}, "spec": {"taints": taints}}))
    }

    fn with_tolerations(t: Value) -> Pod {
        pod(json!({"spec": {"containers": [], "tolerations": t}}))
    }

    #[test]
    fn untolerated_hard_taints_reject_the_node() {
        let gpu = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let cases = [
            ("no taints", json!([]), json!([]), None),
            (
                "untolerated NoSchedule",
                gpu.clone(),
                json!([]),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "tolerated by Equal",
                gpu.clone(),
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
                None,
            ),
            (
                "tolerated by Exists",
                gpu.clone(),
                json!([{"key": "dedicated", "operator": "Exists"}]),
                None,
            ),
            (
                "tolerated by the empty-key Exists",
                gpu.clone(),
                json!([{"operator": "Exists"}]),
                None,
            ),
            (
                "wrong value",
                gpu.clone(),
                json!([{"key": "dedicated", "value": "cpu"}]),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "wrong effect",
                gpu,
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                "NoExecute counts",
                json!([{"key": "k", "effect": "NoExecute"}]),
                json!([]),
                Some("node(s) had untolerated taint {k: }"),
            ),
            (
                "PreferNoSchedule does not filter",
                json!([{"key": "k", "effect": "PreferNoSchedule"}]),
                json!([]),
                None,
            ),
        ];
        for (name, taints, tols, want) in cases {
            let s = run_filter(&TaintToleration, &with_tolerations(tols), &tainted(taints));
            match want {
                None => assert_eq!(s.code, Code::Success, "{name}"),
                Some(reason) => {
                    assert_eq!(s.code, Code::UnschedulableAndUnresolvable, "{name}");
                    assert_eq!(s.reasons, vec![reason], "{name}");
                }
            }
        }
    }

    #[test]
    fn fewer_untolerated_soft_taints_score_higher() {
        let nodes = vec![
            tainted(json!([])),
            tainted(json!([{"key": "a", "effect": "PreferNoSchedule"}])),
            tainted(
                json!([{"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "effect": "PreferNoSchedule"}]),
            ),
        ];
        let cases = [
            ("no tolerations", json!([]), vec![100, 50, 0]),
            (
                "tolerates a",
                json!([{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"}]),
                vec![100, 100, 0],
            ),
            (
                "tolerates everything",
                json!([{"operator": "Exists"}]),
                vec![100, 100, 100],
            ),
        ];
        for (name, tols, want) in cases {
            assert_eq!(
                run_score(&TaintToleration, &with_tolerations(tols), &nodes),
                want,
                "{name}"
            );
        }
    }
}
