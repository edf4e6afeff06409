//! `NodeUnschedulable`: nodes cordoned with `spec.unschedulable` take no
//! new pods unless the pod tolerates the `node.kubernetes.io/unschedulable`
//! NoSchedule taint.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Taint};

use super::ArgsError;
use super::taint_toleration::tolerates;
use crate::framework::{CycleState, FilterPlugin, NodeInfo, Plugin, Status};

pub const NAME: &str = "NodeUnschedulable";
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

pub fn new(_: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    Ok(Arc::new(NodeUnschedulable))
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_NODE_UNSCHEDULABLE.to_string(),
            effect: "NoSchedule".to_string(),
            ..Taint::default()
        };
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref());
        if tolerations
            .unwrap_or_default()
            .iter()
            .any(|t| tolerates(t, &taint))
        {
            return Status::success();
        }
        Status::unresolvable(ERR_REASON_UNSCHEDULABLE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testutil::{node, pod, run_filter};
    use serde_json::json;

    #[test]
    fn cordoned_nodes_reject_pods_that_do_not_tolerate_it() {
        let tolerant = json!({"spec": {"containers": [], "tolerations": [
            {"key": TAINT_NODE_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}});
        let cases = [
            (
                "schedulable node",
                json!({"spec": {}}),
                json!({"spec": {"containers": []}}),
                Code::Success,
            ),
            (
                "cordoned node",
                json!({"spec": {"unschedulable": true}}),
                json!({"spec": {"containers": []}}),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                "cordoned node, tolerant pod",
                json!({"spec": {"unschedulable": true}}),
                tolerant,
                Code::Success,
            ),
            (
                "explicitly schedulable",
                json!({"spec": {"unschedulable": false}}),
                json!({"spec": {"containers": []}}),
                Code::Success,
            ),
        ];
        for (name, n, p, want) in cases {
            let s = run_filter(&NodeUnschedulable, &pod(p), &node(n));
            assert_eq!(s.code, want, "{name}");
            if want != Code::Success {
                assert_eq!(s.reasons, vec![ERR_REASON_UNSCHEDULABLE], "{name}");
            }
        }
    }

    #[test]
    fn a_node_cordoned_or_tainted_after_it_was_cached_is_filtered_on_its_new_spec() {
        use crate::plugins::taint_toleration::TaintToleration;
        let plain = pod(json!({"spec": {"containers": []}}));
        let mut info = (*node(json!({"metadata": {"name": "n"}, "spec": {}}))).clone();
        let filter =
            |info: &NodeInfo, p: &dyn Plugin| run_filter(p, &plain, &Arc::new(info.clone())).code;
        assert_eq!(filter(&info, &NodeUnschedulable), Code::Success);
        let updated: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]}}))
        .expect("node");
        info.set_node(Arc::new(updated));
        assert_eq!(
            filter(&info, &NodeUnschedulable),
            Code::UnschedulableAndUnresolvable
        );
        assert_eq!(
            filter(&info, &TaintToleration),
            Code::UnschedulableAndUnresolvable
        );
        let uncordoned: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {}})).expect("node");
        info.set_node(Arc::new(uncordoned));
        assert_eq!(filter(&info, &NodeUnschedulable), Code::Success);
        assert_eq!(filter(&info, &TaintToleration), Code::Success);
    }
}
