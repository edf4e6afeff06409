//! The networking.k8s.io/v1 tables: Ingress (CLASS HOSTS ADDRESS PORTS) and
//! IngressClass (CONTROLLER PARAMETERS), as `printIngress` and
//! `printIngressClass` in printers.go.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressRule, IngressTLS};
use serde_json::Value;

use super::{AGE, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

/// `formatHosts`: the first three hosts, `*` when no rule names one.
fn format_hosts(rules: &[IngressRule]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        if let Some(h) = rule.host.as_deref().filter(|h| !h.is_empty())
            && !more
        {
            list.push(h);
        }
    }
    if list.is_empty() {
        return "*".into();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - MAX)
    } else {
        joined
    }
}

/// `formatPorts`: TLS opens 443 beside 80.
fn format_ports(tls: &[IngressTLS]) -> &'static str {
    if tls.is_empty() { "80" } else { "80, 443" }
}

impl Printer for Ingress {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new(
                "Class",
                "string",
                0,
                "The name of the IngressClass resource that should be used for additional configuration",
            ),
            Column::new(
                "Hosts",
                "string",
                0,
                "Hosts that incoming requests are matched against before the ingress rule",
            ),
            Column::new(
                "Address",
                "string",
                0,
                "Address is a list containing ingress points for the load-balancer",
            ),
            Column::new("Ports", "string", 0, "Ports of TLS configurations that open"),
            AGE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.as_ref();
        let class = spec
            .and_then(|s| s.ingress_class_name.clone())
            .unwrap_or_else(|| "<none>".into());
        let rules = spec.and_then(|s| s.rules.as_deref()).unwrap_or(&[]);
        let tls = spec.and_then(|s| s.tls.as_deref()).unwrap_or(&[]);
        // ingressLoadBalancerStatusStringer, wide (the server always is):
        // a sorted set of IPs, else hostnames.
        let address: BTreeSet<&str> = self
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_deref())
            .unwrap_or(&[])
            .iter()
            .filter_map(|i| {
                i.ip.as_deref()
                    .filter(|ip| !ip.is_empty())
                    .or(i.hostname.as_deref().filter(|h| !h.is_empty()))
            })
            .collect();
        vec![
            name_cell(&self.metadata),
            Value::from(class),
            Value::from(format_hosts(rules)),
            Value::from(address.into_iter().collect::<Vec<_>>().join(",")),
            Value::from(format_ports(tls)),
            age_cell(&self.metadata, now),
        ]
    }
}

impl Printer for IngressClass {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new(
                "Controller",
                "string",
                0,
                "Controller that is responsible for handling this class",
            ),
            Column::new(
                "Parameters",
                "string",
                0,
                "A reference to a resource with additional parameters",
            ),
            AGE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.as_ref();
        let parameters = match spec.and_then(|s| s.parameters.as_ref()) {
            None => "<none>".to_string(),
            Some(p) => match p.api_group.as_deref() {
                Some(g) => format!("{}.{g}/{}", p.kind, p.name),
                None => format!("{}/{}", p.kind, p.name),
            },
        };
        vec![
            name_cell(&self.metadata),
            Value::from(spec.and_then(|s| s.controller.clone()).unwrap_or_default()),
            Value::from(parameters),
            age_cell(&self.metadata, now),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::printers::testing::{ago, cells, headers, object};
    use serde_json::json;

    #[test]
    fn ingress_prints_class_hosts_address_and_ports() {
        assert_eq!(
            headers::<Ingress>(),
            [
                ("Name", 0),
                ("Class", 0),
                ("Hosts", 0),
                ("Address", 0),
                ("Ports", 0),
                ("Age", 0)
            ]
        );
        let bare: Ingress = object(json!({
            "metadata": {"name": "web", "creationTimestamp": ago(90)},
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
        }));
        assert_eq!(
            cells(&bare),
            [
                json!("web"),
                json!("<none>"),
                json!("*"),
                json!(""),
                json!("80"),
                json!("90s")
            ]
        );
        let many: Ingress = object(json!({
            "metadata": {"name": "shop", "creationTimestamp": ago(7200)},
            "spec": {"ingressClassName": "ferrokube",
                     "tls": [{"hosts": ["a.example"]}],
                     "rules": [{"host": "a.example"}, {}, {"host": "b.example"},
                               {"host": "c.example"}, {"host": "d.example"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}, {"hostname": "lb.example"},
                                                    {"ip": "10.0.0.3"}]}},
        }));
        assert_eq!(
            cells(&many),
            [
                json!("shop"),
                json!("ferrokube"),
                json!("a.example,b.example,c.example + 2 more..."),
                json!("10.0.0.3,10.0.0.9,lb.example"),
                json!("80, 443"),
                json!("120m"),
            ]
        );
    }

    #[test]
    fn ingressclass_prints_controller_and_parameters() {
        assert_eq!(
            headers::<IngressClass>(),
            [("Name", 0), ("Controller", 0), ("Parameters", 0), ("Age", 0)]
        );
        let plain: IngressClass = object(json!({
            "metadata": {"name": "ferrokube", "creationTimestamp": ago(30)},
            "spec": {"controller": "ferrokube.io/ingress"},
        }));
        assert_eq!(
            cells(&plain),
            [
                json!("ferrokube"),
                json!("ferrokube.io/ingress"),
                json!("<none>"),
                json!("30s")
            ]
        );
        let params: IngressClass = object(json!({
            "metadata": {"name": "lb", "creationTimestamp": ago(30)},
            "spec": {"controller": "example.com/lb",
                     "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters",
                                    "name": "external-lb"}},
        }));
        assert_eq!(
            cells(&params)[2],
            json!("IngressParameters.k8s.example.com/external-lb")
        );
    }
}
