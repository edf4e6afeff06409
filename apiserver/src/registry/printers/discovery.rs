//! The discovery.k8s.io/v1 EndpointSlice table: ADDRESSTYPE PORTS
//! ENDPOINTS, each list cut after three entries.

use jiff::Timestamp;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use super::descriptions as doc;
use super::format::{self, UNSET};
use super::{AGE, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

/// How many ports or addresses a cell lists before "+ N more...".
const MAX_ITEMS: usize = 3;

impl Printer for EndpointSlice {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("AddressType", "string", 0, doc::ENDPOINT_SLICE_ADDRESS_TYPE),
            Column::new("Ports", "string", 0, doc::ENDPOINT_SLICE_PORTS),
            Column::new("Endpoints", "string", 0, doc::ENDPOINT_SLICE_ENDPOINTS),
            AGE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        // A port without a number matches every port of the endpoint: `*`.
        let ports = self
            .ports
            .iter()
            .flatten()
            .map(|p| match (p.port, &p.name) {
                (Some(port), _) => port.to_string(),
                (None, Some(name)) => name.clone(),
                (None, None) => "*".to_string(),
            });
        let addresses = self
            .endpoints
            .iter()
            .flat_map(|e| e.addresses.iter().cloned());
        vec![
            name_cell(&self.metadata),
            Value::from(self.address_type.as_str()),
            Value::from(or_unset(format::join_truncated(ports, MAX_ITEMS))),
            Value::from(or_unset(format::join_truncated(addresses, MAX_ITEMS))),
            age_cell(&self.metadata, now),
        ]
    }
}

/// `listWithMoreString` prints an empty list as `<unset>`.
fn or_unset(s: String) -> String {
    if s.is_empty() { UNSET.to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::printers::testing::{ago, cells, headers, object};
    use serde_json::json;

    #[test]
    fn endpointslice_lists_ports_and_addresses() {
        assert_eq!(
            headers::<EndpointSlice>(),
            [
                ("Name", 0),
                ("AddressType", 0),
                ("Ports", 0),
                ("Endpoints", 0),
                ("Age", 0),
            ]
        );
        let cases = [
            ("empty", json!(null), json!([]), "<unset>", "<unset>"),
            (
                "a port by number, by name, and any port",
                json!([{"port": 80}, {"name": "metrics"}, {}]),
                json!([{"addresses": ["10.1.0.4"]}, {"addresses": ["10.1.0.5"]}]),
                "80,metrics,*",
                "10.1.0.4,10.1.0.5",
            ),
            (
                "more than three of each",
                json!([{"port": 1}, {"port": 2}, {"port": 3}, {"port": 4}]),
                json!([{"addresses": ["10.1.0.1", "10.1.0.2"]}, {"addresses": ["10.1.0.3"]},
                       {"addresses": ["10.1.0.4"]}, {"addresses": ["10.1.0.5"]}]),
                "1,2,3 + 1 more...",
                "10.1.0.1,10.1.0.2,10.1.0.3 + 2 more...",
            ),
        ];
        for (name, ports, endpoints, want_ports, want_endpoints) in cases {
            let slice: EndpointSlice = object(json!({
                "metadata": {"name": "web-abc12", "creationTimestamp": ago(2 * 86400)},
                "addressType": "IPv4",
                "ports": ports,
                "endpoints": endpoints,
            }));
            assert_eq!(
                cells(&slice),
                [
                    json!("web-abc12"),
                    json!("IPv4"),
                    json!(want_ports),
                    json!(want_endpoints),
                    json!("2d")
                ],
                "{name}"
            );
        }
    }
}
