//! The scheduling.k8s.io/v1 PriorityClass table: VALUE GLOBAL-DEFAULT, and
//! PREEMPTIONPOLICY after AGE.

use jiff::Timestamp;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use serde_json::Value;

use super::descriptions as doc;
use super::{AGE, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

impl Printer for PriorityClass {
    fn columns() -> Vec<Column> {
        // printers.go gives PreemptionPolicy priority 0, so kubectl shows it
        // without -o wide even though printPriorityClass only fills it in
        // for wide output (which the server always asks for).
        vec![
            NAME,
            Column::new("Value", "integer", 0, doc::PRIORITY_CLASS_VALUE),
            Column::new(
                "Global-Default",
                "boolean",
                0,
                doc::PRIORITY_CLASS_GLOBAL_DEFAULT,
            ),
            AGE,
            Column::new(
                "PreemptionPolicy",
                "string",
                0,
                doc::PRIORITY_CLASS_PREEMPTION_POLICY,
            ),
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        // SetDefaults_PriorityClass: an unset policy is PreemptLowerPriority.
        let policy = self
            .preemption_policy
            .clone()
            .unwrap_or_else(|| "PreemptLowerPriority".to_string());
        vec![
            name_cell(&self.metadata),
            Value::from(i64::from(self.value)),
            Value::from(self.global_default.unwrap_or(false)),
            age_cell(&self.metadata, now),
            Value::from(policy),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::printers::testing::{ago, cells, headers, object};
    use serde_json::json;

    #[test]
    fn priorityclass_prints_value_default_and_policy() {
        assert_eq!(
            headers::<PriorityClass>(),
            [
                ("Name", 0),
                ("Value", 0),
                ("Global-Default", 0),
                ("Age", 0),
                ("PreemptionPolicy", 0),
            ]
        );
        let critical: PriorityClass = object(json!({
            "metadata": {"name": "system-node-critical", "creationTimestamp": ago(400 * 86400)},
            "value": 2000001000,
        }));
        assert_eq!(
            cells(&critical),
            [
                json!("system-node-critical"),
                json!(2000001000),
                json!(false),
                json!("400d"),
                json!("PreemptLowerPriority"),
            ]
        );
        let batch: PriorityClass = object(json!({
            "metadata": {"name": "batch", "creationTimestamp": ago(120)},
            "value": -10, "globalDefault": true, "preemptionPolicy": "Never",
        }));
        assert_eq!(
            cells(&batch),
            [
                json!("batch"),
                json!(-10),
                json!(true),
                json!("2m"),
                json!("Never")
            ]
        );
    }
}
