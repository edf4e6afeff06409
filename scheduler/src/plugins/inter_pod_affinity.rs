//! `InterPodAffinity` (Filter): required pod affinity and anti-affinity.
//! A node fits when, in its topology domain, pods match each of the
//! incoming pod's affinity terms (or none anywhere do and the pod matches
//! its own terms: the first pod of a group), no pod matches its
//! anti-affinity terms, and no existing pod's anti-affinity rejects it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::selector::LabelSel;
use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};

use super::ArgsError;
use crate::framework::{CycleState, FilterPlugin, NodeInfo, Plugin, PreFilterPlugin, Status};

pub const NAME: &str = "InterPodAffinity";
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
const STATE_KEY: &str = "PreFilterInterPodAffinity";

pub struct InterPodAffinity;

pub fn new(_: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    Ok(Arc::new(InterPodAffinity))
}

type Pair = (String, String);

/// A term resolved against the pod that carries it.
struct Term {
    topology_key: String,
    /// `None` matches no pods (a nil `labelSelector`).
    selector: Option<LabelSel>,
    /// `None` means every namespace (an empty `namespaceSelector`).
    namespaces: Option<Vec<String>>,
}

impl Term {
    fn new(t: &PodAffinityTerm, owner: &Pod) -> Term {
        let own_ns = owner
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let listed = t.namespaces.clone().unwrap_or_default();
        let all = t.namespace_selector.as_ref().is_some_and(|s| {
            s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        });
        Term {
            topology_key: t.topology_key.clone(),
            selector: t
                .label_selector
                .as_ref()
                .and_then(|s| LabelSel::from_label_selector(s).ok()),
            namespaces: if all {
                None
            } else if listed.is_empty() {
                Some(vec![own_ns])
            } else {
                Some(listed)
            },
        }
    }

    fn matches(&self, pod: &Pod) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let empty = BTreeMap::new();
        self.namespaces
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == ns))
            && self
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(pod.metadata.labels.as_ref().unwrap_or(&empty)))
    }
}

fn required_terms(pod: &Pod, anti: bool) -> Vec<Term> {
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let terms = if anti {
        affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    } else {
        affinity
            .and_then(|a| a.pod_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
    };
    terms
        .into_iter()
        .flatten()
        .map(|t| Term::new(t, pod))
        .collect()
}

struct State {
    affinity: Vec<Term>,
    anti_affinity: Vec<Term>,
    affinity_counts: HashMap<Pair, i64>,
    anti_affinity_counts: HashMap<Pair, i64>,
    existing_anti_counts: HashMap<Pair, i64>,
}

fn label<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a String> {
    node.node.metadata.labels.as_ref().and_then(|l| l.get(key))
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, nodes: &[Arc<NodeInfo>]) -> Status {
        let affinity = required_terms(pod, false);
        let anti_affinity = required_terms(pod, true);
        let mut s = State {
            affinity,
            anti_affinity,
            affinity_counts: HashMap::new(),
            anti_affinity_counts: HashMap::new(),
            existing_anti_counts: HashMap::new(),
        };
        for node in nodes {
            for p in &node.pods {
                // Existing pods' anti-affinity against the incoming pod.
                for t in required_terms(&p.pod, true) {
                    if t.matches(pod)
                        && let Some(v) = label(node, &t.topology_key)
                    {
                        *s.existing_anti_counts
                            .entry((t.topology_key.clone(), v.clone()))
                            .or_default() += 1;
                    }
                }
                if !s.affinity.is_empty() && s.affinity.iter().all(|t| t.matches(&p.pod)) {
                    for t in &s.affinity {
                        if let Some(v) = label(node, &t.topology_key) {
                            *s.affinity_counts
                                .entry((t.topology_key.clone(), v.clone()))
                                .or_default() += 1;
                        }
                    }
                }
                for t in &s.anti_affinity {
                    if t.matches(&p.pod)
                        && let Some(v) = label(node, &t.topology_key)
                    {
                        *s.anti_affinity_counts
                            .entry((t.topology_key.clone(), v.clone()))
                            .or_default() += 1;
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
        let labels = node.node.metadata.labels.clone().unwrap_or_default();
        let mut pods_exist = true;
        for t in &s.affinity {
            match labels.get(&t.topology_key) {
                None => return Status::unresolvable(ERR_REASON_AFFINITY),
                Some(v) => {
                    if s.affinity_counts
                        .get(&(t.topology_key.clone(), v.clone()))
                        .is_none_or(|c| *c <= 0)
                    {
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
            if let Some(v) = labels.get(&t.topology_key)
                && s.anti_affinity_counts
                    .get(&(t.topology_key.clone(), v.clone()))
                    .is_some_and(|c| *c > 0)
            {
                return Status::unschedulable(ERR_REASON_ANTI_AFFINITY);
            }
        }
        // Kubernetes checks the existing pods' rules last, so a group with
        // symmetric anti-affinity reports its own rule.
        if labels.iter().any(|(k, v)| {
            s.existing_anti_counts
                .get(&(k.clone(), v.clone()))
                .is_some_and(|c| *c > 0)
        }) {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
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
        InterPodAffinity.pre_filter(&mut state, p, nodes);
        nodes
            .iter()
            .map(|n| {
                let s = InterPodAffinity.filter(&state, p, n);
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
