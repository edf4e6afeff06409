//! The scheduling framework, after kube-scheduler's
//! (`staging/src/k8s.io/kube-scheduler/framework/interface.go`): one small
//! trait per extension point, a [`Status`] with a code and reasons, a
//! per-cycle [`CycleState`] plugins share, and the [`NodeInfo`] they read.

pub mod config;
pub mod fanout;
pub mod node_info;
pub mod parallel;
pub mod runtime;
pub mod snapshot;

use std::any::Any;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

pub use node_info::{NodeInfo, PodInfo};
pub use snapshot::Snapshot;

/// The highest score a plugin may give a node after normalisation.
pub const MAX_NODE_SCORE: i64 = 100;

/// How a stage went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Code {
    Success,
    Error,
    /// The node does not fit now; preempting pods might help.
    Unschedulable,
    /// The node does not fit and preemption cannot change that.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod (PreFilter/PreScore).
    Skip,
}

/// A stage's verdict: a code, the reasons shown to users, and the plugin
/// that gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub code: Code,
    #[serde(default)]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

impl Status {
    pub fn success() -> Status {
        Status::new(Code::Success, Vec::new())
    }

    pub fn new(code: Code, reasons: Vec<String>) -> Status {
        Status {
            code,
            reasons,
            plugin: None,
        }
    }

    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status::new(Code::Unschedulable, vec![reason.into()])
    }

    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, vec![reason.into()])
    }

    pub fn error(reason: impl Into<String>) -> Status {
        Status::new(Code::Error, vec![reason.into()])
    }

    pub fn skip() -> Status {
        Status::new(Code::Skip, Vec::new())
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    pub fn with_plugin(mut self, name: &str) -> Status {
        self.plugin = Some(name.to_string());
        self
    }

    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// Data plugins compute once per scheduling cycle (in PreFilter or
/// PreScore) and read for every node.
///
/// A short list rather than a map: Filter and Score read it once per node
/// per plugin, and with fewer than a dozen entries comparing static keys
/// costs a fraction of hashing them.
#[derive(Default)]
pub struct CycleState {
    data: Vec<(&'static str, Box<dyn Any + Send + Sync>)>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        match self.data.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = Box::new(value),
            None => self.data.push((key, Box::new(value))),
        }
    }

    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.downcast_ref())
    }
}

/// A node's score from one plugin; `index` is the node's place in the
/// feasible list (a name per node and plugin would allocate in the hot loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeScore {
    pub index: usize,
    pub score: i64,
}

/// A plugin: a name and the extension points it implements.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
}

/// Runs once per cycle before any Filter; may reject the pod outright.
pub trait PreFilterPlugin: Send + Sync {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, nodes: &Snapshot) -> Status;
}

/// Decides whether the pod may run on one node.
pub trait FilterPlugin: Send + Sync {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status;
}

/// Runs once per cycle before scoring, with the feasible nodes and all nodes.
pub trait PreScorePlugin: Send + Sync {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        feasible: &[Arc<NodeInfo>],
        all: &Snapshot,
    ) -> Status;
}

/// Ranks feasible nodes; `normalize` maps raw scores onto 0..=100.
pub trait ScorePlugin: Send + Sync {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status>;
    fn normalize(&self, _state: &CycleState, _pod: &Pod, _scores: &mut [NodeScore]) -> Status {
        Status::success()
    }
}

/// `DefaultNormalizeScore`: scales scores so the best is `MAX_NODE_SCORE`
/// (reversed: so the best becomes 0 and the worst `MAX_NODE_SCORE`).
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
    if max == 0 {
        if reverse {
            for s in scores.iter_mut() {
                s.score = max_priority;
            }
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut v = max_priority * s.score / max;
        if reverse {
            v = max_priority - v;
        }
        s.score = v;
    }
}

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The pod's priority (`spec.priority`, 0 when unset).
pub fn pod_priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(v: &[i64]) -> Vec<NodeScore> {
        v.iter()
            .enumerate()
            .map(|(i, s)| NodeScore {
                index: i,
                score: *s,
            })
            .collect()
    }

    #[test]
    fn default_normalisation_scales_to_the_best_node() {
        let cases: &[(&[i64], bool, &[i64])] = &[
            (&[1, 2, 4], false, &[25, 50, 100]),
            (&[1, 2, 4], true, &[75, 50, 0]),
            (&[0, 0], false, &[0, 0]),
            (&[0, 0], true, &[100, 100]),
        ];
        for (input, reverse, want) in cases {
            let mut s = scores(input);
            default_normalize_score(MAX_NODE_SCORE, *reverse, &mut s);
            let got: Vec<i64> = s.iter().map(|s| s.score).collect();
            assert_eq!(&got, want, "{input:?} reverse={reverse}");
        }
    }

    #[test]
    fn cycle_state_returns_what_was_written_by_type() {
        let mut st = CycleState::default();
        st.write("k", 5u32);
        assert_eq!(st.read::<u32>("k"), Some(&5));
        assert_eq!(st.read::<i64>("k"), None);
        assert_eq!(st.read::<u32>("other"), None);
    }
}
