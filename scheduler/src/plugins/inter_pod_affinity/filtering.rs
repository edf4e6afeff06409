//! `InterPodAffinity` Filter (`filtering.go`): required pod affinity and
//! anti-affinity. A node fits when, in its topology domain, pods match
//! each of the incoming pod's affinity terms (or none anywhere do and the
//! pod matches its own terms: the first pod of a group), no pod matches
//! its anti-affinity terms, and no existing pod's anti-affinity rejects it.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;

use super::{InterPodAffinity, Term, TopologyCounts, label, required_terms};
use crate::framework::{CycleState, FilterPlugin, NodeInfo, PreFilterPlugin, Snapshot, Status};

pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
const STATE_KEY: &str = "PreFilterInterPodAffinity";

struct State {
    affinity: Vec<Term>,
    anti_affinity: Vec<Term>,
    affinity_counts: TopologyCounts,
    anti_affinity_counts: TopologyCounts,
    existing_anti_counts: TopologyCounts,
}

fn add(counts: &mut TopologyCounts, node: &NodeInfo, key: &str, n: i64) {
    if let Some(v) = label(node, key) {
        *counts
            .entry(key.to_string())
            .or_default()
            .entry(v.clone())
            .or_default() += n;
    }
}

fn get(counts: &TopologyCounts, key: &str, value: &str) -> i64 {
    counts
        .get(key)
        .and_then(|m| m.get(value))
        .copied()
        .unwrap_or(0)
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> Status {
        let mut s = State {
            affinity: required_terms(pod, false),
            anti_affinity: required_terms(pod, true),
            affinity_counts: HashMap::new(),
            anti_affinity_counts: HashMap::new(),
            existing_anti_counts: HashMap::new(),
        };
        // Existing pods' anti-affinity against the incoming pod: only the
        // nodes indexed as holding such pods need a look.
        for node in snapshot.nodes_with_required_anti_affinity() {
            for p in node.pods.iter().filter(|p| p.has_required_anti_affinity) {
                for t in required_terms(&p.pod, true) {
                    if t.matches(pod) {
                        add(&mut s.existing_anti_counts, node, &t.topology_key, 1);
                    }
                }
            }
        }
        // The incoming pod's own terms can match any pod: every node.
        if !s.affinity.is_empty() || !s.anti_affinity.is_empty() {
            for node in snapshot.iter() {
                for p in &node.pods {
                    if !s.affinity.is_empty() && s.affinity.iter().all(|t| t.matches(&p.pod)) {
                        for t in &s.affinity {
                            add(&mut s.affinity_counts, node, &t.topology_key, 1);
                        }
                    }
                    for t in &s.anti_affinity {
                        if t.matches(&p.pod) {
                            add(&mut s.anti_affinity_counts, node, &t.topology_key, 1);
                        }
                    }
                }
            }
        }
        if s.affinity.is_empty() && s.anti_affinity.is_empty() && s.existing_anti_counts.is_empty()
        {
            return Status::skip();
        }
        state.write(STATE_KEY, s);
        Status::success()
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<State>(STATE_KEY) else {
            return Status::success();
        };
        let mut pods_exist = true;
        for t in &s.affinity {
            match label(node, &t.topology_key) {
                None => return Status::unresolvable(ERR_REASON_AFFINITY),
                Some(v) => {
                    if get(&s.affinity_counts, &t.topology_key, v) <= 0 {
                        pods_exist = false;
                    }
                }
            }
        }
        // The first pod of a group that selects itself may go anywhere.
        let first_of_group =
            s.affinity_counts.is_empty() && s.affinity.iter().all(|t| t.matches(pod));
        if !(pods_exist || first_of_group) {
            return Status::unresolvable(ERR_REASON_AFFINITY);
        }
        for t in &s.anti_affinity {
            if let Some(v) = label(node, &t.topology_key)
                && get(&s.anti_affinity_counts, &t.topology_key, v) > 0
            {
                return Status::unschedulable(ERR_REASON_ANTI_AFFINITY);
            }
        }
        // Kubernetes checks the existing pods' rules last, so a group with
        // symmetric anti-affinity reports its own rule.
        if !s.existing_anti_counts.is_empty()
            && node
                .node
                .metadata
                .labels
                .iter()
                .flatten()
                .any(|(k, v)| get(&s.existing_anti_counts, k, v) > 0)
        {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::framework::Code;
    use crate::plugins::testutil::{node_with_pods, pod};
    use serde_json::{Value, json};

    fn labelled(name: &str, app: &str, affinity: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "labels": {"app": app}},
            "spec": {"containers": [], "affinity": affinity}})
    }

    fn term(app: &str) -> Value {
        json!([{"topologyKey": "zone", "labelSelector": {"matchLabels": {"app": app}}}])
    }

    fn filter_all(p: &Pod, nodes: &[Arc<NodeInfo>]) -> Vec<(Code, Vec<String>)> {
        let mut state = CycleState::default();
        let snapshot = Snapshot::from_nodes(nodes.to_vec());
        InterPodAffinity::default().pre_filter(&mut state, p, &snapshot);
        nodes
            .iter()
            .map(|n| {
                let s = InterPodAffinity::default().filter(&state, p, n);
                (s.code, s.reasons)
            })
            .collect()
    }

    fn cluster(pods_a: Vec<Value>) -> Vec<Arc<NodeInfo>> {
        vec![
            node_with_pods(
                json!({"metadata": {"name": "a", "labels": {"zone": "z1"}}}),
                pods_a,
            ),
            node_with_pods(
                json!({"metadata": {"name": "b", "labels": {"zone": "z2"}}}),
                vec![],
            ),
            node_with_pods(json!({"metadata": {"name": "c"}}), vec![]),
        ]
    }

    #[test]
    fn required_affinity_anti_affinity_and_existing_anti_affinity_filter_nodes() {
        let ok = (Code::Success, vec![]);
        let r = |c: Code, m: &str| (c, vec![m.to_string()]);
        let cases = [
            (
                "affinity to db lands in db's zone",
                cluster(vec![labelled("db", "db", json!(null))]),
                labelled(
                    "web",
                    "web",
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("db")}}),
                ),
                vec![
                    ok.clone(),
                    r(Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY),
                    r(Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY),
                ],
            ),
            (
                "the first pod of a self-selecting group goes anywhere with the key",
                cluster(vec![]),
                labelled(
                    "web",
                    "web",
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("web")}}),
                ),
                vec![
                    ok.clone(),
                    ok.clone(),
                    r(Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY),
                ],
            ),
            (
                "anti-affinity avoids the zone of matching pods",
                cluster(vec![labelled("web-1", "web", json!(null))]),
                labelled(
                    "web-2",
                    "web",
                    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("web")}}),
                ),
                vec![
                    r(Code::Unschedulable, ERR_REASON_ANTI_AFFINITY),
                    ok.clone(),
                    ok.clone(),
                ],
            ),
            (
                "an existing pod's anti-affinity keeps matching pods out of its zone",
                cluster(vec![labelled(
                    "loner",
                    "loner",
                    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("web")}}),
                )]),
                labelled("web", "web", json!(null)),
                vec![
                    r(Code::Unschedulable, ERR_REASON_EXISTING_ANTI_AFFINITY),
                    ok.clone(),
                    ok.clone(),
                ],
            ),
            (
                "an existing pod's anti-affinity counts on its own node too",
                vec![node_with_pods(
                    json!({"metadata": {"name": "a", "labels": {"zone": "z1"}}}),
                    vec![
                        labelled("other", "other", json!(null)),
                        labelled(
                            "loner",
                            "loner",
                            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("web")}}),
                        ),
                    ],
                )],
                labelled("web", "web", json!(null)),
                vec![r(Code::Unschedulable, ERR_REASON_EXISTING_ANTI_AFFINITY)],
            ),
            (
                "pods in other namespaces do not count",
                cluster(vec![
                    json!({"metadata": {"name": "db", "namespace": "other", "labels": {"app": "db"}}, "spec": {"containers": []}}),
                ]),
                labelled(
                    "web",
                    "web",
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("db")}}),
                ),
                vec![
                    r(Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY),
                    r(Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY),
                    r(Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY),
                ],
            ),
        ];
        for (name, nodes, p, want) in cases {
            assert_eq!(filter_all(&pod(p), &nodes), want, "{name}");
        }
    }
}
