//! The generic store: one implementation of get, list, watch, table and
//! scale for every kind, parametrised by the kind's [`Strategy`]. Writes
//! (create, update, patch, delete) live in `write.rs`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use common::ResourceInfo;
use serde_json::{Value, json};

use super::hooks::WriteHooks;
use super::rest::{
    DeleteOptions, ListOptions, ListResult, PatchKind, Registry, Subresource, WatchStart,
    WriteOptions, WriteResult,
};
use super::{Printer, Strategy};
use crate::cache::{Cache, CacheError, CachedObject, ResourceCache};
use crate::error::ApiError;
use crate::storage::{KeyValue, Storage};

/// Checks a body, as an object of `(group, version, kind)`, for fields its
/// schema does not have; returns their paths (`.spec.foo`). Supplied by the
/// OpenAPI module.
pub type UnknownFieldCheck = Arc<dyn Fn(BodyKind, &Value) -> Vec<String> + Send + Sync>;

/// What a body is decoded as: `(group, version, kind)`.
pub type BodyKind = (&'static str, &'static str, &'static str);

/// A scale subresource's body.
pub const SCALE: BodyKind = ("autoscaling", "v1", "Scale");

/// What every store shares: the storage, the caches, and server-wide hooks.
pub struct Shared {
    pub storage: Arc<dyn Storage>,
    pub cache: Arc<Cache>,
    pub namespaces: Arc<ResourceCache>,
    pub unknown_fields: UnknownFieldCheck,
}

/// How long a request waits for the cache to reach a revision the client
/// already knows, before answering "Too large resource version".
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

pub struct Store<S: Strategy> {
    pub(super) info: &'static ResourceInfo,
    pub(super) strategy: Arc<S>,
    pub(super) cache: Arc<ResourceCache>,
    pub(super) shared: Arc<Shared>,
    pub(super) hooks: Option<Arc<dyn WriteHooks>>,
}

/// The continue token: where a paged list resumes, at which revision.
#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: i64,
    start: String,
}

impl<S> Store<S>
where
    S: Strategy,
    S::Object: Printer,
{
    /// Builds the store and registers its cache; `Cache::start` must run
    /// after every store is built.
    pub fn new(
        info: &'static ResourceInfo,
        strategy: Arc<S>,
        cache: Arc<ResourceCache>,
        shared: Arc<Shared>,
    ) -> Store<S> {
        Store {
            info,
            strategy,
            cache,
            shared,
            hooks: None,
        }
    }

    /// Adds the kind's write hooks (e.g. Service address allocation).
    pub fn with_hooks(mut self, hooks: Arc<dyn WriteHooks>) -> Store<S> {
        self.hooks = Some(hooks);
        self
    }

    /// The decoder the cache uses for this kind: typed decode, metadata
    /// and selectable fields extracted once; the stored JSON is kept with
    /// its rv written in, re-encoded only when that cannot be done in place.
    /// The decode reads only the metadata (without managed fields) and the
    /// kind's [`Strategy::FIELD_SOURCES`]: a pod's spec and managed fields
    /// were most of the work of every event. The rare re-encode decodes the
    /// original bytes whole.
    pub fn decoder(strategy: Arc<S>) -> crate::cache::Decoder {
        Box::new(move |bytes: &[u8], rv: i64| {
            let mut de = serde_json::Deserializer::from_slice(bytes);
            let mut obj: S::Object =
                common::lean::for_index(&mut de, S::FIELD_SOURCES).map_err(|e| e.to_string())?;
            de.end().map_err(|e| e.to_string())?;
            let fields = strategy.selectable_fields(&obj);
            // The decoded object is dropped next: its metadata moves out.
            let meta = k8s_openapi::Metadata::metadata_mut(&mut obj);
            let namespace = meta.namespace.take().unwrap_or_default();
            let name = meta.name.take().unwrap_or_default();
            let labels = meta.labels.take().unwrap_or_default();
            let json = match crate::encoded::with_resource_version(bytes, rv) {
                Some(json) => json,
                None => {
                    let mut obj: S::Object =
                        serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
                    k8s_openapi::Metadata::metadata_mut(&mut obj).resource_version =
                        Some(rv.to_string());
                    serde_json::to_vec(&obj).map_err(|e| e.to_string())?
                }
            };
            Ok(CachedObject {
                namespace,
                name,
                labels,
                fields,
                json: Bytes::from(json),
                rv,
            })
        })
    }

    pub(super) fn key(&self, ns: Option<&str>, name: &str) -> String {
        // The cache holds the resource's storage prefix, built once.
        let prefix = self.cache.prefix();
        match (self.info.namespaced(), ns) {
            (true, Some(ns)) => [prefix, ns, "/", name].concat(),
            _ => [prefix, name].concat(),
        }
    }

    /// Decodes a stored value into the typed object with its rv.
    pub(super) fn decode_kv(&self, kv: &KeyValue) -> Result<S::Object, ApiError> {
        let mut obj: S::Object = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
        k8s_openapi::Metadata::metadata_mut(&mut obj).resource_version =
            Some(kv.mod_revision.to_string());
        Ok(obj)
    }

    /// Waits until the cache reflects the store's latest revision, so that
    /// a list without resourceVersion reads its own writes.
    async fn consistent_revision(&self) -> Result<bool, ApiError> {
        let current = self
            .shared
            .storage
            .current_revision()
            .await
            .map_err(|e| ApiError::from_storage(e, self.info, ""))?;
        Ok(self.shared.cache.wait_for(current, FRESHNESS_WAIT).await)
    }

    fn parse_rv(s: &str) -> Result<i64, ApiError> {
        s.parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {s:?}")))
    }

    fn cache_error(e: CacheError) -> ApiError {
        match e {
            CacheError::TooOld { .. } => ApiError::gone(e.to_string()),
            CacheError::TooNew { .. } => ApiError::timeout(e.to_string()),
        }
    }

    /// Lists straight from storage at a revision: continue pages whose
    /// snapshot the cache has moved past.
    async fn list_from_storage(
        &self,
        ns: Option<&str>,
        opts: &ListOptions,
        start_after: Option<&str>,
        revision: i64,
    ) -> Result<ListResult, ApiError> {
        let prefix = match (self.info.namespaced(), ns) {
            (true, Some(ns)) => [self.cache.prefix(), ns, "/"].concat(),
            _ => self.cache.prefix().to_string(),
        };
        let mut items = Vec::new();
        let mut after = start_after.map(str::to_string);
        let decode = Self::decoder(self.strategy.clone());
        loop {
            let page = self
                .shared
                .storage
                .list(
                    &prefix,
                    after.as_deref(),
                    opts.limit.max(500),
                    Some(revision),
                )
                .await
                .map_err(|e| match e {
                    crate::storage::StorageError::Compacted { .. } => {
                        ApiError::gone("The resourceVersion for the provided list is too old.")
                    }
                    e => ApiError::from_storage(e, self.info, ""),
                })?;
            let n = page.kvs.len();
            for kv in &page.kvs {
                after = Some(kv.key.clone());
                let obj = decode(&kv.value, kv.mod_revision).map_err(ApiError::internal)?;
                if self.matches(&obj, opts) {
                    items.push((kv.key.clone(), obj.json));
                    if opts.limit > 0 && items.len() == opts.limit {
                        let token = self.continue_token(revision, &kv.key);
                        return Ok(ListResult {
                            items: items.into_iter().map(|(_, j)| j).collect(),
                            resource_version: revision,
                            continue_token: Some(token),
                            remaining: None,
                        });
                    }
                }
            }
            if n < opts.limit.max(500) {
                break;
            }
        }
        Ok(ListResult {
            items: items.into_iter().map(|(_, j)| j).collect(),
            resource_version: revision,
            continue_token: None,
            remaining: None,
        })
    }

    fn continue_token(&self, rv: i64, start: &str) -> String {
        let raw = serde_json::to_vec(&ContinueToken {
            rv,
            start: start.to_string(),
        })
        .unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Kubernetes' `handleCompactedErrorForPaging`: the snapshot of a
    /// continue token is gone; the 410 offers a token that resumes at the
    /// latest state, at the cost of consistency.
    fn expired_continue(&self, start: &str) -> ApiError {
        let mut e = ApiError::gone(
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter, or use the continue token \
             in this response to retrieve the remainder of the results. Continuing with the \
             provided token results in an inconsistent list - objects that were created, \
             modified, or deleted between the time the first chunk was returned and now may \
             show up in the list.",
        );
        e.list_continue = Some(self.continue_token(-1, start));
        e
    }

    fn parse_continue(token: &str) -> Result<ContinueToken, ApiError> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or_else(|| ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))
    }
}

#[async_trait]
impl<S> Registry for Store<S>
where
    S: Strategy,
    S::Object: Printer,
{
    fn info(&self) -> &'static ResourceInfo {
        self.info
    }

    fn selectable_field_names(&self) -> Vec<&'static str> {
        self.strategy
            .selectable_fields(&S::Object::default())
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    async fn get(
        &self,
        ns: Option<&str>,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Value, ApiError> {
        let key = self.key(ns, name);
        // resourceVersion=0 may be served from the cache; otherwise read the
        // store, which is always current.
        let bytes = if resource_version.is_some_and(|rv| !rv.is_empty()) {
            if let Some(rv) = resource_version.filter(|rv| *rv != "0") {
                let rv = Self::parse_rv(rv)?;
                if !self.shared.cache.wait_for(rv, FRESHNESS_WAIT).await {
                    return Err(ApiError::timeout(format!(
                        "Too large resource version: {rv}, current: {}",
                        self.shared.cache.revision()
                    )));
                }
            }
            self.cache
                .get(&key)
                .map(|o| o.json.clone())
                .ok_or_else(|| ApiError::not_found(self.info, name))?
        } else {
            let kv = self
                .shared
                .storage
                .get(&key)
                .await
                .map_err(|e| ApiError::from_storage(e, self.info, name))?
                .ok_or_else(|| ApiError::not_found(self.info, name))?;
            let obj = self.decode_kv(&kv)?;
            Bytes::from(serde_json::to_vec(&obj).map_err(|e| ApiError::internal(e.to_string()))?)
        };
        serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(e.to_string()))
    }

    async fn list(&self, ns: Option<&str>, opts: &ListOptions) -> Result<ListResult, ApiError> {
        let ns = ns.filter(|_| self.info.namespaced());
        if let Some(token) = &opts.continue_token {
            let t = Self::parse_continue(token)?;
            // rv -1: continue at the latest state (the token a 410 hands out).
            if t.rv != -1 && self.shared.cache.revision() != t.rv {
                return match self.list_from_storage(ns, opts, Some(&t.start), t.rv).await {
                    Err(e) if e.code == 410 => Err(self.expired_continue(&t.start)),
                    other => other,
                };
            }
            let (objs, rv, more) = self
                .cache
                .list(ns, Some(&t.start), opts.limit, |o| self.matches(o, opts));
            return Ok(self.list_result(objs, rv, more));
        }
        match (
            opts.resource_version.as_deref(),
            opts.resource_version_match.as_deref(),
        ) {
            (Some(rv), Some("Exact")) => {
                let rv = Self::parse_rv(rv)?;
                if rv != self.shared.cache.revision() {
                    return self.list_from_storage(ns, opts, None, rv).await;
                }
            }
            (None | Some(""), _) => {
                if !self.consistent_revision().await? {
                    let rev = self
                        .shared
                        .storage
                        .current_revision()
                        .await
                        .map_err(|e| ApiError::from_storage(e, self.info, ""))?;
                    return self.list_from_storage(ns, opts, None, rev).await;
                }
            }
            (Some("0"), _) => {}
            (Some(rv), _) => {
                let rv = Self::parse_rv(rv)?;
                if !self.shared.cache.wait_for(rv, FRESHNESS_WAIT).await {
                    return Err(ApiError::timeout(format!(
                        "Too large resource version: {rv}, current: {}",
                        self.shared.cache.revision()
                    )));
                }
            }
        }
        let (objs, rv, more) = self
            .cache
            .list(ns, None, opts.limit, |o| self.matches(o, opts));
        Ok(self.list_result(objs, rv, more))
    }

    async fn watch(&self, ns: Option<&str>, opts: &ListOptions) -> Result<WatchStart, ApiError> {
        let ns = ns.filter(|_| self.info.namespaced());
        let from = match opts.resource_version.as_deref() {
            None | Some("") | Some("0") => None,
            Some(rv) => Some(Self::parse_rv(rv)?),
        };
        // sendInitialEvents=true asks for the state first even with an rv.
        let from = if opts.send_initial_events == Some(true) {
            None
        } else {
            from
        };
        if let Some(rv) = from {
            self.shared.cache.wait_for(rv, FRESHNESS_WAIT).await;
        } else if opts.resource_version.as_deref().is_none_or(str::is_empty) {
            self.consistent_revision().await?;
        }
        let start = self.cache.watch(ns, from).map_err(Self::cache_error)?;
        let initial_rv = self.shared.cache.revision();
        Ok(WatchStart {
            initial: start.initial,
            live: start.live,
            reloaded: start.reloaded,
            cache: self.cache.clone(),
            initial_rv,
        })
    }

    async fn create(
        &self,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        self.do_create(ns, body, opts).await
    }

    async fn create_json(
        &self,
        ns: Option<&str>,
        body: &[u8],
        opts: &WriteOptions,
    ) -> Result<Option<WriteResult>, ApiError> {
        match self.decode_create(body, opts) {
            Some(obj) => self
                .create_object(ns, obj, Vec::new(), opts)
                .await
                .map(Some),
            None => Ok(None),
        }
    }

    async fn update(
        &self,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        if sub == Subresource::Scale {
            return self.update_scale(ns, name, body, opts).await;
        }
        self.do_update(ns, name, body, sub, opts).await
    }

    async fn patch(
        &self,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        self.do_patch(ns, name, kind, patch, sub, opts).await
    }

    async fn delete(
        &self,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<WriteResult, ApiError> {
        self.do_delete(ns, name, opts).await
    }

    async fn delete_collection(
        &self,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let ns = ns.filter(|_| self.info.namespaced());
        let (objs, _, _) = self.cache.list(ns, None, 0, |o| self.matches(o, list));
        let mut out = Vec::with_capacity(objs.len());
        for o in objs {
            let ns = (!o.namespace.is_empty()).then_some(o.namespace.as_str());
            match self.do_delete(ns, &o.name, opts).await {
                Ok(r) => out.push(r.object),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn get_scale(&self, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let key = self.key(ns, name);
        let kv = self
            .shared
            .storage
            .get(&key)
            .await
            .map_err(|e| ApiError::from_storage(e, self.info, name))?
            .ok_or_else(|| ApiError::not_found(self.info, name))?;
        let obj = self.decode_kv(&kv)?;
        self.scale_of(&obj)
    }

    async fn bind(
        &self,
        ns: Option<&str>,
        name: &str,
        binding: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        self.do_bind(ns, name, binding, opts).await
    }

    fn to_table(
        &self,
        items: &[Bytes],
        include_object: &str,
        with_headers: bool,
    ) -> Result<Value, ApiError> {
        let now = jiff::Timestamp::now();
        let mut rows = Vec::with_capacity(items.len());
        for raw in items {
            let obj: S::Object =
                serde_json::from_slice(raw).map_err(|e| ApiError::internal(e.to_string()))?;
            let object = match include_object {
                "None" => Value::Null,
                "Object" => {
                    serde_json::from_slice(raw).map_err(|e| ApiError::internal(e.to_string()))?
                }
                _ => {
                    let meta = k8s_openapi::Metadata::metadata(&obj);
                    json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": meta,
                    })
                }
            };
            rows.push(json!({"cells": obj.cells(now), "object": object}));
        }
        let mut table = json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {},
            "rows": rows,
        });
        if with_headers {
            table["columnDefinitions"] = serde_json::to_value(S::Object::columns())
                .map_err(|e| ApiError::internal(e.to_string()))?;
        } else {
            table["columnDefinitions"] = Value::Array(Vec::new());
        }
        Ok(table)
    }
}

impl<S> Store<S>
where
    S: Strategy,
    S::Object: Printer,
{
    fn list_result(
        &self,
        objs: Vec<Arc<CachedObject>>,
        rv: i64,
        more: Option<String>,
    ) -> ListResult {
        ListResult {
            items: objs.iter().map(|o| o.json.clone()).collect(),
            resource_version: rv,
            continue_token: more.map(|k| self.continue_token(rv, &k)),
            remaining: None,
        }
    }

    /// The autoscaling/v1 Scale view of an object.
    pub(super) fn scale_of(&self, obj: &S::Object) -> Result<Value, ApiError> {
        let view = self
            .strategy
            .scale(obj)
            .ok_or_else(|| ApiError::path_not_found("scale"))?;
        let meta = k8s_openapi::Metadata::metadata(obj);
        Ok(json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta.name,
                "namespace": meta.namespace,
                "uid": meta.uid,
                "resourceVersion": meta.resource_version,
                "creationTimestamp": meta.creation_timestamp,
            },
            "spec": {"replicas": view.spec_replicas},
            "status": {"replicas": view.status_replicas, "selector": view.selector},
        }))
    }
}
