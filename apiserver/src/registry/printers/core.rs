//! The small core/v1 tables: namespaces (STATUS), configmaps (DATA),
//! secrets (TYPE DATA) and serviceaccounts (SECRETS).

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use serde_json::Value;

use super::descriptions as doc;
use super::{AGE, NAME, age_cell, name_cell};
use crate::registry::{Column, Printer};

impl Printer for Namespace {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Status", "string", 0, "The status of the namespace"),
            AGE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        // SetDefaults_NamespaceStatus: an unset phase is Active.
        let phase = self
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .filter(|p| !p.is_empty())
            .unwrap_or("Active");
        vec![
            name_cell(&self.metadata),
            Value::from(phase),
            age_cell(&self.metadata, now),
        ]
    }
}

impl Printer for ConfigMap {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Data", "string", 0, doc::CONFIG_MAP_DATA),
            AGE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let data = self.data.as_ref().map_or(0, |d| d.len())
            + self.binary_data.as_ref().map_or(0, |d| d.len());
        vec![
            name_cell(&self.metadata),
            Value::from(data as i64),
            age_cell(&self.metadata, now),
        ]
    }
}

impl Printer for Secret {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Type", "string", 0, doc::SECRET_TYPE),
            Column::new("Data", "string", 0, doc::SECRET_DATA),
            AGE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        // SetDefaults_Secret: an unset type is Opaque.
        let type_ = self
            .type_
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("Opaque");
        // The v1-to-internal conversion folds stringData into data, so a key
        // present in both counts once.
        let keys: BTreeSet<&str> = self
            .data
            .iter()
            .flat_map(|d| d.keys())
            .chain(self.string_data.iter().flat_map(|d| d.keys()))
            .map(String::as_str)
            .collect();
        vec![
            name_cell(&self.metadata),
            Value::from(type_),
            Value::from(keys.len() as i64),
            age_cell(&self.metadata, now),
        ]
    }
}

impl Printer for ServiceAccount {
    fn columns() -> Vec<Column> {
        vec![
            NAME,
            Column::new("Secrets", "string", 0, doc::SERVICE_ACCOUNT_SECRETS),
            AGE,
        ]
    }

    fn cells(&self, now: Timestamp) -> Vec<Value> {
        let secrets = self.secrets.as_ref().map_or(0, |s| s.len());
        vec![
            name_cell(&self.metadata),
            Value::from(secrets as i64),
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
    fn namespace_prints_phase_defaulting_to_active() {
        assert_eq!(
            headers::<Namespace>(),
            [("Name", 0), ("Status", 0), ("Age", 0)]
        );
        let cases = [
            (json!({}), "Active"),
            (json!({"phase": "Active"}), "Active"),
            (json!({"phase": "Terminating"}), "Terminating"),
        ];
        for (status, want) in cases {
            let ns: Namespace = object(json!({
                "metadata": {"name": "team-a", "creationTimestamp": ago(2 * 86400 + 3 * 3600)},
                "status": status,
            }));
            assert_eq!(cells(&ns), [json!("team-a"), json!(want), json!("2d3h")]);
        }
    }

    #[test]
    fn configmap_counts_data_and_binary_data() {
        assert_eq!(
            headers::<ConfigMap>(),
            [("Name", 0), ("Data", 0), ("Age", 0)]
        );
        let cases = [
            (json!({}), 0),
            (json!({"data": {"a": "1", "b": "2"}}), 2),
            (json!({"data": {"a": "1"}, "binaryData": {"b": "AAE="}}), 2),
        ];
        for (fields, want) in cases {
            let mut v = json!({"metadata": {"name": "cfg", "creationTimestamp": ago(42)}});
            v.as_object_mut()
                .expect("object")
                .extend(fields.as_object().expect("object").clone());
            let cm: ConfigMap = object(v);
            assert_eq!(cells(&cm), [json!("cfg"), json!(want), json!("42s")]);
        }
    }

    #[test]
    fn secret_prints_type_and_merged_key_count() {
        assert_eq!(
            headers::<Secret>(),
            [("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)]
        );
        let cases = [
            (json!({}), "Opaque", 0),
            (
                json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}}),
                "kubernetes.io/tls",
                2,
            ),
            (
                json!({"data": {"a": "eA=="}, "stringData": {"a": "y", "b": "z"}}),
                "Opaque",
                2,
            ),
        ];
        for (fields, type_, data) in cases {
            let mut v = json!({"metadata": {"name": "s", "creationTimestamp": ago(600)}});
            v.as_object_mut()
                .expect("object")
                .extend(fields.as_object().expect("object").clone());
            let secret: Secret = object(v);
            assert_eq!(
                cells(&secret),
                [json!("s"), json!(type_), json!(data), json!("10m")]
            );
        }
    }

    #[test]
    fn serviceaccount_counts_secrets() {
        assert_eq!(
            headers::<ServiceAccount>(),
            [("Name", 0), ("Secrets", 0), ("Age", 0)]
        );
        let sa: ServiceAccount = object(json!({
            "metadata": {"name": "default", "creationTimestamp": ago(5)},
            "secrets": [{"name": "default-token"}],
        }));
        assert_eq!(cells(&sa), [json!("default"), json!(1), json!("5s")]);
        let bare: ServiceAccount = object(json!({"metadata": {"name": "builder"}}));
        assert_eq!(
            cells(&bare),
            [json!("builder"), json!(0), json!("<unknown>")]
        );
    }
}
