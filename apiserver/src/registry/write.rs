//! The write pipeline of the generic store, in Kubernetes' order
//! (`rest.BeforeCreate` / `BeforeUpdate`): decode → system metadata →
//! namespace → strategy prepare → defaults → validation → persist with a
//! revision precondition. Unconditional updates and patches retry on a
//! lost race; writes carrying a resourceVersion answer 409 instead.

use bytes::Bytes;
use k8s_openapi::Metadata;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

use super::managed;
use super::rest::{
    DeleteOptions, FieldValidation, PatchKind, Subresource, WriteOptions, WriteResult,
};
use super::store::{BodyKind, SCALE, Store};
use super::strategies::validation::validate_object_meta;
use super::{FieldError, FieldPath, Printer, Strategy};
use crate::cache::CreateHint;
use crate::error::ApiError;
use crate::storage::{KeyValue, StorageError};

/// How many times an unconditional write retries a lost race.
const MAX_RETRIES: usize = 16;

/// Letters Kubernetes uses for generateName suffixes (no vowels, no
/// look-alikes, so random names never spell words).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A namespace's phase: all a create needs of it, read without building the
/// rest of the namespace, when it is not in the watch cache.
#[derive(serde::Deserialize)]
struct NamespacePhase {
    #[serde(default)]
    status: PhaseOnly,
}

#[derive(serde::Deserialize, Default)]
struct PhaseOnly {
    #[serde(default)]
    phase: Option<String>,
}

pub(super) fn now() -> Time {
    let now = jiff::Timestamp::now();
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// A random (version 4) UID from the thread's CSPRNG; `Uuid::new_v4`
/// asks the kernel for each one, a system call per create.
fn new_uid() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect()
}

/// Everything but metadata and status: what a generation bump compares.
fn spec_part(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A created object's stored bytes, and where its resourceVersion goes
/// when they came with spliced managed fields.
type Encoded = (Bytes, Option<crate::encoded::WithManagedFields>);

/// What a create records in `metadata.managedFields`. It is decided on the
/// object as decoded and defaulted, before admission and the strategy's
/// preparation change it, because kube-apiserver's create handler runs the
/// field manager there (`handlers/create.go`): what those add (a pod's
/// service-account volume and mounts, its tolerations and priority, a
/// Job's generated selector) belongs to no manager.
enum Recorded {
    /// Nothing to record (no manager is named, or the create owns
    /// nothing): the object's own managed fields, if any, stay as sent.
    Nothing,
    /// The entry as JSON text, to splice into the encoded object.
    Json(Vec<u8>),
    /// What the general bookkeeping made of managed fields the object
    /// brought: the whole `managedFields` value, or none.
    Tree(Option<Value>),
}

impl Recorded {
    /// Puts the managed fields into the object's tree.
    fn apply_to(&self, v: &mut Value) -> Result<(), ApiError> {
        let managed = match self {
            Recorded::Nothing => return Ok(()),
            Recorded::Json(json) => Some(decode_value(json)?),
            Recorded::Tree(managed) => managed.clone(),
        };
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            match managed {
                Some(managed) => meta.insert("managedFields".to_string(), managed),
                None => meta.remove("managedFields"),
            };
        }
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(obj: &T) -> Result<Value, ApiError> {
    serde_json::to_value(obj).map_err(|e| ApiError::internal(e.to_string()))
}

fn encode_value(v: &Value) -> Result<Bytes, ApiError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

fn decode_value(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::internal(e.to_string()))
}

impl<S> Store<S>
where
    S: Strategy,
    S::Object: Printer,
{
    fn has_status(&self) -> bool {
        self.info.subresources.contains(&"status")
    }

    /// Kinds whose `metadata.generation` counts spec changes.
    fn tracks_generation(&self) -> bool {
        matches!(
            self.info.group,
            "apps" | "batch" | "networking.k8s.io" | "scheduling.k8s.io"
        )
    }

    /// Kubernetes lets a PUT create these (`AllowCreateOnUpdate`).
    fn allow_create_on_update(&self) -> bool {
        matches!(
            self.info.plural,
            "endpoints" | "events" | "leases" | "endpointslices"
        )
    }

    /// Kinds whose DELETE answers with the deleted object rather than a
    /// Status (`ReturnDeletedObject` in their Kubernetes storage).
    fn returns_deleted_object(&self) -> bool {
        self.info.group.is_empty() && matches!(self.info.plural, "pods" | "services" | "namespaces")
    }

    /// Checks apiVersion/kind and unknown fields; returns warnings.
    fn check_body(&self, body: &Value, opts: &WriteOptions) -> Result<Vec<String>, ApiError> {
        self.check_identity(body)?;
        if opts.field_validation == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        let problems = match &opts.body_field_errors {
            Some(errors) => errors.clone(),
            None => self.unknown_fields(self.body_kind(), body),
        };
        warn_or_refuse(opts.field_validation, problems, |list| {
            cannot_handle(self.info.kind, self.info.version, list)
        })
    }

    /// A PATCH's strict decoding, as `handlers/patch.go` does it: the raw
    /// patch's duplicate fields (found by the HTTP layer), then the patched
    /// object's unknown fields; `Strict` answers 422 Invalid on `patch`,
    /// showing the patched object (the patch itself, in Go's `%+v`, for a
    /// strategic merge patch).
    /// `patched` is what the patch applied to: the object, or its Scale
    /// for the scale subresource.
    fn check_patched(
        &self,
        patched: &Value,
        body_kind: BodyKind,
        patch: &Value,
        kind: PatchKind,
        opts: &WriteOptions,
    ) -> Result<Vec<String>, ApiError> {
        if opts.field_validation == FieldValidation::Ignore {
            return Ok(Vec::new());
        }
        let mut problems = opts.body_field_errors.clone().unwrap_or_default();
        problems.extend(self.unknown_fields(body_kind, patched));
        warn_or_refuse(opts.field_validation, problems, |list| {
            let shown = match kind {
                PatchKind::Strategic => go_value(patch),
                _ => patched.to_string(),
            };
            ApiError::invalid_without_kind(&[FieldError::invalid(
                &FieldPath::new("patch"),
                shown,
                &format!("strict decoding error: {list}"),
            )])
        })
    }

    fn body_kind(&self) -> BodyKind {
        (self.info.group, self.info.version, self.info.kind)
    }

    fn unknown_fields(&self, body_kind: BodyKind, body: &Value) -> Vec<String> {
        (self.shared.unknown_fields)(body_kind, body)
            .iter()
            .map(|f| format!("unknown field {:?}", f.trim_start_matches('.')))
            .collect()
    }

    /// The body must be an object of this resource's apiVersion and kind.
    fn check_identity(&self, body: &Value) -> Result<(), ApiError> {
        let Value::Object(map) = body else {
            return Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: the body must be a JSON object",
                self.info.kind, self.info.version, self.info.kind
            )));
        };
        if let Some(av) = map.get("apiVersion").and_then(Value::as_str)
            && av != self.info.api_version()
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                self.info.api_version()
            )));
        }
        if let Some(kind) = map.get("kind").and_then(Value::as_str)
            && kind != self.info.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                self.info.kind
            )));
        }
        Ok(())
    }

    /// An apply body names its own apiVersion, kind and name, and they must
    /// be the request's.
    fn check_apply_body(&self, name: &str, applied: &Value) -> Result<(), ApiError> {
        let av = applied["apiVersion"].as_str().unwrap_or_default();
        let kind = applied["kind"].as_str().unwrap_or_default();
        if av.is_empty() || kind.is_empty() {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an apply patch",
            ));
        }
        let body_name = applied["metadata"]["name"].as_str().unwrap_or_default();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        Ok(())
    }

    /// Decodes a JSON object into the kind's type; a type mismatch is the
    /// client's error (400), worded as Kubernetes words it.
    fn parse(&self, body: Value) -> Result<S::Object, ApiError> {
        serde_json::from_value(body).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: {e}",
                self.info.kind, self.info.version, self.info.kind
            ))
        })
    }

    /// The namespace must exist and not be terminating.
    async fn check_namespace(&self, ns: &str, name: &str) -> Result<(), ApiError> {
        let key = format!("/registry/namespaces/{ns}");
        // As kube-apiserver's NamespaceLifecycle admission: a namespace in
        // phase Terminating (set with its deletionTimestamp) takes nothing
        // new. Every create asks, so the cache's index answers when it can.
        let phase = match self.shared.namespaces.get(&key) {
            Some(o) => Some(o.field("status.phase").unwrap_or_default()),
            None => self
                .shared
                .storage
                .get(&key)
                .await
                .map_err(|e| ApiError::from_storage(e, self.info, name))?
                .map(|kv| {
                    serde_json::from_slice::<NamespacePhase>(&kv.value)
                        .ok()
                        .and_then(|ns| ns.status.phase)
                        .unwrap_or_default()
                }),
        };
        let Some(phase) = phase else {
            let ns_info = common::resources::find("", "v1", "namespaces").unwrap_or(self.info);
            return Err(ApiError::not_found(ns_info, ns));
        };
        let terminating = phase == "Terminating";
        if terminating {
            return Err(ApiError::forbidden(
                self.info,
                name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            ));
        }
        Ok(())
    }

    fn validate_meta(&self, obj: &S::Object) -> Vec<FieldError> {
        validate_object_meta(
            obj.metadata(),
            self.info.namespaced(),
            self.strategy.name_rule(),
        )
    }

    /// The stored form: the object without its resourceVersion (the
    /// store's revision is the version), which is put back afterwards.
    fn serialize_for_storage(obj: &mut S::Object) -> Result<Bytes, ApiError> {
        let rv = obj.metadata_mut().resource_version.take();
        let bytes = serde_json::to_vec(&*obj)
            .map(Bytes::from)
            .map_err(|e| ApiError::internal(e.to_string()));
        obj.metadata_mut().resource_version = rv;
        bytes
    }

    fn respond(
        obj: &S::Object,
        rev: Option<i64>,
        code: u16,
        warnings: Vec<String>,
    ) -> Result<WriteResult, ApiError> {
        let mut obj = obj.clone();
        if let Some(rev) = rev {
            obj.metadata_mut().resource_version = Some(rev.to_string());
        }
        Ok(WriteResult {
            object: to_json(&obj)?,
            code,
            warnings,
            encoded: None,
        })
    }

    pub(super) async fn do_create(
        &self,
        ns: Option<&str>,
        mut body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let warnings = self.check_body(&body, opts)?;
        // Status is the controllers' to write; a create starts without it
        // (nodes are registered by their kubelet with a status, so keep it).
        if self.has_status()
            && self.info.plural != "nodes"
            && let Some(m) = body.as_object_mut()
        {
            m.remove("status");
        }
        let obj = self.parse(body)?;
        self.create_object(ns, obj, warnings, opts).await
    }

    /// [`Self::do_create`]'s decoding for a JSON body, without the tree:
    /// the object, or `None` wherever the general path must answer (a body
    /// that does not decode as the kind, a wrong apiVersion or kind, which
    /// the type refuses, or a body strict decoding may have something to
    /// say about, which the general path's exact check words).
    pub(super) fn decode_create(&self, body: &[u8], opts: &WriteOptions) -> Option<S::Object> {
        let check = common::strict::StrictCheck::new();
        let mut de = serde_json::Deserializer::from_slice(body);
        let obj = if self.has_status() && self.info.plural != "nodes" {
            common::lean::without_member(check.wrap(&mut de), "status")
        } else {
            serde::Deserialize::deserialize(check.wrap(&mut de))
        };
        let obj = obj.ok()?;
        de.end().ok()?;
        // Every test run checks the one-pass check against the exact one.
        #[cfg(debug_assertions)]
        if check.passed() {
            let (group, version, kind) = self.body_kind();
            let exact = crate::openapi::validate::strict_errors(group, version, kind, body);
            assert!(
                exact.as_ref().is_ok_and(Vec::is_empty),
                "the one-pass strict check passed {:?}, the exact check found {exact:?}",
                String::from_utf8_lossy(body)
            );
        }
        (opts.field_validation == FieldValidation::Ignore || check.passed()).then_some(obj)
    }

    /// The rest of a create, from the decoded object on.
    pub(super) async fn create_object(
        &self,
        ns: Option<&str>,
        mut obj: S::Object,
        warnings: Vec<String>,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let name_given = obj
            .metadata()
            .name
            .as_deref()
            .is_some_and(|n| !n.is_empty());
        let name = self.prepare_create_meta(ns, &mut obj)?;
        if let (true, Some(ns)) = (self.info.namespaced(), obj.metadata().namespace.clone()) {
            self.check_namespace(&ns, &name).await?;
        }
        self.strategy.default(&mut obj);
        let recorded = self.record_create(&obj, opts)?;
        self.strategy.prepare_for_create(&mut obj);
        // What preparation added is defaulted too, as Kubernetes does when
        // it reads the stored object back.
        self.strategy.default(&mut obj);
        let mut errs = self.validate_meta(&obj);
        errs.extend(self.strategy.validate(&obj));
        if !errs.is_empty() {
            return Err(ApiError::invalid(self.info, &name, &errs));
        }
        let key = self.key(obj.metadata().namespace.as_deref(), &name);
        let generated = obj
            .metadata()
            .generate_name
            .as_deref()
            .filter(|g| !name_given && !g.is_empty())
            .map(|g| g.chars().take(58).collect::<String>());
        let (encoded, hint) = match self.encode_created(&obj, &recorded, opts)? {
            Some(encoded) => {
                // The watch cache is told what it would decode from these
                // bytes, when its events will carry them.
                let hinted = self.shared.storage.watchers_get_written_buffers();
                let hint = encoded.1.as_ref().filter(|_| hinted).map(|with| {
                    let meta = obj.metadata();
                    CreateHint {
                        namespace: meta.namespace.clone().unwrap_or_default(),
                        name: name.clone(),
                        labels: meta.labels.clone().unwrap_or_default(),
                        fields: self.strategy.selectable_fields(&obj),
                        encoded: with.clone(),
                    }
                });
                (encoded, hint)
            }
            None => {
                let mut v = to_json(&obj)?;
                drop(obj);
                if opts.dry_run {
                    recorded.apply_to(&mut v)?;
                    return Ok(WriteResult {
                        object: v,
                        code: 201,
                        warnings,
                        encoded: None,
                    });
                }
                (
                    self.encode_created_tree(v, &recorded, &key, &name).await?,
                    None,
                )
            }
        };
        self.store_created(key, name, encoded, generated, warnings, hint)
            .await
    }

    /// [`Recorded`] for a create of `obj`: written from the typed object
    /// where the walk can, else from its tree.
    fn record_create(&self, obj: &S::Object, opts: &WriteOptions) -> Result<Recorded, ApiError> {
        let manager = &opts.field_manager;
        if manager.is_empty() {
            return Ok(Recorded::Nothing);
        }
        let has_managed_fields = obj.metadata().managed_fields.is_some();
        if let Some(record) =
            managed::create_record_typed(self.info, obj, has_managed_fields, manager)
        {
            return Ok(match record {
                managed::CreateRecord::Json(json) => Recorded::Json(json),
                _ => Recorded::Nothing,
            });
        }
        let mut v = to_json(obj)?;
        Ok(match managed::create_record(self.info, &v, manager) {
            managed::CreateRecord::Json(json) => Recorded::Json(json),
            managed::CreateRecord::Nothing => Recorded::Nothing,
            managed::CreateRecord::General => {
                managed::record_value(self.info, None, &mut v, manager, Subresource::Main);
                Recorded::Tree(
                    v.get_mut("metadata")
                        .and_then(|m| m.as_object_mut())
                        .and_then(|m| m.remove("managedFields")),
                )
            }
        })
    }

    /// The common create: the typed object encoded straight to bytes, its
    /// managed fields spliced in, without a JSON tree. `None` when the tree
    /// path must run (dry run, write hooks, or managed fields the general
    /// bookkeeping made).
    fn encode_created(
        &self,
        obj: &S::Object,
        recorded: &Recorded,
        opts: &WriteOptions,
    ) -> Result<Option<Encoded>, ApiError> {
        if opts.dry_run || self.hooks.is_some() || matches!(recorded, Recorded::Tree(_)) {
            return Ok(None);
        }
        let encoded = serde_json::to_vec(obj).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(match recorded {
            Recorded::Json(json) => crate::encoded::with_managed_fields(&encoded, json)
                .map(|with| (with.bytes.clone(), Some(with))),
            _ => Some((Bytes::from(encoded), None)),
        })
    }

    /// A create through the object's JSON tree: what the typed path leaves.
    async fn encode_created_tree(
        &self,
        mut v: Value,
        recorded: &Recorded,
        key: &str,
        name: &str,
    ) -> Result<Encoded, ApiError> {
        // The create's managed fields are spliced into the encoded object
        // as JSON text where they can be, else put into the tree.
        if !matches!(recorded, Recorded::Json(_)) {
            recorded.apply_to(&mut v)?;
        }
        if let Some(h) = &self.hooks {
            // A duplicate is AlreadyExists, not a clash of its allocations.
            if self.read(key, name).await?.is_some() {
                return Err(ApiError::already_exists(self.info, name));
            }
            h.before_create(&mut v).await?;
        }
        let bytes = encode_value(&v)?;
        if let Recorded::Json(json) = recorded {
            return Ok(match crate::encoded::with_managed_fields(&bytes, json) {
                Some(with) => (with.bytes.clone(), Some(with)),
                None => {
                    recorded.apply_to(&mut v)?;
                    (encode_value(&v)?, None)
                }
            });
        }
        Ok((bytes, None))
    }

    /// Stores a created object's bytes and answers with them.
    async fn store_created(
        &self,
        mut key: String,
        mut name: String,
        // The bytes, and where the answer's resourceVersion goes when it
        // was found while splicing.
        (mut bytes, mut spliced): Encoded,
        generated: Option<String>,
        warnings: Vec<String>,
        hint: Option<CreateHint>,
    ) -> Result<WriteResult, ApiError> {
        // A generated name that happens to be taken is generated again, as
        // Kubernetes does (RetryGenerateName, GA in 1.31, 7 retries); the
        // hint is for the first key and bytes only.
        let mut retries = if generated.is_some() { 7 } else { 0 };
        if let Some(hint) = hint {
            self.cache.expect_create(&key, hint);
        }
        loop {
            let created = self.shared.storage.create(&key, bytes.clone()).await;
            if created.is_err() {
                self.cache.withdraw_create(&key, &bytes);
            }
            match created {
                Ok(rev) => {
                    // The answer is the stored bytes with their revision.
                    let answer = match &spliced {
                        Some(with) => Some(with.with_resource_version(rev)),
                        None => crate::encoded::with_resource_version(&bytes, rev),
                    };
                    let (object, encoded) = match answer {
                        Some(encoded) => (Value::Null, Some(Bytes::from(encoded))),
                        None => {
                            let mut v = decode_value(&bytes)?;
                            v["metadata"]["resourceVersion"] = json!(rev.to_string());
                            (v, None)
                        }
                    };
                    return Ok(WriteResult {
                        object,
                        code: 201,
                        warnings,
                        encoded,
                    });
                }
                Err(StorageError::AlreadyExists { .. }) if retries > 0 => {
                    retries -= 1;
                    let prefix = generated.clone().unwrap_or_default();
                    name = format!("{prefix}{}", random_suffix());
                    let mut v = decode_value(&bytes)?;
                    v["metadata"]["name"] = json!(name);
                    key = self.key(v["metadata"]["namespace"].as_str(), &name);
                    bytes = encode_value(&v)?;
                    spliced = None;
                }
                Err(e) => {
                    if let Some(h) = &self.hooks {
                        h.release(&decode_value(&bytes)?).await;
                    }
                    return Err(ApiError::from_storage(e, self.info, &name));
                }
            }
        }
    }

    /// Sets namespace, name (from generateName), uid, timestamps and
    /// generation of a new object; returns its name.
    fn prepare_create_meta(
        &self,
        ns: Option<&str>,
        obj: &mut S::Object,
    ) -> Result<String, ApiError> {
        let namespaced = self.info.namespaced();
        let meta: &mut ObjectMeta = obj.metadata_mut();
        if namespaced {
            match (meta.namespace.as_deref(), ns) {
                (Some(body_ns), Some(url_ns)) if !body_ns.is_empty() && body_ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => meta.namespace = ns.map(str::to_string).or(meta.namespace.take()),
            }
        } else {
            meta.namespace = None;
        }
        if meta.name.as_deref().is_none_or(str::is_empty)
            && let Some(prefix) = meta.generate_name.as_deref().filter(|g| !g.is_empty())
        {
            // Kubernetes caps the prefix so the name stays within 63.
            let prefix: String = prefix.chars().take(58).collect();
            meta.name = Some(format!("{prefix}{}", random_suffix()));
        }
        let name = meta.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(ApiError::invalid(
                self.info,
                "",
                &[FieldError::required(
                    &FieldPath::new("metadata").child("name"),
                    "name or generateName is required",
                )],
            ));
        }
        meta.uid = Some(new_uid());
        meta.creation_timestamp = Some(now());
        meta.resource_version = None;
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        meta.self_link = None;
        meta.generation = self.tracks_generation().then_some(1);
        Ok(name)
    }

    async fn read(&self, key: &str, name: &str) -> Result<Option<KeyValue>, ApiError> {
        self.shared
            .storage
            .get(key)
            .await
            .map_err(|e| ApiError::from_storage(e, self.info, name))
    }

    pub(super) async fn do_update(
        &self,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let warnings = self.check_body(&body, opts)?;
        let body_name = body["metadata"]["name"].as_str().unwrap_or_default();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let (Some(body_ns), Some(url_ns)) = (body["metadata"]["namespace"].as_str(), ns)
            && self.info.namespaced()
            && !body_ns.is_empty()
            && body_ns != url_ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let precondition = body["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let key = self.key(ns, name);
        for _ in 0..MAX_RETRIES {
            let Some(kv) = self.read(&key, name).await? else {
                if self.allow_create_on_update() && sub == Subresource::Main {
                    return self.do_create(ns, body, opts).await;
                }
                return Err(ApiError::not_found(self.info, name));
            };
            if let Some(p) = &precondition
                && *p != kv.mod_revision.to_string()
            {
                return Err(ApiError::conflict(self.info, name));
            }
            match self
                .write_update(&key, &kv, body.clone(), sub, opts, warnings.clone())
                .await?
            {
                Some(r) => return Ok(r),
                None if precondition.is_some() => return Err(ApiError::conflict(self.info, name)),
                None => continue,
            }
        }
        Err(ApiError::conflict(self.info, name))
    }

    /// Applies `candidate` (the whole new object as JSON) over the stored
    /// `kv`. `Ok(None)` means the store changed underneath: retry.
    async fn write_update(
        &self,
        key: &str,
        kv: &KeyValue,
        mut candidate: Value,
        sub: Subresource,
        opts: &WriteOptions,
        warnings: Vec<String>,
    ) -> Result<Option<WriteResult>, ApiError> {
        let old = self.decode_kv(kv)?;
        let old_json = to_json(&old)?;
        let name = old.metadata().name.clone().unwrap_or_default();
        // The main resource and `status` are written by different parties.
        if self.has_status() {
            match sub {
                Subresource::Status => {
                    let mut merged = old_json.clone();
                    merged["status"] = candidate.get("status").cloned().unwrap_or(Value::Null);
                    if let Some(mf) = candidate["metadata"].get("managedFields") {
                        merged["metadata"]["managedFields"] = mf.clone();
                    }
                    // Kubernetes' Deployment status strategy resets only spec
                    // and labels: its controller records the revision
                    // annotation through status, without bumping generation.
                    if self.info.plural == "deployments" {
                        merged["metadata"]["annotations"] =
                            candidate["metadata"]["annotations"].clone();
                    }
                    candidate = merged;
                }
                _ => {
                    if let Some(m) = candidate.as_object_mut() {
                        match old_json.get("status") {
                            Some(s) => m.insert("status".into(), s.clone()),
                            None => m.remove("status"),
                        };
                    }
                }
            }
        }
        let mut new = self.parse(candidate)?;
        {
            let (om, nm) = (old.metadata(), new.metadata_mut());
            nm.name = om.name.clone();
            nm.namespace = om.namespace.clone();
            nm.uid = om.uid.clone();
            nm.creation_timestamp = om.creation_timestamp.clone();
            nm.deletion_timestamp = om.deletion_timestamp.clone();
            nm.deletion_grace_period_seconds = om.deletion_grace_period_seconds;
            nm.generation = om.generation;
            nm.self_link = None;
            nm.resource_version = om.resource_version.clone();
        }
        let mut errs = Vec::new();
        if old.metadata().deletion_timestamp.is_some() {
            let old_f = old.metadata().finalizers.clone().unwrap_or_default();
            for f in new.metadata().finalizers.iter().flatten() {
                if !old_f.contains(f) {
                    errs.push(FieldError::forbidden(
                        &FieldPath::new("metadata").child("finalizers"),
                        "no new finalizers can be added if the object is being deleted",
                    ));
                    break;
                }
            }
        }
        if sub == Subresource::Main {
            self.strategy.prepare_for_update(&mut new, &old);
        }
        self.strategy.default(&mut new);
        errs.extend(self.validate_meta(&new));
        if sub == Subresource::Main {
            errs.extend(self.strategy.validate_update(&new, &old));
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(self.info, &name, &errs));
        }
        let mut new_json = to_json(&new)?;
        if self.tracks_generation() && spec_part(&new_json) != spec_part(&old_json) {
            let g = old.metadata().generation.unwrap_or(0) + 1;
            new.metadata_mut().generation = Some(g);
            new_json["metadata"]["generation"] = json!(g);
        }
        managed::record(self.info, Some(&old), &mut new, &opts.field_manager, sub)?;
        let new_json_final = to_json(&new)?;
        // Kubernetes skips writes that change nothing: no new revision, no
        // watch event.
        if new_json_final == old_json {
            return Self::respond(&old, None, 200, warnings).map(Some);
        }
        if opts.dry_run {
            return Self::respond(&new, None, 200, warnings).map(Some);
        }
        // An update that removes the last finalizer of an object being
        // deleted completes the deletion.
        // A namespace also waits for its `spec.finalizers`.
        let spec_finalizers = self.info.plural == "namespaces"
            && new_json_final["spec"]["finalizers"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
        if new.metadata().deletion_timestamp.is_some()
            && new.metadata().finalizers.as_ref().is_none_or(Vec::is_empty)
            && new.metadata().deletion_grace_period_seconds.unwrap_or(0) == 0
            && !spec_finalizers
        {
            return match self.shared.storage.delete(key, Some(kv.mod_revision)).await {
                Ok((_, rev)) => {
                    if let Some(h) = &self.hooks {
                        h.release(&old_json).await;
                    }
                    Self::respond(&new, Some(rev), 200, warnings).map(Some)
                }
                Err(StorageError::Conflict { .. }) => Ok(None),
                Err(e) => Err(ApiError::from_storage(e, self.info, &name)),
            };
        }
        if let Some(h) = &self.hooks {
            let mut v = to_json(&new)?;
            h.before_update(&old_json, &mut v).await?;
            new = self.parse(v)?;
        }
        let result = self
            .shared
            .storage
            .update(key, Self::serialize_for_storage(&mut new)?, kv.mod_revision)
            .await;
        if let Some(h) = &self.hooks {
            let attempted = to_json(&new)?;
            h.after_update(&old_json, result.is_ok().then_some(&attempted), &attempted)
                .await;
        }
        match result {
            Ok(rev) => Self::respond(&new, Some(rev), 200, warnings).map(Some),
            Err(StorageError::Conflict { .. }) => Ok(None),
            Err(e) => Err(ApiError::from_storage(e, self.info, &name)),
        }
    }

    pub(super) async fn do_patch(
        &self,
        ns: Option<&str>,
        name: &str,
        kind: PatchKind,
        patch: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let key = self.key(ns, name);
        let precondition = patch["metadata"]["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        for _ in 0..MAX_RETRIES {
            let Some(kv) = self.read(&key, name).await? else {
                if kind == PatchKind::Apply && sub == Subresource::Main {
                    self.check_apply_body(name, &patch)?;
                    let mut applied = managed::apply(self.info, None, &patch, sub, opts)?;
                    let yaml_warnings = apply_yaml_verdict(opts)?;
                    if let (Some(ns), true) = (ns, self.info.namespaced()) {
                        applied["metadata"]["namespace"] = json!(ns);
                    }
                    let mut created = self
                        .do_create(
                            ns,
                            applied,
                            &WriteOptions {
                                field_manager: String::new(),
                                ..opts.clone()
                            },
                        )
                        .await?;
                    created.warnings.splice(0..0, yaml_warnings);
                    return Ok(created);
                }
                return Err(ApiError::not_found(self.info, name));
            };
            if let Some(p) = &precondition
                && *p != kv.mod_revision.to_string()
            {
                return Err(ApiError::conflict(self.info, name));
            }
            let current = to_json(&self.decode_kv(&kv)?)?;
            // What the patch applied to, as strict decoding checks it.
            let (candidate, sub_for_write, patched) = if sub == Subresource::Scale {
                let obj = self.decode_kv(&kv)?;
                let scale = self.scale_of(&obj)?;
                let patched = match kind {
                    PatchKind::Apply => managed::apply(self.info, Some(&scale), &patch, sub, opts)?,
                    _ => managed::patch_value(self.info, kind, &scale, &patch)?,
                };
                let replicas = patched["spec"]["replicas"].as_i64().unwrap_or(0);
                let mut obj = obj;
                self.strategy
                    .set_replicas(&mut obj, i32::try_from(replicas).unwrap_or(i32::MAX));
                (to_json(&obj)?, Subresource::Main, Some(patched))
            } else {
                let patched = match kind {
                    PatchKind::Apply => {
                        self.check_apply_body(name, &patch)?;
                        managed::apply(self.info, Some(&current), &patch, sub, opts)?
                    }
                    _ => managed::patch_value(self.info, kind, &current, &patch)?,
                };
                (patched, sub, None)
            };
            let warnings = match (kind, &patched) {
                (PatchKind::Apply, _) => {
                    let body_warnings = self.check_body(&candidate, opts)?;
                    let mut warnings = apply_yaml_verdict(opts)?;
                    warnings.extend(body_warnings);
                    warnings
                }
                (_, patched) => {
                    self.check_identity(&candidate)?;
                    let (checked, body_kind) = match patched {
                        Some(scale) => (scale, SCALE),
                        None => (&candidate, self.body_kind()),
                    };
                    self.check_patched(checked, body_kind, &patch, kind, opts)?
                }
            };
            let opts_for_write = if kind == PatchKind::Apply {
                // The apply recorded its own managedFields entry.
                WriteOptions {
                    field_manager: String::new(),
                    ..opts.clone()
                }
            } else {
                opts.clone()
            };
            match self
                .write_update(
                    &key,
                    &kv,
                    candidate,
                    sub_for_write,
                    &opts_for_write,
                    warnings,
                )
                .await?
            {
                Some(mut r) => {
                    if sub == Subresource::Scale {
                        let obj = self.parse(r.object.clone())?;
                        r.object = self.scale_of(&obj)?;
                    }
                    return Ok(r);
                }
                None if precondition.is_some() => return Err(ApiError::conflict(self.info, name)),
                None => continue,
            }
        }
        Err(ApiError::conflict(self.info, name))
    }

    /// `PUT .../scale`: sets replicas from a Scale object.
    pub(super) async fn update_scale(
        &self,
        ns: Option<&str>,
        name: &str,
        scale: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        // The body is a Scale: its own strict decoding errors are a Scale's,
        // as an update reports them; the patch built from it has none.
        let warnings = match (opts.field_validation, &opts.body_field_errors) {
            (FieldValidation::Ignore, _) | (_, None) => Vec::new(),
            (validation, Some(errors)) => warn_or_refuse(validation, errors.clone(), |list| {
                cannot_handle("Scale", "v1", list)
            })?,
        };
        let opts = WriteOptions {
            body_field_errors: None,
            ..opts.clone()
        };
        let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
        let patch = json!({"spec": {"replicas": replicas}, "metadata": {"resourceVersion": scale["metadata"]["resourceVersion"]}});
        let mut result = self
            .do_patch(ns, name, PatchKind::Merge, patch, Subresource::Scale, &opts)
            .await?;
        result.warnings.splice(0..0, warnings);
        Ok(result)
    }

    pub(super) async fn do_delete(
        &self,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<WriteResult, ApiError> {
        let key = self.key(ns, name);
        for _ in 0..MAX_RETRIES {
            let Some(kv) = self.read(&key, name).await? else {
                return Err(ApiError::not_found(self.info, name));
            };
            let mut obj = self.decode_kv(&kv)?;
            let meta = obj.metadata();
            if let Some(uid) = &opts.precondition_uid
                && meta.uid.as_ref() != Some(uid)
            {
                return Err(ApiError::conflict_msg(
                    self.info,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta.uid.clone().unwrap_or_default()
                    ),
                ));
            }
            if let Some(rv) = &opts.precondition_resource_version
                && *rv != kv.mod_revision.to_string()
            {
                return Err(ApiError::conflict_msg(
                    self.info,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                ));
            }
            let grace = self
                .strategy
                .grace_period(&obj, opts.grace_period_seconds)
                .unwrap_or(0);
            let mut finalizers = meta.finalizers.clone().unwrap_or_default();
            let add = match opts.propagation_policy.as_deref() {
                Some("Foreground") => Some("foregroundDeletion"),
                Some("Orphan") => Some("orphan"),
                _ => None,
            };
            let namespace_finalizers = self.info.plural == "namespaces"
                && to_json(&obj)?["spec"]["finalizers"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
            let pending =
                !finalizers.is_empty() || add.is_some() || grace > 0 || namespace_finalizers;
            if opts.dry_run {
                return Self::respond(&obj, None, 200, Vec::new());
            }
            if !pending {
                return match self
                    .shared
                    .storage
                    .delete(&key, Some(kv.mod_revision))
                    .await
                {
                    Ok((_, rev)) => {
                        if let Some(h) = &self.hooks {
                            h.release(&to_json(&obj)?).await;
                        }
                        self.deleted_response(&obj, rev)
                    }
                    Err(StorageError::Conflict { .. }) | Err(StorageError::NotFound { .. }) => {
                        continue;
                    }
                    Err(e) => Err(ApiError::from_storage(e, self.info, name)),
                };
            }
            if let Some(f) = add
                && !finalizers.iter().any(|x| x == f)
            {
                finalizers.push(f.to_string());
            }
            let already = meta.deletion_timestamp.is_some();
            let old_grace = meta.deletion_grace_period_seconds;
            let m = obj.metadata_mut();
            m.finalizers = (!finalizers.is_empty()).then_some(finalizers);
            // A second delete may only shorten the grace period.
            if !already || old_grace.is_some_and(|g| grace < g) {
                let at = jiff::Timestamp::now().as_second() + grace;
                m.deletion_timestamp = Some(Time(
                    jiff::Timestamp::from_second(at).unwrap_or_else(|_| jiff::Timestamp::now()),
                ));
                m.deletion_grace_period_seconds = Some(grace);
            }
            let mut json = to_json(&obj)?;
            if self.info.plural == "namespaces" {
                json["status"]["phase"] = json!("Terminating");
                obj = self.parse(json)?;
            }
            match self
                .shared
                .storage
                .update(
                    &key,
                    Self::serialize_for_storage(&mut obj)?,
                    kv.mod_revision,
                )
                .await
            {
                Ok(rev) => {
                    let code = if opts.propagation_policy.as_deref() == Some("Foreground") {
                        202
                    } else {
                        200
                    };
                    return Self::respond(&obj, Some(rev), code, Vec::new());
                }
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_storage(e, self.info, name)),
            }
        }
        Err(ApiError::conflict(self.info, name))
    }

    fn deleted_response(&self, obj: &S::Object, rev: i64) -> Result<WriteResult, ApiError> {
        if self.returns_deleted_object() {
            return Self::respond(obj, Some(rev), 200, Vec::new());
        }
        let meta = obj.metadata();
        Ok(WriteResult {
            object: json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": meta.name,
                    "group": self.info.group,
                    "kind": self.info.plural,
                    "uid": meta.uid,
                },
            }),
            code: 200,
            warnings: Vec::new(),
            encoded: None,
        })
    }

    /// `POST pods/<name>/binding`: assigns a node, once.
    pub(super) async fn do_bind(
        &self,
        ns: Option<&str>,
        name: &str,
        binding: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        if !self.info.subresources.contains(&"binding") {
            return Err(ApiError::method_not_allowed(
                "binding is not supported on this resource",
            ));
        }
        let node = binding["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                self.info,
                name,
                &[FieldError::required(
                    &FieldPath::new("target").child("name"),
                    "",
                )],
            ));
        }
        let key = self.key(ns, name);
        let binding_info = common::ResourceInfo {
            plural: "pods/binding",
            ..*self.info
        };
        for _ in 0..MAX_RETRIES {
            let Some(kv) = self.read(&key, name).await? else {
                return Err(ApiError::not_found(self.info, name));
            };
            let mut obj = self.decode_kv(&kv)?;
            let meta = obj.metadata();
            if let Some(uid) = binding["metadata"]["uid"].as_str()
                && meta.uid.as_deref() != Some(uid)
            {
                return Err(ApiError::conflict_msg(
                    &binding_info,
                    name,
                    "the UID in the binding does not match the pod",
                ));
            }
            if meta.deletion_timestamp.is_some() {
                return Err(ApiError::conflict_msg(
                    &binding_info,
                    name,
                    &format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            if let Some(existing) = self.strategy.bound_node(&obj) {
                return Err(ApiError::conflict_msg(
                    &binding_info,
                    name,
                    &format!("pod {name} is already assigned to node {existing:?}"),
                ));
            }
            self.strategy.bind(&mut obj, &node);
            if opts.dry_run {
                break;
            }
            match self
                .shared
                .storage
                .update(
                    &key,
                    Self::serialize_for_storage(&mut obj)?,
                    kv.mod_revision,
                )
                .await
            {
                Ok(_) => break,
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_storage(e, self.info, name)),
            }
        }
        Ok(WriteResult {
            object: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            code: 201,
            warnings: Vec::new(),
            encoded: None,
        })
    }
}

/// What `fieldValidation` (not `Ignore`) makes of a body's strict decoding
/// errors: warnings under `Warn`, `refuse(the list)` under `Strict`.
fn warn_or_refuse(
    validation: FieldValidation,
    problems: Vec<String>,
    refuse: impl FnOnce(&str) -> ApiError,
) -> Result<Vec<String>, ApiError> {
    if problems.is_empty() || validation != FieldValidation::Strict {
        return Ok(problems);
    }
    Err(refuse(&problems.join(", ")))
}

/// An apply body's repeated YAML keys, after the apply, as
/// `handlers/patch.go` checks them: `Strict` refuses with 400, `Warn` gives
/// one warning per key (the HTTP layer finds none under `Ignore`).
fn apply_yaml_verdict(opts: &WriteOptions) -> Result<Vec<String>, ApiError> {
    let duplicates = &opts.apply_yaml_duplicates;
    warn_or_refuse(opts.field_validation, duplicates.clone(), |_| {
        ApiError::bad_request(format!(
            "error strict decoding YAML: error converting YAML to JSON: yaml: unmarshal errors:\n  {}",
            duplicates.join("\n  ")
        ))
    })
}

/// The 400 of a create or update whose body `Strict` refuses.
fn cannot_handle(kind: &str, version: &str, list: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {list}"
    ))
}

/// A JSON value as Go's `%+v` prints what `json.Unmarshal` gives for it:
/// `map[spec:map[replicas:3]]`, `[a b]`, `<nil>`, keys sorted.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_value).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let entries: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}
