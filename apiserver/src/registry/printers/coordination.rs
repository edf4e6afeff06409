//! The coordination.k8s.io/v1 Lease table: HOLDER.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::Value;

use super::descriptions as doc;
use super::{AGE, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

impl Printer for Lease {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Holder", "string", 0, doc::LEASE_SPEC_HOLDER_IDENTITY),
            AGE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let holder = self
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        vec![
            name_cell(&self.metadata),
            Value::from(holder),
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
    fn lease_prints_holder_or_nothing() {
        assert_eq!(headers::<Lease>(), [("Name", 0), ("Holder", 0), ("Age", 0)]);
        let held: Lease = object(json!({
            "metadata": {"name": "kube-scheduler", "creationTimestamp": ago(4 * 3600)},
            "spec": {"holderIdentity": "cp-1_4f1c", "leaseDurationSeconds": 15},
        }));
        assert_eq!(
            cells(&held),
            [json!("kube-scheduler"), json!("cp-1_4f1c"), json!("4h")]
        );
        let free: Lease =
            object(json!({"metadata": {"name": "node-1", "creationTimestamp": ago(9)}}));
        assert_eq!(cells(&free), [json!("node-1"), json!(""), json!("9s")]);
    }
}
