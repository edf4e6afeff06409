//! PersistentVolume and PersistentVolumeClaim tables, as `printers.go`'s
//! `printPersistentVolume` and `printPersistentVolumeClaim`: capacity,
//! access modes in their short form (RWO, ROX, RWX, RWOP), status, claim,
//! storage class, and `-o wide`'s VOLUMEMODE.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use serde_json::Value;

use super::{AGE, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

/// `helper.GetAccessModesAsString`: each mode once, in Kubernetes' order.
pub fn access_modes(modes: Option<&Vec<String>>) -> String {
    let modes = modes.map(Vec::as_slice).unwrap_or_default();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| modes.iter().any(|m| m == long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

const VOLUME_ATTRIBUTES_CLASS: Column = Column::new(
    "VolumeAttributesClass",
    "string",
    0,
    "VolumeAttributesClass of the volume",
);
const VOLUME_MODE: Column = Column::new("VolumeMode", "string", 1, "The volume mode");

impl Printer for PersistentVolume {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Capacity", "string", 0, "The capacity of the volume"),
            Column::new(
                "Access Modes",
                "string",
                0,
                "The access modes of the volume",
            ),
            Column::new("Reclaim Policy", "string", 0, "The reclaim policy"),
            Column::new("Status", "string", 0, "The phase of the volume"),
            Column::new("Claim", "string", 0, "The claim bound to the volume"),
            Column::new(
                "StorageClass",
                "string",
                0,
                "The storage class of the volume",
            ),
            VOLUME_ATTRIBUTES_CLASS,
            Column::new("Reason", "string", 0, "Why the volume is in its phase"),
            AGE,
            VOLUME_MODE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.clone().unwrap_or_default();
        let status = self.status.clone().unwrap_or_default();
        let claim = spec
            .claim_ref
            .as_ref()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.namespace.clone().unwrap_or_default(),
                    c.name.clone().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let capacity = spec
            .capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.clone())
            .unwrap_or_default();
        vec![
            name_cell(&self.metadata),
            Value::from(capacity),
            Value::from(access_modes(spec.access_modes.as_ref())),
            Value::from(spec.persistent_volume_reclaim_policy.unwrap_or_default()),
            Value::from(status.phase.unwrap_or_default()),
            Value::from(claim),
            Value::from(spec.storage_class_name.unwrap_or_default()),
            Value::from(
                spec.volume_attributes_class_name
                    .unwrap_or_else(|| "<unset>".into()),
            ),
            Value::from(status.reason.unwrap_or_default()),
            age_cell(&self.metadata, now),
            Value::from(spec.volume_mode.unwrap_or_else(|| "<unset>".into())),
        ]
    }
}

impl Printer for PersistentVolumeClaim {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Status", "string", 0, "The phase of the claim"),
            Column::new("Volume", "string", 0, "The volume bound to the claim"),
            Column::new("Capacity", "string", 0, "The capacity of the bound volume"),
            Column::new(
                "Access Modes",
                "string",
                0,
                "The access modes of the volume",
            ),
            Column::new(
                "StorageClass",
                "string",
                0,
                "The storage class of the claim",
            ),
            VOLUME_ATTRIBUTES_CLASS,
            AGE,
            VOLUME_MODE,
        ]
    }

    /// Capacity and access modes are the bound volume's (from status), so
    /// an unbound claim shows them empty, as kubectl does.
    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let spec = self.spec.clone().unwrap_or_default();
        let status = self.status.clone().unwrap_or_default();
        let bound = spec.volume_name.clone().unwrap_or_default();
        let (capacity, modes) = if bound.is_empty() {
            (String::new(), String::new())
        } else {
            (
                status
                    .capacity
                    .as_ref()
                    .and_then(|c| c.get("storage"))
                    .map(|q| q.0.clone())
                    .unwrap_or_default(),
                access_modes(status.access_modes.as_ref()),
            )
        };
        vec![
            name_cell(&self.metadata),
            Value::from(status.phase.unwrap_or_default()),
            Value::from(bound),
            Value::from(capacity),
            Value::from(modes),
            Value::from(spec.storage_class_name.unwrap_or_default()),
            Value::from(
                spec.volume_attributes_class_name
                    .unwrap_or_else(|| "<unset>".into()),
            ),
            age_cell(&self.metadata, now),
            Value::from(spec.volume_mode.unwrap_or_else(|| "<unset>".into())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::printers::testing::{ago, cells, object};
    use serde_json::json;

    #[test]
    fn access_modes_print_short_in_kubernetes_order() {
        let modes = vec!["ReadWriteMany".to_string(), "ReadWriteOnce".to_string()];
        assert_eq!(access_modes(Some(&modes)), "RWO,RWX");
        assert_eq!(access_modes(None), "");
    }

    #[test]
    fn bound_volume_and_claim_rows() {
        let pv: PersistentVolume = object(json!({
            "metadata": {"name": "pv1", "creationTimestamp": ago(120)},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
                     "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem",
                     "hostPath": {"path": "/d"}},
            "status": {"phase": "Bound"},
        }));
        assert_eq!(
            cells(&pv),
            vec![
                json!("pv1"),
                json!("1Gi"),
                json!("RWO"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("local"),
                json!("<unset>"),
                json!(""),
                json!("2m"),
                json!("Filesystem"),
            ]
        );
        let pending: PersistentVolumeClaim = object(json!({
            "metadata": {"name": "data", "creationTimestamp": ago(5)},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending"},
        }));
        assert_eq!(
            cells(&pending),
            vec![
                json!("data"),
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
                json!("<unset>"),
                json!("5s"),
                json!("<unset>"),
            ]
        );
    }
}
