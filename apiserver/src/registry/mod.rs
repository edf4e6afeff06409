//! The generic registry: one [`store::Store`] serves every resource, and each
//! kind contributes only a small [`Strategy`] (defaults, validation, what an
//! update may touch) and a [`Printer`] (the `kubectl get` table columns),
//! as Kubernetes' `registry/generic/registry/store.go` does with its
//! per-kind `strategy.go` files.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod field;
pub mod hooks;
pub mod managed;
pub mod printers;
pub mod rest;
pub mod service_alloc;
pub mod store;
pub mod strategies;
mod write;

pub use field::{FieldError, FieldErrorKind, FieldPath};

/// The bounds every stored kind satisfies.
pub trait Object:
    Resource
    + Metadata<Ty = ObjectMeta>
    + Serialize
    + DeserializeOwned
    + Clone
    + Default
    + Send
    + Sync
    + 'static
{
}

impl<T> Object for T where
    T: Resource
        + Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + Clone
        + Default
        + Send
        + Sync
        + 'static
{
}

/// How names of a kind are validated (`metadata.name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds.
    Dns1123Subdomain,
    /// RFC 1123 label: namespaces, services, ...
    Dns1123Label,
    /// Only path-segment safety (no `/`, `%`, not `.` or `..`): events, leases.
    PathSegment,
}

/// The replicas view the `scale` subresource reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleView {
    pub spec_replicas: i32,
    pub status_replicas: i32,
    /// The label selector as a string (`app=web`), as autoscaling/v1 has it.
    pub selector: String,
}

/// The per-kind behaviour of the generic store.
///
/// The store already handles everything kind-independent: system metadata
/// (uid, creationTimestamp, resourceVersion, generation), generateName,
/// namespace, name/label/annotation validation, finalizers and graceful
/// deletion, optimistic concurrency, and the split between the main resource
/// and its `status` subresource (a main update keeps the stored status; a
/// status update keeps everything but status). A strategy adds only what is
/// particular to its kind.
pub trait Strategy: Send + Sync + 'static {
    type Object: Object;

    /// How `metadata.name` is validated.
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Subdomain
    }

    /// Called on create after the store has cleared `status` (for kinds
    /// with a status subresource): set initial status, clear fields the
    /// user may not set.
    fn prepare_for_create(&self, _obj: &mut Self::Object) {}

    /// Called on an update of the main resource, with the stored object.
    fn prepare_for_update(&self, _new: &mut Self::Object, _old: &Self::Object) {}

    /// Fills in defaults, as Kubernetes' `SetDefaults_*` functions do. Runs
    /// on every create and update, so it must be idempotent.
    fn default(&self, _obj: &mut Self::Object) {}

    /// Validates a new object (after defaults). Metadata is checked by the store.
    fn validate(&self, _obj: &Self::Object) -> Vec<FieldError> {
        Vec::new()
    }

    /// Validates an update: by default the new object alone. Kinds with
    /// immutable fields compare against `old`.
    fn validate_update(&self, new: &Self::Object, _old: &Self::Object) -> Vec<FieldError> {
        self.validate(new)
    }

    /// Extra fields usable in `fieldSelector` besides `metadata.name` and
    /// `metadata.namespace` (e.g. `spec.nodeName`, `status.phase` for pods).
    fn selectable_fields(&self, _obj: &Self::Object) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// What [`Strategy::selectable_fields`] reads besides the metadata, as
    /// `common::lean::for_index` paths: the watch cache decodes only these
    /// of every stored object it indexes.
    const FIELD_SOURCES: &'static [&'static str] = &[];

    /// For kinds with a `scale` subresource: the replicas view.
    fn scale(&self, _obj: &Self::Object) -> Option<ScaleView> {
        None
    }

    /// For kinds with a `scale` subresource: sets `spec.replicas`.
    fn set_replicas(&self, _obj: &mut Self::Object, _replicas: i32) {}

    /// For kinds with a `binding` subresource: the node the object is
    /// already assigned to, if any.
    fn bound_node<'a>(&self, _obj: &'a Self::Object) -> Option<&'a str> {
        None
    }

    /// For kinds with a `binding` subresource: assigns `node` (Kubernetes'
    /// `assignPod`), on the typed object so a binding costs one decode and
    /// one encode.
    fn bind(&self, _obj: &mut Self::Object, _node: &str) {}

    /// Graceful deletion (Kubernetes' `CheckGracefulDelete`): the grace
    /// period to wait before the object is really removed, given the one the
    /// client asked for; `None` or `Some(0)` deletes at once. Only pods
    /// delete gracefully.
    fn grace_period(&self, _obj: &Self::Object, _requested: Option<i64>) -> Option<i64> {
        None
    }
}

/// A column of the server-side table (`meta.k8s.io/v1` `TableColumnDefinition`,
/// which k8s-openapi does not carry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: &'static str,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `name` for the NAME column, else empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0 for default columns, 1 for `-o wide` only.
    pub priority: i32,
}

impl Column {
    pub const fn new(
        name: &'static str,
        type_: &'static str,
        priority: i32,
        description: &'static str,
    ) -> Column {
        Column {
            name,
            type_,
            format: "",
            description,
            priority,
        }
    }

    /// The NAME column every table starts with.
    pub const fn name() -> Column {
        Column {
            name: "Name",
            type_: "string",
            format: "name",
            description: "Name must be unique within a namespace. Cannot be updated.",
            priority: 0,
        }
    }
}

/// The server-side table form of a kind (`kubectl get` columns), as
/// Kubernetes' `pkg/printers/internalversion/printers.go` defines it.
/// Columns with `priority > 0` are shown only by `-o wide`.
pub trait Printer {
    fn columns() -> Vec<Column>;
    /// One cell per column; `now` is for the AGE column.
    fn cells(&self, now: jiff::Timestamp) -> Vec<serde_json::Value>;
}
