//! `NodePorts`: a pod asking for host ports fits only on nodes where no
//! other pod holds the same port and protocol on an overlapping host IP.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::ArgsError;
use crate::framework::node_info::{HostPort, host_ports};
use crate::framework::{Snapshot, CycleState, FilterPlugin, NodeInfo, Plugin, PreFilterPlugin, Status};

pub const NAME: &str = "NodePorts";
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";
const STATE_KEY: &str = "PreFilterNodePorts";

pub struct NodePorts;

pub fn new(_: &serde_json::Value) -> Result<Arc<dyn Plugin>, ArgsError> {
    Ok(Arc::new(NodePorts))
}

/// `0.0.0.0` conflicts with every address on the same port and protocol.
pub fn conflicts(a: &HostPort, b: &HostPort) -> bool {
    a.1 == b.1 && a.2 == b.2 && (a.0 == b.0 || a.0 == "0.0.0.0" || b.0 == "0.0.0.0")
}

impl Plugin for NodePorts {
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

impl PreFilterPlugin for NodePorts {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, _: &Snapshot) -> Status {
        let ports = host_ports(pod);
        if ports.is_empty() {
            return Status::skip();
        }
        state.write(STATE_KEY, ports);
        Status::success()
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, state: &CycleState, _: &Pod, node: &NodeInfo) -> Status {
        let Some(wanted) = state.read::<Vec<HostPort>>(STATE_KEY) else {
            return Status::success();
        };
        let clash = wanted
            .iter()
            .any(|w| node.used_ports.iter().any(|u| conflicts(w, u)));
        if clash {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testutil::{node_with_pods, pod, run_filter};
    use serde_json::{Value, json};

    fn with_port(ports: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [{"name": "c", "ports": ports}]}})
    }

    #[test]
    fn host_ports_conflict_by_port_protocol_and_address() {
        let used = with_port(json!([{"containerPort": 80, "hostPort": 8080}]));
        let cases = [
            (
                "no host ports",
                json!([{"containerPort": 80}]),
                Code::Success,
            ),
            (
                "same port",
                json!([{"containerPort": 80, "hostPort": 8080}]),
                Code::Unschedulable,
            ),
            (
                "other port",
                json!([{"containerPort": 80, "hostPort": 8081}]),
                Code::Success,
            ),
            (
                "other protocol",
                json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]),
                Code::Success,
            ),
            (
                "specific address against all addresses",
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]),
                Code::Unschedulable,
            ),
        ];
        let n = node_with_pods(json!({"metadata": {"name": "n"}}), vec![used]);
        for (name, ports, want) in cases {
            let s = run_filter(&NodePorts, &pod(with_port(ports)), &n);
            assert_eq!(s.code, want, "{name}");
            if want != Code::Success {
                assert_eq!(s.reasons, vec![ERR_REASON], "{name}");
            }
        }
        let specific = node_with_pods(
            json!({"metadata": {"name": "n"}}),
            vec![with_port(
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]),
            )],
        );
        let other_ip = pod(with_port(
            json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.2"}]),
        ));
        assert_eq!(
            run_filter(&NodePorts, &other_ip, &specific).code,
            Code::Success
        );
    }
}
