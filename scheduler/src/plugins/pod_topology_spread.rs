//! `PodTopologySpread`: `topologySpreadConstraints` keep matching pods
//! spread over topology domains (zones, hosts). `DoNotSchedule`
//! constraints filter nodes whose domain would exceed `maxSkew` over the
//! least-loaded domain; `ScheduleAnyway` constraints prefer nodes in
//! less-loaded domains. Nodes count only if they carry every constraint's
//! topology key and (`nodeAffinityPolicy: Honor`, the default) match the
//! pod's node selector and required affinity.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::selector::LabelSel;
use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};

use super::ArgsError;
use super::node_affinity::required_matches;
use crate::framework::{Snapshot, 
    CycleState, FilterPlugin, MAX_NODE_SCORE, NodeInfo, NodeScore, Plugin, PreFilterPlugin,
    PreScorePlugin, ScorePlugin, Status,
};

pub const NAME: &str = "PodTopologySpread";
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const FILTER_KEY: &str = "PreFilterPodTopologySpread";
const SCORE_KEY: &str = "PreScorePodTopologySpread";

pub struct PodTopologySpread;

pub fn new(_: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    Ok(Arc::new(PodTopologySpread))
}

struct Constraint {
    key: String,
    max_skew: i64,
    min_domains: i64,
    /// `None` (no `labelSelector`) matches no pods.
    selector: Option<LabelSel>,
    honor_affinity: bool,
}

/// Per constraint: matching pods per domain value.
struct Counts {
    constraints: Vec<Constraint>,
    per_domain: Vec<HashMap<String, i64>>,
    self_match: Vec<i64>,
}

fn constraints(pod: &Pod, when: &str) -> Vec<Constraint> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.topology_spread_constraints.iter().flatten())
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c: &TopologySpreadConstraint| {
            let mut selector = c
                .label_selector
                .as_ref()
                .and_then(|s| LabelSel::from_label_selector(s).ok());
            // `matchLabelKeys` narrows the selector to pods sharing these
            // label values with the incoming pod (e.g. pod-template-hash).
            for k in c.match_label_keys.iter().flatten() {
                if let (Some(v), Some(sel)) = (labels.get(k), selector.as_mut()) {
                    sel.requirements
                        .push(common::selector::Requirement::Equals(k.clone(), v.clone()));
                }
            }
            Constraint {
                key: c.topology_key.clone(),
                max_skew: i64::from(c.max_skew),
                min_domains: i64::from(c.min_domains.unwrap_or(1)),
                selector,
                honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            }
        })
        .collect()
}

fn node_label<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a String> {
    node.node.metadata.labels.as_ref().and_then(|l| l.get(key))
}

fn count(pod: &Pod, cs: Vec<Constraint>, nodes: &[Arc<NodeInfo>]) -> Counts {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let empty = BTreeMap::new();
    let own = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let mut per_domain = vec![HashMap::new(); cs.len()];
    for node in nodes {
        if cs.iter().any(|c| node_label(node, &c.key).is_none()) {
            continue;
        }
        for (i, c) in cs.iter().enumerate() {
            if c.honor_affinity && !required_matches(pod, node) {
                continue;
            }
            let Some(domain) = node_label(node, &c.key) else {
                continue;
            };
            let n = node
                .pods
                .iter()
                .filter(|p| {
                    p.pod.metadata.namespace.as_deref().unwrap_or("default") == ns
                        && p.pod.metadata.deletion_timestamp.is_none()
                        && c.selector.as_ref().is_some_and(|s| {
                            s.matches(p.pod.metadata.labels.as_ref().unwrap_or(&empty))
                        })
                })
                .count() as i64;
            *per_domain[i].entry(domain.clone()).or_insert(0) += n;
        }
    }
    let self_match = cs
        .iter()
        .map(|c| i64::from(c.selector.as_ref().is_some_and(|s| s.matches(own))))
        .collect();
    Counts {
        constraints: cs,
        per_domain,
        self_match,
    }
}

impl Plugin for PodTopologySpread {
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

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, nodes: &Snapshot) -> Status {
        let cs = constraints(pod, "DoNotSchedule");
        if cs.is_empty() {
            return Status::skip();
        }
        state.write(FILTER_KEY, count(pod, cs, nodes));
        Status::success()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, _: &Pod, node: &NodeInfo) -> Status {
        let Some(counts) = state.read::<Counts>(FILTER_KEY) else {
            return Status::success();
        };
        for (i, c) in counts.constraints.iter().enumerate() {
            let Some(domain) = node_label(node, &c.key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let domains = &counts.per_domain[i];
            // Fewer domains than minDomains: the global minimum counts as 0.
            let min = if (domains.len() as i64) < c.min_domains {
                0
            } else {
                domains.values().copied().min().unwrap_or(0)
            };
            let here = domains.get(domain).copied().unwrap_or(0);
            if here + counts.self_match[i] - min > c.max_skew {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _: &[Arc<NodeInfo>],
        all: &Snapshot,
    ) -> Status {
        let cs = constraints(pod, "ScheduleAnyway");
        if cs.is_empty() {
            return Status::skip();
        }
        state.write(SCORE_KEY, count(pod, cs, all));
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, _: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let Some(counts) = state.read::<Counts>(SCORE_KEY) else {
            return Ok(0);
        };
        let mut score = 0.0;
        for (i, c) in counts.constraints.iter().enumerate() {
            let Some(domain) = node_label(node, &c.key) else {
                // Nodes without the key are scored lowest in normalisation.
                return Ok(-1);
            };
            let domains = &counts.per_domain[i];
            // More domains weigh more (`topologyNormalizingWeight`).
            let weight = ((domains.len() + 2) as f64).ln();
            let n = domains.get(domain).copied().unwrap_or(0) + c.max_skew - 1;
            score += n as f64 * weight;
        }
        Ok(score.round() as i64)
    }

    fn normalize(&self, _: &CycleState, _: &Pod, scores: &mut [NodeScore]) -> Status {
        let valid = scores.iter().filter(|s| s.score >= 0).map(|s| s.score);
        let (min, max) = valid.fold((i64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
        for s in scores.iter_mut() {
            s.score = if s.score < 0 {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - s.score) / max
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testutil::{node_with_pods, pod, run_filter, run_score};
    use serde_json::{Value, json};

    fn app(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "labels": {"app": "web"}}, "spec": {"containers": []}})
    }

    fn zone(name: &str, z: Option<&str>, pods: usize) -> Arc<NodeInfo> {
        let labels = match z {
            Some(z) => json!({"zone": z}),
            None => json!({}),
        };
        node_with_pods(
            json!({"metadata": {"name": name, "labels": labels}}),
            (0..pods).map(|i| app(&format!("{name}-{i}"))).collect(),
        )
    }

    fn spread(when: &str, max_skew: i32) -> Pod {
        let mut p = app("new");
        p["spec"]["topologySpreadConstraints"] = json!([{"maxSkew": max_skew, "topologyKey": "zone",
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}]);
        pod(p)
    }

    fn filter_all(p: &Pod, nodes: &[Arc<NodeInfo>]) -> Vec<Code> {
        let mut state = CycleState::default();
        PodTopologySpread.pre_filter(&mut state, p, &Snapshot::from_nodes(nodes.to_vec()));
        nodes
            .iter()
            .map(|n| PodTopologySpread.filter(&state, p, n).code)
            .collect()
    }

    #[test]
    fn do_not_schedule_keeps_the_skew_within_max_skew() {
        let nodes = vec![
            zone("a", Some("z1"), 2),
            zone("b", Some("z2"), 1),
            zone("c", None, 0),
        ];
        let cases = [
            (
                1,
                vec![
                    Code::Unschedulable,
                    Code::Success,
                    Code::UnschedulableAndUnresolvable,
                ],
            ),
            (
                2,
                vec![
                    Code::Success,
                    Code::Success,
                    Code::UnschedulableAndUnresolvable,
                ],
            ),
        ];
        for (skew, want) in cases {
            assert_eq!(
                filter_all(&spread("DoNotSchedule", skew), &nodes),
                want,
                "maxSkew {skew}"
            );
        }
        let s = run_filter(
            &PodTopologySpread,
            &spread("DoNotSchedule", 1),
            &zone("x", None, 0),
        );
        assert_eq!(s.reasons, vec![ERR_REASON_NODE_LABEL_NOT_MATCH]);
    }

    #[test]
    fn pods_without_constraints_are_not_filtered() {
        let nodes = vec![zone("a", None, 3)];
        assert_eq!(filter_all(&pod(app("new")), &nodes), vec![Code::Success]);
    }

    #[test]
    fn schedule_anyway_prefers_the_emptier_domain() {
        let nodes = vec![
            zone("a", Some("z1"), 3),
            zone("b", Some("z2"), 0),
            zone("c", None, 0),
        ];
        let scores = run_score(&PodTopologySpread, &spread("ScheduleAnyway", 1), &nodes);
        assert_eq!(scores[1], 100);
        assert!(scores[0] < scores[1], "{scores:?}");
        assert_eq!(scores[2], 0);
    }
}
