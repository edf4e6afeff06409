//! `NodeResourcesBalancedAllocation`: prefers nodes whose CPU and memory
//! would be used in similar proportions with the pod placed, scoring
//! `(1 - standard deviation of the fractions) * 100`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::ArgsError;
use crate::framework::{Snapshot, 
    CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, PreScorePlugin, ScorePlugin, Status,
};
use crate::resources::{CPU, MEMORY, Resource, pod_requests};

pub const NAME: &str = "NodeResourcesBalancedAllocation";
const STATE_KEY: &str = "PreScoreNodeResourcesBalancedAllocation";

pub struct BalancedAllocation;

pub fn new(_: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    Ok(Arc::new(BalancedAllocation))
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for BalancedAllocation {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _: &[Arc<NodeInfo>],
        _: &Snapshot,
    ) -> Status {
        let req = pod_requests(pod, false);
        // A pod requesting none of the scored resources cannot unbalance
        // anything; Kubernetes skips the plugin for it.
        if req.milli_cpu == 0 && req.memory == 0 {
            return Status::skip();
        }
        state.write(STATE_KEY, req);
        Status::success()
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let computed;
        let req = match state.read::<Resource>(STATE_KEY) {
            Some(r) => r,
            None => {
                computed = pod_requests(pod, false);
                &computed
            }
        };
        let mut fractions = Vec::with_capacity(2);
        for name in [CPU, MEMORY] {
            let alloc = node.allocatable.get(name);
            if alloc == 0 {
                continue;
            }
            let used = node.requested.get(name) + req.get(name);
            fractions.push((used as f64 / alloc as f64).min(1.0));
        }
        let std = match fractions.as_slice() {
            [a, b] => (a - b).abs() / 2.0,
            [] | [_] => 0.0,
            many => {
                let mean = many.iter().sum::<f64>() / many.len() as f64;
                (many.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / many.len() as f64).sqrt()
            }
        };
        Ok(((1.0 - std) * MAX_NODE_SCORE as f64) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, node_with_pods, pod, run_score};
    use serde_json::{Value, json};

    fn requesting(req: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [{"name": "c", "resources": {"requests": req}}]}})
    }

    fn n(name: &str) -> Value {
        json!({"metadata": {"name": name}, "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"}}})
    }

    #[test]
    fn balanced_use_scores_higher() {
        let nodes = vec![
            node(n("empty")),
            node_with_pods(n("cpu-heavy"), vec![requesting(json!({"cpu": "2"}))]),
        ];
        let cases = [
            (
                "balanced request on an empty node",
                json!({"cpu": "1", "memory": "1Gi"}),
                vec![100, 75],
            ),
            ("cpu-only request", json!({"cpu": "2"}), vec![75, 50]),
            ("no requests skip the plugin", json!({}), vec![0, 0]),
        ];
        for (name, req, want) in cases {
            assert_eq!(
                run_score(&BalancedAllocation, &pod(requesting(req)), &nodes),
                want,
                "{name}"
            );
        }
    }
}
