//! `NodeAffinity`: `spec.nodeSelector` and required node affinity filter
//! nodes; preferred node affinity terms add their weights to the score.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PreferredSchedulingTerm,
};

use super::ArgsError;
use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, NodeInfo, NodeScore, Plugin, PreFilterPlugin,
    PreScorePlugin, ScorePlugin, Snapshot, Status, default_normalize_score,
};

pub const NAME: &str = "NodeAffinity";
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

pub fn new(_: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    Ok(Arc::new(NodeAffinity))
}

/// One requirement against a node's labels (or, for `matchFields`, its name).
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) => (op == "Gt" && v > b) || (op == "Lt" && v < b),
                _ => false,
            }
        }
        _ => false,
    }
}

/// A term matches when all its requirements do; an empty term matches nothing.
pub fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    name: &str,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(name)))
}

/// Whether the node satisfies the pod's nodeSelector and required affinity.
pub fn required_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let empty = BTreeMap::new();
    let labels = node.node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(sel) = spec.node_selector.as_ref()
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    match required_affinity(pod) {
        None => true,
        Some(terms) => terms.iter().any(|t| term_matches(t, labels, node.name())),
    }
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// The pod's required node affinity terms, if it has any.
fn required_affinity(pod: &Pod) -> Option<&[NodeSelectorTerm]> {
    pod.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .map(|r| r.node_selector_terms.as_slice())
}

fn preferred_affinity(pod: &Pod) -> &[PreferredSchedulingTerm] {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

impl PreFilterPlugin for NodeAffinity {
    /// As Kubernetes: a pod with neither a nodeSelector nor required node
    /// affinity skips the Filter, which then reads no node's labels.
    fn pre_filter(&self, _: &mut CycleState, pod: &Pod, _: &Snapshot) -> Status {
        let selector = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
        if selector.is_none() && required_affinity(pod).is_none() {
            return Status::skip();
        }
        Status::success()
    }
}

impl PreScorePlugin for NodeAffinity {
    /// As Kubernetes: no preferred terms, nothing to score.
    fn pre_score(
        &self,
        _: &mut CycleState,
        pod: &Pod,
        _: &[Arc<NodeInfo>],
        _: &Snapshot,
    ) -> Status {
        if preferred_affinity(pod).is_empty() {
            return Status::skip();
        }
        Status::success()
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if required_matches(pod, node) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let empty = BTreeMap::new();
        let labels = node.node.metadata.labels.as_ref().unwrap_or(&empty);
        Ok(preferred_affinity(pod)
            .iter()
            .filter(|t| t.weight != 0 && term_matches(&t.preference, labels, node.name()))
            .map(|t| i64::from(t.weight))
            .sum())
    }

    fn normalize(&self, _: &CycleState, _: &Pod, scores: &mut [NodeScore]) -> Status {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testutil::{node, pod, run_filter, run_score};
    use serde_json::{Value, json};

    fn labelled(name: &str, labels: Value) -> Arc<NodeInfo> {
        node(json!({"metadata": {"name": name, "labels": labels}}))
    }

    fn required(terms: Value) -> Pod {
        pod(
            json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}}),
        )
    }

    #[test]
    fn node_selector_and_required_affinity_filter_nodes() {
        let n = labelled("n1", json!({"zone": "a", "gpu": "2"}));
        let expr = |k: &str, op: &str, v: Value| json!([{"matchExpressions": [{"key": k, "operator": op, "values": v}]}]);
        let cases = [
            (
                "no constraints",
                pod(json!({"spec": {"containers": []}})),
                true,
            ),
            (
                "selector matches",
                pod(json!({"spec": {"containers": [], "nodeSelector": {"zone": "a"}}})),
                true,
            ),
            (
                "selector mismatches",
                pod(json!({"spec": {"containers": [], "nodeSelector": {"zone": "b"}}})),
                false,
            ),
            (
                "selector key missing",
                pod(json!({"spec": {"containers": [], "nodeSelector": {"disk": "ssd"}}})),
                false,
            ),
            ("In", required(expr("zone", "In", json!(["a", "b"]))), true),
            (
                "In mismatch",
                required(expr("zone", "In", json!(["b"]))),
                false,
            ),
            ("NotIn", required(expr("zone", "NotIn", json!(["b"]))), true),
            (
                "NotIn on missing key",
                required(expr("disk", "NotIn", json!(["x"]))),
                true,
            ),
            (
                "Exists",
                required(json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}])),
                true,
            ),
            (
                "DoesNotExist",
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}]),
                ),
                false,
            ),
            ("Gt", required(expr("gpu", "Gt", json!(["1"]))), true),
            ("Lt", required(expr("gpu", "Lt", json!(["1"]))), false),
            (
                "terms are ORed",
                required(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}])),
                true,
            ),
            (
                "an empty term matches nothing",
                required(json!([{}])),
                false,
            ),
            (
                "matchFields on the name",
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                ),
                true,
            ),
            (
                "matchFields on another name",
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
                ),
                false,
            ),
        ];
        for (name, p, fits) in cases {
            let s = run_filter(&NodeAffinity, &p, &n);
            if fits {
                assert_eq!(s.code, Code::Success, "{name}");
            } else {
                assert_eq!(s.code, Code::UnschedulableAndUnresolvable, "{name}");
                assert_eq!(s.reasons, vec![ERR_REASON_POD], "{name}");
            }
        }
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let nodes = vec![
            labelled("a", json!({"zone": "a"})),
            labelled("b", json!({"zone": "b", "ssd": "true"})),
            labelled("c", json!({})),
        ];
        let p = pod(
            json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 5, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}]}}}}),
        );
        assert_eq!(run_score(&NodeAffinity, &p, &nodes), vec![100, 50, 0]);
        let none = pod(json!({"spec": {"containers": []}}));
        assert_eq!(run_score(&NodeAffinity, &none, &nodes), vec![0, 0, 0]);
    }

    #[test]
    fn pods_without_node_constraints_skip_the_filter_and_without_preferences_the_score() {
        let mut state = CycleState::default();
        let all = Snapshot::from_nodes(vec![labelled("a", json!({"zone": "a"}))]);
        let code_pre_filter =
            |p: &Pod, state: &mut CycleState| NodeAffinity.pre_filter(state, p, &all).code;
        let none = pod(json!({"spec": {"containers": []}}));
        assert_eq!(code_pre_filter(&none, &mut state), Code::Skip);
        let selector = pod(json!({"spec": {"containers": [], "nodeSelector": {"zone": "a"}}}));
        assert_eq!(code_pre_filter(&selector, &mut state), Code::Success);
        let req = required(json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]));
        assert_eq!(code_pre_filter(&req, &mut state), Code::Success);

        let pre_score =
            |p: &Pod, state: &mut CycleState| NodeAffinity.pre_score(state, p, &all, &all).code;
        assert_eq!(pre_score(&none, &mut state), Code::Skip);
        assert_eq!(pre_score(&req, &mut state), Code::Skip);
        let preferred = pod(
            json!({"spec": {"containers": [], "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}]}}}}),
        );
        assert_eq!(pre_score(&preferred, &mut state), Code::Success);
    }
}
