//! `InterPodAffinity` Score (`scoring.go`): every topology domain gets a
//! score from the pods already in it — the incoming pod's preferred
//! affinity terms add their weight for each matching pod, its preferred
//! anti-affinity terms subtract theirs, and, symmetrically, an existing
//! pod's preferred (anti-)affinity terms that match the incoming pod add
//! (subtract) their weight, and its required affinity terms add
//! `hardPodAffinityWeight`. A node's raw score is the sum over the domains
//! it is in; normalisation maps the lowest to 0 and the highest to 100.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::{InterPodAffinity, Term, TopologyCounts, preferred_terms};
use crate::framework::{
    CycleState, MAX_NODE_SCORE, NodeInfo, NodeScore, PodInfo, PreScorePlugin, ScorePlugin,
    Snapshot, Status,
};

const STATE_KEY: &str = "PreScoreInterPodAffinity";

struct State {
    topology_score: TopologyCounts,
}

/// Adds `weight * multiplier` to the domain of `node` for `term`'s key
/// when `term` matches `pod`.
fn process_term(
    scores: &mut TopologyCounts,
    term: &Term,
    weight: i64,
    pod: &Pod,
    node: &Node,
    multiplier: i64,
) {
    if !term.matches(pod) {
        return;
    }
    if let Some(v) = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(&term.topology_key))
    {
        *scores
            .entry(term.topology_key.clone())
            .or_default()
            .entry(v.clone())
            .or_default() += weight * multiplier;
    }
}

impl InterPodAffinity {
    /// `processExistingPod`: the incoming pod's preferences about
    /// `existing`, then `existing`'s terms about the incoming pod.
    fn process_existing_pod(
        &self,
        scores: &mut TopologyCounts,
        (affinity, anti): (&[Term], &[Term]),
        existing: &PodInfo,
        node: &Node,
        incoming: &Pod,
    ) {
        if node.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return;
        }
        for t in affinity {
            process_term(scores, t, t.weight, &existing.pod, node, 1);
        }
        for t in anti {
            process_term(scores, t, t.weight, &existing.pod, node, -1);
        }
        if !existing.has_affinity {
            return;
        }
        if self.hard_pod_affinity_weight > 0 {
            for t in super::required_terms(&existing.pod, false) {
                process_term(scores, &t, self.hard_pod_affinity_weight, incoming, node, 1);
            }
        }
        if self.ignore_preferred_terms_of_existing_pods {
            return;
        }
        for t in preferred_terms(&existing.pod, false) {
            process_term(scores, &t, t.weight, incoming, node, 1);
        }
        for t in preferred_terms(&existing.pod, true) {
            process_term(scores, &t, t.weight, incoming, node, -1);
        }
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _: &[Arc<NodeInfo>],
        all: &Snapshot,
    ) -> Status {
        let affinity = preferred_terms(pod, false);
        let anti = preferred_terms(pod, true);
        let has_constraints = !affinity.is_empty() || !anti.is_empty();
        if !has_constraints && self.ignore_preferred_terms_of_existing_pods {
            return Status::skip();
        }
        let mut scores: TopologyCounts = HashMap::new();
        if has_constraints {
            // The pod's own preferences can match any pod: every node.
            for node in all.iter() {
                for p in &node.pods {
                    self.process_existing_pod(&mut scores, (&affinity, &anti), p, &node.node, pod);
                }
            }
        } else {
            // Only pods with terms of their own can name the incoming pod.
            for node in all.nodes_with_affinity() {
                for p in node.pods.iter().filter(|p| p.has_affinity) {
                    self.process_existing_pod(&mut scores, (&[], &[]), p, &node.node, pod);
                }
            }
        }
        scores.retain(|_, domains| {
            domains.retain(|_, v| *v != 0);
            !domains.is_empty()
        });
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(
            STATE_KEY,
            State {
                topology_score: scores,
            },
        );
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<State>(STATE_KEY) else {
            return Ok(0);
        };
        let Some(labels) = node.node.metadata.labels.as_ref() else {
            return Ok(0);
        };
        Ok(s.topology_score
            .iter()
            .filter_map(|(key, domains)| labels.get(key).and_then(|v| domains.get(v)))
            .sum())
    }

    /// Min–max scaling: scores may be negative (anti-affinity), so the
    /// lowest maps to 0 rather than dividing by the highest.
    fn normalize(&self, state: &CycleState, _: &Pod, scores: &mut [NodeScore]) -> Status {
        if state.read::<State>(STATE_KEY).is_none() {
            return Status::success();
        }
        let min = scores.iter().map(|s| s.score).min().unwrap_or(0);
        let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            s.score = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((s.score - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node_with_pods, pod, run_score};
    use serde_json::{Value, json};

    fn with_app(name: &str, app: &str, affinity: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "labels": {"app": app}},
            "spec": {"containers": [], "affinity": affinity}})
    }

    fn weighted(weight: i32, app: &str) -> Value {
        json!([{"weight": weight, "podAffinityTerm": {"topologyKey": "zone",
            "labelSelector": {"matchLabels": {"app": app}}}}])
    }

    fn zone_node(name: &str, zone: &str, pods: Vec<Value>) -> Arc<NodeInfo> {
        node_with_pods(
            json!({"metadata": {"name": name, "labels": {"zone": zone}}}),
            pods,
        )
    }

    #[test]
    fn preferred_terms_weigh_domains_and_normalise_min_to_max() {
        let plugin = InterPodAffinity::default();
        let cases: Vec<(&str, Vec<Arc<NodeInfo>>, Value, Vec<i64>)> = vec![
            (
                "affinity to db prefers db's zone, every node in it",
                vec![
                    zone_node("a", "z1", vec![with_app("db", "db", json!(null))]),
                    zone_node("b", "z1", vec![]),
                    zone_node("c", "z2", vec![]),
                ],
                with_app(
                    "web",
                    "web",
                    json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted(5, "db")}}),
                ),
                vec![100, 100, 0],
            ),
            (
                "anti-affinity is negative: the zone with more matching pods scores lowest",
                vec![
                    zone_node(
                        "a",
                        "z1",
                        vec![
                            with_app("w1", "web", json!(null)),
                            with_app("w2", "web", json!(null)),
                        ],
                    ),
                    zone_node("b", "z2", vec![with_app("w3", "web", json!(null))]),
                    zone_node("c", "z3", vec![]),
                ],
                with_app(
                    "w4",
                    "web",
                    json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted(10, "web")}}),
                ),
                vec![0, 50, 100],
            ),
            (
                "weights add up: affinity 8 to db beats anti-affinity 2 to cache",
                vec![
                    zone_node(
                        "a",
                        "z1",
                        vec![
                            with_app("db", "db", json!(null)),
                            with_app("cache", "cache", json!(null)),
                        ],
                    ),
                    zone_node("b", "z2", vec![with_app("cache2", "cache", json!(null))]),
                    zone_node("c", "z3", vec![]),
                ],
                with_app(
                    "web",
                    "web",
                    json!({
                        "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted(8, "db")},
                        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted(2, "cache")}
                    }),
                ),
                // raw: a = 8 - 2 = 6, b = -2, c = 0 → (x + 2) * 100 / 8
                vec![100, 0, 25],
            ),
            (
                "an existing pod preferring the incoming pod pulls it into its zone",
                vec![
                    zone_node(
                        "a",
                        "z1",
                        vec![with_app(
                            "fan",
                            "fan",
                            json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted(3, "web")}}),
                        )],
                    ),
                    zone_node("b", "z2", vec![]),
                ],
                with_app("web", "web", json!(null)),
                vec![100, 0],
            ),
            (
                "an existing pod's required affinity to the incoming pod counts hardPodAffinityWeight",
                vec![
                    zone_node("a", "z1", vec![]),
                    zone_node(
                        "b",
                        "z2",
                        vec![with_app(
                            "needy",
                            "needy",
                            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                                {"topologyKey": "zone", "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
                        )],
                    ),
                ],
                with_app("web", "web", json!(null)),
                vec![0, 100],
            ),
            (
                "an existing pod's preferred anti-affinity to the incoming pod pushes it away",
                vec![
                    zone_node(
                        "a",
                        "z1",
                        vec![with_app(
                            "hermit",
                            "hermit",
                            json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted(4, "web")}}),
                        )],
                    ),
                    zone_node("b", "z2", vec![]),
                ],
                with_app("web", "web", json!(null)),
                vec![0, 100],
            ),
            (
                "no terms anywhere: the plugin skips and scores nothing",
                vec![
                    zone_node("a", "z1", vec![with_app("db", "db", json!(null))]),
                    zone_node("b", "z2", vec![]),
                ],
                with_app("web", "web", json!(null)),
                vec![0, 0],
            ),
        ];
        for (name, nodes, incoming, want) in cases {
            assert_eq!(run_score(&plugin, &pod(incoming), &nodes), want, "{name}");
        }
    }

    #[test]
    fn existing_pods_preferences_can_be_ignored() {
        let plugin = InterPodAffinity {
            ignore_preferred_terms_of_existing_pods: true,
            ..InterPodAffinity::default()
        };
        let nodes = vec![
            zone_node(
                "a",
                "z1",
                vec![with_app(
                    "fan",
                    "fan",
                    json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": weighted(3, "web")}}),
                )],
            ),
            zone_node("b", "z2", vec![]),
        ];
        assert_eq!(
            run_score(&plugin, &pod(with_app("web", "web", json!(null))), &nodes),
            vec![0, 0]
        );
    }

    #[test]
    fn arguments_are_validated_naming_the_field() {
        let Err(e) = super::super::new(&json!({"hardPodAffinityWeight": 101})) else {
            panic!("a weight over 100 must be refused");
        };
        assert_eq!(e.field, "hardPodAffinityWeight");
        assert!(super::super::new(&json!({"hardPodAffinityWeight": 0})).is_ok());
    }
}
