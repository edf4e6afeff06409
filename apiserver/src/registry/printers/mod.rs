//! Table printers: the `kubectl get` columns of every kind.
//!
//! kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints
//! the cells the server sends, so these follow Kubernetes'
//! `pkg/printers/internalversion/printers.go` column for column. The server
//! side always generates the `-o wide` cells too (Kubernetes' table
//! convertor prints with `Wide: true`); kubectl hides the columns with
//! `priority > 0` unless asked for `-o wide`.
//!
//! Kubernetes prints the internal, defaulted form of an object. Where a
//! `SetDefaults_*` function or the v1-to-internal conversion changes what a
//! cell shows (replicas default to 1, a Service's type to ClusterIP, a
//! Secret's `stringData` is folded into `data`), the printers apply that
//! rule themselves so an object stored without it prints the same.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::Column;

pub mod apps;
pub mod batch;
pub mod coordination;
pub mod core;
pub mod descriptions;
pub mod discovery;
pub mod events;
pub mod format;
pub mod networking;
pub mod node;
pub mod pod;
pub mod scheduling;
pub mod service;
pub mod storage;

use descriptions as doc;

/// The NAME column, with the full `ObjectMeta.name` description that
/// `printers.go` uses.
pub const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: doc::OBJECT_META_NAME,
    priority: 0,
};

/// The AGE column.
pub const AGE: Column = Column::new("Age", "string", 0, doc::OBJECT_META_CREATION_TIMESTAMP);

/// The `-o wide` CONTAINERS column of the workload kinds.
pub const CONTAINERS: Column = Column::new(
    "Containers",
    "string",
    1,
    "Names of each container in the template.",
);

/// The `-o wide` IMAGES column of the workload kinds.
pub const IMAGES: Column = Column::new(
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);

/// The NAME cell.
fn name_cell(meta: &ObjectMeta) -> Value {
    Value::from(meta.name.clone().unwrap_or_default())
}

/// The AGE cell.
fn age_cell(meta: &ObjectMeta, now: Timestamp) -> Value {
    Value::from(format::age(meta.creation_timestamp.as_ref(), now))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the printers' table-driven tests.

    use jiff::Timestamp;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use crate::registry::Printer;

    /// The fixed "now" of every printer test.
    pub const NOW: &str = "2024-05-01T12:00:00Z";

    pub fn now() -> Timestamp {
        NOW.parse().expect("NOW is a valid timestamp")
    }

    /// An RFC 3339 timestamp `secs` seconds before [`NOW`].
    pub fn ago(secs: i64) -> String {
        (now() - jiff::SignedDuration::from_secs(secs)).to_string()
    }

    /// Builds a typed object from JSON, as the API would decode it.
    pub fn object<T: DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).expect("test object decodes")
    }

    /// The cells of `obj` at [`NOW`], checked to match the column count.
    pub fn cells<T: Printer>(obj: &T) -> Vec<Value> {
        let cells = obj.cells(now());
        assert_eq!(cells.len(), T::columns().len(), "one cell per column");
        cells
    }

    /// The names and priorities of a printer's columns.
    pub fn headers<T: Printer>() -> Vec<(&'static str, i32)> {
        T::columns().iter().map(|c| (c.name, c.priority)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_columns_follow_printers_go() {
        assert_eq!(NAME.format, "name");
        assert!(
            NAME.description
                .starts_with("Name must be unique within a namespace.")
        );
        assert_eq!((AGE.name, AGE.type_, AGE.priority), ("Age", "string", 0));
        assert!(
            AGE.description
                .starts_with("CreationTimestamp is a timestamp")
        );
        assert_eq!((CONTAINERS.priority, IMAGES.priority), (1, 1));
    }
}
