//! `NodeName`: a pod that names a node (`spec.nodeName` set before
//! scheduling, e.g. by a DaemonSet-style client) fits only there.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::ArgsError;
use crate::framework::{CycleState, FilterPlugin, NodeInfo, Plugin, Status};

pub const NAME: &str = "NodeName";
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

pub fn new(_: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    Ok(Arc::new(NodeName))
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(name) if !name.is_empty() && name != node.name() => {
                Status::unresolvable(ERR_REASON)
            }
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testutil::{node, pod, run_filter};
    use serde_json::json;

    #[test]
    fn only_the_named_node_fits() {
        let n = node(json!({"metadata": {"name": "a"}}));
        for (name, p, want) in [
            (
                "no node name",
                json!({"spec": {"containers": []}}),
                Code::Success,
            ),
            (
                "same node",
                json!({"spec": {"containers": [], "nodeName": "a"}}),
                Code::Success,
            ),
            (
                "other node",
                json!({"spec": {"containers": [], "nodeName": "b"}}),
                Code::UnschedulableAndUnresolvable,
            ),
        ] {
            let s = run_filter(&NodeName, &pod(p), &n);
            assert_eq!(s.code, want, "{name}");
        }
    }
}
