//! The type-erased face of a resource's store, which the HTTP layer routes
//! to: one `dyn Registry` per served resource, with request options parsed
//! from query strings and bodies as Kubernetes defines them.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use common::ResourceInfo;
use common::selector::{FieldSel, LabelSel};
use serde_json::Value;

use crate::cache::{CacheEvent, ResourceCache};
use crate::error::ApiError;

/// `fieldValidation`: what to do with unknown or duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Options of list and watch requests.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label: LabelSel,
    pub field: FieldSel,
    pub limit: usize,
    pub continue_token: Option<String>,
    /// `resourceVersion` as sent ("" and "0" are meaningful and distinct).
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub send_initial_events: Option<bool>,
}

/// Options of create, update and patch requests.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    /// `fieldManager`, or a name derived from the User-Agent as Kubernetes does.
    pub field_manager: String,
    pub field_validation: FieldValidation,
    /// `force` for server-side apply.
    pub force: bool,
    /// Strict decoding errors found in the raw JSON request body, in
    /// document order as Kubernetes' decoder reports them: for a create or
    /// update its unknown and duplicate fields (`unknown field "spec.foo"`);
    /// for a patch its duplicate fields, to which the patched object's
    /// unknown fields are added. `None` for other bodies, whose unknown
    /// fields are found on the decoded object.
    pub body_field_errors: Option<Vec<String>>,
    /// A server-side apply body's duplicate YAML keys, as sigs.k8s.io/yaml
    /// reports them (`line 3: key "replicas" already set in map`).
    pub apply_yaml_duplicates: Vec<String>,
}

/// `DeleteOptions`, from the query string and/or the request body.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
    Scale,
}

/// A write's outcome: the object (or Status) to return and its HTTP code.
#[derive(Debug, Clone)]
pub struct WriteResult {
    /// The object or Status to answer with; `Value::Null` when `encoded`
    /// holds it.
    pub object: Value,
    pub code: u16,
    /// `Warning` headers (e.g. unknown fields under fieldValidation=Warn).
    pub warnings: Vec<String>,
    /// `object` already encoded as JSON, when the write has it at hand
    /// (a create: the stored bytes with their resourceVersion); the answer
    /// is then sent without encoding `object` again.
    pub encoded: Option<Bytes>,
}

/// A list's outcome, with the items still serialized.
#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<Bytes>,
    pub resource_version: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

/// A started watch: the first events, then the live feed of the cache,
/// which the HTTP layer filters with [`Registry::watch_filter`].
pub struct WatchStart {
    pub initial: Vec<Arc<CacheEvent>>,
    pub live: tokio::sync::broadcast::Receiver<Arc<CacheEvent>>,
    pub reloaded: tokio::sync::watch::Receiver<u64>,
    pub cache: Arc<ResourceCache>,
    /// Resource version of the state the initial events show (for the
    /// `initial-events-end` bookmark).
    pub initial_rv: i64,
}

/// One resource's REST storage, type-erased for routing.
#[async_trait]
pub trait Registry: Send + Sync {
    fn info(&self) -> &'static ResourceInfo;

    async fn get(
        &self,
        ns: Option<&str>,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Value, ApiError>;

    async fn list(&self, ns: Option<&str>, opts: &ListOptions) -> Result<ListResult, ApiError>;

    async fn watch(&self, ns: Option<&str>, opts: &ListOptions) -> Result<WatchStart, ApiError>;

    async fn create(
        &self,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError>;

    /// A create from a JSON body's bytes, decoded straight into the kind's
    /// type; `None` when the body needs [`Registry::create`]'s general path
    /// (it does not decode, or strict decoding may have something to say
    /// about it), which then answers exactly as it would have.
    async fn create_json(
        &self,
        ns: Option<&str>,
        body: &[u8],
        opts: &WriteOptions,
    ) -> Result<Option<WriteResult>, ApiError>;

    async fn update(
        &self,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError>;

    async fn patch(
        &self,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError>;

    async fn delete(
        &self,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<WriteResult, ApiError>;

    async fn delete_collection(
        &self,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError>;

    /// `GET .../scale`: the autoscaling/v1 Scale of the object.
    async fn get_scale(&self, ns: Option<&str>, name: &str) -> Result<Value, ApiError>;

    /// `POST pods/<name>/binding`.
    async fn bind(
        &self,
        ns: Option<&str>,
        name: &str,
        binding: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError>;

    /// Field selector names this resource supports besides
    /// `metadata.name` and `metadata.namespace`.
    fn selectable_field_names(&self) -> Vec<&'static str>;

    /// Refuses field selectors on fields the resource does not support,
    /// as Kubernetes does (`field label not supported: spec.foo`).
    fn check_field_selector(&self, opts: &ListOptions) -> Result<(), ApiError> {
        let names = self.selectable_field_names();
        for f in opts.field.fields() {
            if f != "metadata.name" && f != "metadata.namespace" && !names.contains(&f) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {f}"
                )));
            }
        }
        Ok(())
    }

    /// Whether a cached object passes a list/watch's selectors.
    fn matches(&self, obj: &crate::cache::CachedObject, opts: &ListOptions) -> bool {
        opts.label.matches(&obj.labels) && opts.field.matches(|f| obj.field(f))
    }

    /// Renders objects as a `meta.k8s.io/v1` Table (`kubectl get`).
    /// `include_object` is `None`, `Metadata` or `Object`.
    fn to_table(
        &self,
        items: &[Bytes],
        include_object: &str,
        with_headers: bool,
    ) -> Result<Value, ApiError>;
}
