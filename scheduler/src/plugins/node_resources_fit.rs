//! `NodeResourcesFit`: a pod fits a node when the node's allocatable
//! resources cover what the pods on it already request plus what this pod
//! requests; scoring prefers the least (default) or most allocated node.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use super::ArgsError;
use crate::framework::{Snapshot, 
    CycleState, FilterPlugin, MAX_NODE_SCORE, NodeInfo, Plugin, PreFilterPlugin, PreScorePlugin,
    ScorePlugin, Status,
};
use crate::resources::{CPU, EPHEMERAL_STORAGE, MEMORY, Resource, pod_requests};

pub const NAME: &str = "NodeResourcesFit";
const STATE_KEY: &str = "PreFilterNodeResourcesFit";
const SCORE_STATE_KEY: &str = "PreScoreNodeResourcesFit";

/// The pod's requests and non-zero requests, computed once per cycle.
struct ScoreState {
    requests: Resource,
    non_zero: Resource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Strategy {
    LeastAllocated,
    MostAllocated,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResourceSpec {
    pub name: String,
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScoringStrategy {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    resources: Option<Vec<ResourceSpec>>,
    #[serde(default, rename = "requestedToCapacityRatio")]
    _requested_to_capacity_ratio: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Args {
    #[serde(default)]
    ignored_resources: Vec<String>,
    #[serde(default)]
    ignored_resource_groups: Vec<String>,
    #[serde(default)]
    scoring_strategy: Option<ScoringStrategy>,
    #[serde(default, rename = "apiVersion")]
    _api_version: Option<String>,
    #[serde(default, rename = "kind")]
    _kind: Option<String>,
}

pub struct NodeResourcesFit {
    pub strategy: Strategy,
    pub resources: Vec<ResourceSpec>,
    ignored: Vec<String>,
    ignored_groups: Vec<String>,
}

impl NodeResourcesFit {
    pub fn with_strategy(strategy: Strategy) -> NodeResourcesFit {
        NodeResourcesFit {
            strategy,
            resources: default_resources(),
            ignored: Vec::new(),
            ignored_groups: Vec::new(),
        }
    }
}

fn default_resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec {
            name: CPU.into(),
            weight: 1,
        },
        ResourceSpec {
            name: MEMORY.into(),
            weight: 1,
        },
    ]
}

pub fn new(args: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    let args: Args = if args.is_null() {
        Args::default()
    } else {
        serde_json::from_value(args.clone()).map_err(|e| ArgsError {
            field: "args".into(),
            message: e.to_string(),
        })?
    };
    let mut plugin = NodeResourcesFit::with_strategy(Strategy::LeastAllocated);
    plugin.ignored = args.ignored_resources;
    plugin.ignored_groups = args.ignored_resource_groups;
    if let Some(s) = args.scoring_strategy {
        plugin.strategy = match s.kind.as_deref().unwrap_or("LeastAllocated") {
            "LeastAllocated" => Strategy::LeastAllocated,
            "MostAllocated" => Strategy::MostAllocated,
            other => {
                return Err(ArgsError {
                    field: "scoringStrategy.type".into(),
                    message: format!(
                        "Unsupported value: {other:?}: supported values: \"LeastAllocated\", \"MostAllocated\""
                    ),
                });
            }
        };
        if let Some(resources) = s.resources {
            for (i, r) in resources.iter().enumerate() {
                if !(1..=100).contains(&r.weight) {
                    return Err(ArgsError {
                        field: format!("scoringStrategy.resources[{i}].weight"),
                        message: format!(
                            "Invalid value: {}: resource weight of {} should be in range [1, 100]",
                            r.weight, r.name
                        ),
                    });
                }
            }
            plugin.resources = resources;
        }
    }
    Ok(Arc::new(plugin))
}

impl Plugin for NodeResourcesFit {
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

impl PreScorePlugin for NodeResourcesFit {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _: &[Arc<NodeInfo>],
        _: &Snapshot,
    ) -> Status {
        state.write(
            SCORE_STATE_KEY,
            ScoreState {
                requests: pod_requests(pod, false),
                non_zero: pod_requests(pod, true),
            },
        );
        Status::success()
    }
}

impl PreFilterPlugin for NodeResourcesFit {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, _: &Snapshot) -> Status {
        state.write(STATE_KEY, pod_requests(pod, false));
        Status::success()
    }
}

/// One resource the node lacks (`InsufficientResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insufficient {
    pub reason: String,
    /// The request exceeds the node's allocatable even when empty.
    pub unresolvable: bool,
}

impl NodeResourcesFit {
    fn ignored(&self, name: &str) -> bool {
        self.ignored.iter().any(|r| r == name)
            || name
                .split_once('/')
                .is_some_and(|(group, _)| self.ignored_groups.iter().any(|g| g == group))
    }

    /// `fitsRequest`: every resource the node lacks for `req`.
    pub fn insufficient(&self, req: &Resource, node: &NodeInfo) -> Vec<Insufficient> {
        let mut out = Vec::new();
        let allowed = node.allocatable.allowed_pod_number;
        if node.pods.len() as i64 + 1 > allowed {
            out.push(Insufficient {
                reason: "Too many pods".into(),
                unresolvable: allowed == 0,
            });
        }
        let mut check = |name: &str, want: i64, alloc: i64, used: i64| {
            if want > 0 && want > alloc - used {
                out.push(Insufficient {
                    reason: format!("Insufficient {name}"),
                    unresolvable: want > alloc,
                });
            }
        };
        check(
            CPU,
            req.milli_cpu,
            node.allocatable.milli_cpu,
            node.requested.milli_cpu,
        );
        check(
            MEMORY,
            req.memory,
            node.allocatable.memory,
            node.requested.memory,
        );
        check(
            EPHEMERAL_STORAGE,
            req.ephemeral_storage,
            node.allocatable.ephemeral_storage,
            node.requested.ephemeral_storage,
        );
        for (name, want) in &req.scalar {
            if self.ignored(name) {
                continue;
            }
            check(
                name,
                *want,
                node.allocatable.get(name),
                node.requested.get(name),
            );
        }
        out
    }
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let computed;
        let req = match state.read::<Resource>(STATE_KEY) {
            Some(r) => r,
            None => {
                computed = pod_requests(pod, false);
                &computed
            }
        };
        let lacking = self.insufficient(req, node);
        if lacking.is_empty() {
            return Status::success();
        }
        let code = if lacking.iter().any(|i| i.unresolvable) {
            crate::framework::Code::UnschedulableAndUnresolvable
        } else {
            crate::framework::Code::Unschedulable
        };
        Status::new(code, lacking.into_iter().map(|i| i.reason).collect())
    }
}

/// Requested amount of `name` on the node with the pod added; CPU and
/// memory use the non-zero scoring defaults, as Kubernetes does.
pub fn requested_with_pod(
    name: &str,
    pod_req: &Resource,
    pod_nz: &Resource,
    node: &NodeInfo,
    non_zero: bool,
) -> (i64, i64) {
    let alloc = node.allocatable.get(name);
    let used = match name {
        CPU | MEMORY if non_zero => node.non_zero_requested.get(name) + pod_nz.get(name),
        _ => node.requested.get(name) + pod_req.get(name),
    };
    (alloc, used)
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let computed;
        let s = match state.read::<ScoreState>(SCORE_STATE_KEY) {
            Some(s) => s,
            None => {
                computed = ScoreState {
                    requests: pod_requests(pod, false),
                    non_zero: pod_requests(pod, true),
                };
                &computed
            }
        };
        let (req, nz) = (&s.requests, &s.non_zero);
        let mut total = 0;
        let mut weights = 0;
        for r in &self.resources {
            let (alloc, used) = requested_with_pod(&r.name, req, nz, node, true);
            if alloc == 0 {
                continue;
            }
            let score = match self.strategy {
                Strategy::LeastAllocated if used > alloc => 0,
                Strategy::LeastAllocated => (alloc - used) * MAX_NODE_SCORE / alloc,
                Strategy::MostAllocated => used.min(alloc) * MAX_NODE_SCORE / alloc,
            };
            total += score * r.weight;
            weights += r.weight;
        }
        Ok(if weights == 0 { 0 } else { total / weights })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testutil::{node, node_with_pods, pod, run_filter, run_score};
    use serde_json::{Value, json};

    fn requesting(req: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [{"name": "c", "resources": {"requests": req}}]}})
    }

    fn small_node(name: &str) -> Value {
        json!({"metadata": {"name": name}, "status": {"allocatable": {
            "cpu": "2", "memory": "4Gi", "ephemeral-storage": "10Gi", "pods": "2", "example.com/gpu": "1"}}})
    }

    #[test]
    fn a_pod_fits_only_where_every_requested_resource_is_free() {
        let busy = node_with_pods(
            small_node("n"),
            vec![requesting(json!({"cpu": "1500m", "memory": "1Gi"}))],
        );
        type Case = (&'static str, Value, Arc<NodeInfo>, Code, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (
                "fits an empty node",
                json!({"cpu": "2"}),
                node(small_node("n")),
                Code::Success,
                vec![],
            ),
            (
                "not enough cpu left",
                json!({"cpu": "1"}),
                busy.clone(),
                Code::Unschedulable,
                vec!["Insufficient cpu"],
            ),
            (
                "more cpu than the node has",
                json!({"cpu": "3"}),
                busy.clone(),
                Code::UnschedulableAndUnresolvable,
                vec!["Insufficient cpu"],
            ),
            (
                "cpu and memory",
                json!({"cpu": "1", "memory": "3100Mi"}),
                busy.clone(),
                Code::Unschedulable,
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            (
                "ephemeral storage",
                json!({"ephemeral-storage": "11Gi"}),
                busy.clone(),
                Code::UnschedulableAndUnresolvable,
                vec!["Insufficient ephemeral-storage"],
            ),
            (
                "extended resource",
                json!({"example.com/gpu": "2"}),
                busy.clone(),
                Code::UnschedulableAndUnresolvable,
                vec!["Insufficient example.com/gpu"],
            ),
            (
                "unknown extended resource",
                json!({"example.com/fpga": "1"}),
                busy.clone(),
                Code::UnschedulableAndUnresolvable,
                vec!["Insufficient example.com/fpga"],
            ),
            ("best effort fits", json!({}), busy, Code::Success, vec![]),
        ];
        for (name, req, n, code, reasons) in cases {
            let s = run_filter(
                &NodeResourcesFit::with_strategy(Strategy::LeastAllocated),
                &pod(requesting(req)),
                &n,
            );
            assert_eq!(s.code, code, "{name}");
            assert_eq!(s.reasons, reasons, "{name}");
        }
    }

    #[test]
    fn a_full_node_has_too_many_pods() {
        let full = node_with_pods(
            small_node("n"),
            vec![requesting(json!({})), requesting(json!({}))],
        );
        let s = run_filter(
            &NodeResourcesFit::with_strategy(Strategy::LeastAllocated),
            &pod(requesting(json!({}))),
            &full,
        );
        assert_eq!(
            (s.code, s.reasons),
            (Code::Unschedulable, vec!["Too many pods".to_string()])
        );
    }

    #[test]
    fn least_allocated_prefers_free_nodes_and_most_allocated_busy_ones() {
        let nodes = vec![
            node(small_node("empty")),
            node_with_pods(
                small_node("half"),
                vec![requesting(json!({"cpu": "1", "memory": "2Gi"}))],
            ),
        ];
        let p = pod(requesting(json!({"cpu": "0", "memory": "0"})));
        assert_eq!(
            run_score(
                &NodeResourcesFit::with_strategy(Strategy::LeastAllocated),
                &p,
                &nodes
            ),
            vec![100, 50]
        );
        assert_eq!(
            run_score(
                &NodeResourcesFit::with_strategy(Strategy::MostAllocated),
                &p,
                &nodes
            ),
            vec![0, 50]
        );
    }

    #[test]
    fn scoring_arguments_are_validated() {
        assert!(new(&json!({"scoringStrategy": {"type": "MostAllocated"}})).is_ok());
        let bad_type = new(&json!({"scoringStrategy": {"type": "Random"}}))
            .err()
            .expect("refused");
        assert_eq!(bad_type.field, "scoringStrategy.type");
        let bad_weight =
            new(&json!({"scoringStrategy": {"resources": [{"name": "cpu", "weight": 0}]}}))
                .err()
                .expect("refused");
        assert_eq!(bad_weight.field, "scoringStrategy.resources[0].weight");
        assert!(new(&json!({"bogus": 1})).is_err());
    }
}
