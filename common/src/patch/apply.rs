//! Server-side apply (`application/apply-patch+yaml`) and the field
//! ownership bookkeeping every write does, after `structured-merge-diff`'s
//! `merge.Updater` and the apiserver field manager pipeline
//! (`k8s.io/apimachinery/pkg/util/managedfields/internal`).
//!
//! Apply merges the applied configuration into the live object, removes
//! what this manager applied last time but no longer does (unless someone
//! else owns it), and refuses to change a value another manager owns
//! unless forced. Ordinary writes record what they changed under an
//! `Update` entry and take those fields away from everyone else, which is
//! what makes a later apply conflict with, say, `kubectl scale`.

use serde_json::{Map, Value, json};

use super::created::created_managed_fields;
use super::fieldpath::{PathElement, path_string};
use super::lastapplied;
use super::managed::{self, Entry, Operation};
use super::schema::{Field, TypeHint};
use super::typed;
use super::zero::zero_of;

/// The manager Kubernetes credits with the fields of an object that had no
/// managed fields when it was first applied to.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Who is writing, as the request names it.
#[derive(Debug, Clone, Copy)]
pub struct ManagerRequest<'a> {
    /// The `fieldManager` query parameter (or the user-agent default).
    pub manager: &'a str,
    /// `group/version` of the request, e.g. `apps/v1` or `v1`.
    pub api_version: &'a str,
    /// `status`, `scale`… for subresource writes; `None` for the object.
    pub subresource: Option<&'a str>,
    /// The request time, RFC 3339 in UTC with seconds precision.
    pub now: &'a str,
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    /// The field as Kubernetes prints it, e.g. `.spec.replicas`.
    pub field: String,
}

impl Conflict {
    /// The manager as Kubernetes describes it (`printManager`): appliers by
    /// name, updaters with the API version they wrote at.
    pub fn manager_description(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// The `StatusCause` message for this conflict.
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.manager_description())
    }
}

/// Kubernetes' `getConflictMessage`.
fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager_description(),
            only.field
        );
    }
    let mut managers: Vec<String> = conflicts
        .iter()
        .map(Conflict::manager_description)
        .collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for m in managers {
        lines.push(format!("conflicts with {m}:"));
        for c in conflicts.iter().filter(|c| c.manager_description() == m) {
            lines.push(format!("- {}", c.field));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Why a server-side apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers would change (409 Conflict, reason
    /// `Conflict`, one `FieldManagerConflict` cause per entry).
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The applied configuration is not acceptable (400).
    #[error("{0}")]
    BadRequest(String),
    /// The applied configuration does not fit the schema, e.g. a keyed list
    /// item without its key (Kubernetes reports these as 500s).
    #[error("failed to create typed patch object: {0}")]
    InvalidObject(String),
    /// The live object's `managedFields` cannot be read (500).
    #[error("failed to decode managed fields: {0}")]
    ManagedFields(String),
}

impl ApplyError {
    /// The HTTP status Kubernetes answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::BadRequest(_) => 400,
            ApplyError::InvalidObject(_) | ApplyError::ManagedFields(_) => 500,
        }
    }
}

fn kind_root(objects: &[Option<&Value>]) -> Field {
    let kind = objects
        .iter()
        .flatten()
        .find_map(|o| o.get("kind").and_then(Value::as_str))
        .unwrap_or_default();
    TypeHint::for_kind(kind).root()
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    out
}

/// Metadata the server owns; an applied value for it is ignored (the
/// strategy would reset it anyway).
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(drop_nulls);
        }
        _ => {}
    }
}

/// The top-level field a write through `subresource` cannot change:
/// `status` on the main resource, `spec` through `/status`.
fn reset_field(subresource: Option<&str>) -> &'static str {
    if subresource == Some("status") {
        "spec"
    } else {
        "status"
    }
}

/// The part of an applied configuration that takes part in the apply:
/// `status` is reset on the main resource and `spec` on the status
/// subresource (the strategies' `ResetFieldsFor…`).
fn applied_config(applied: &Value, subresource: Option<&str>) -> Value {
    let mut config = applied.clone();
    drop_nulls(&mut config);
    if let Some(obj) = config.as_object_mut() {
        obj.remove(if subresource == Some("status") {
            "spec"
        } else {
            "status"
        });
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| !SERVER_METADATA.contains(&k.as_str()));
        }
    }
    config
}

/// Whether the last element of `path` is one of the key fields of the list
/// item it sits in; those stay as long as the item does.
fn is_key_field(path: &[PathElement]) -> bool {
    match path {
        [.., PathElement::Key(k), PathElement::Field(f)] => {
            serde_json::from_str::<Map<String, Value>>(k).is_ok_and(|keys| keys.contains_key(f))
        }
        _ => false,
    }
}

/// Applies `applied` to `live` (`None` creates) on behalf of `req.manager`
/// and returns the new object with its `metadata.managedFields`.
///
/// Without `force`, changing a value another manager owns fails with
/// [`ApplyError::Conflicts`]; with it, ownership moves to the applier.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    req: &ManagerRequest<'_>,
    force: bool,
) -> Result<Value, ApplyError> {
    if !applied.is_object() {
        return Err(ApplyError::BadRequest(
            "the apply patch must be an object".to_string(),
        ));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApplyError::BadRequest(
            "metadata.managedFields must be nil".to_string(),
        ));
    }
    let root = kind_root(&[Some(applied), live]);
    let mut result = match apply_once(live, applied, req, force, root) {
        Err(ApplyError::Conflicts(conflicts)) if !force && req.manager == lastapplied::KUBECTL => {
            // Conflicts on fields the client-side `last-applied` annotation
            // already agreed with are forgiven (`lastAppliedManager`).
            let allowed = live
                .map(|l| lastapplied::agreed_fields(l, root, req.api_version))
                .unwrap_or_default();
            let remaining: Vec<Conflict> = conflicts
                .into_iter()
                .filter(|c| !allowed.contains(&c.field))
                .collect();
            if !remaining.is_empty() {
                return Err(ApplyError::Conflicts(remaining));
            }
            apply_once(live, applied, req, true, root)?
        }
        other => other?,
    };
    if req.manager == lastapplied::KUBECTL {
        lastapplied::refresh(&mut result, applied);
    }
    Ok(result)
}

fn apply_once(
    live: Option<&Value>,
    applied: &Value,
    req: &ManagerRequest<'_>,
    force: bool,
    root: Field,
) -> Result<Value, ApplyError> {
    let subresource = req.subresource.unwrap_or("");
    let mut managers = match live {
        Some(l) => managed::decode(l).map_err(ApplyError::ManagedFields)?,
        None => Vec::new(),
    };
    let live_obj = live.map_or_else(|| json!({}), without_managed_fields);
    if managers.is_empty() && live.is_some() {
        // An object nobody tracked yet: its current fields belong to a
        // stand-in manager, so applying over them conflicts
        // (`skipNonAppliedManager`, which compares with the zero object).
        let existing = managed::strip(&typed::compare(zero_of(&live_obj), &live_obj, root).added)
            .without_top(&PathElement::Field(
                reset_field(req.subresource).to_string(),
            ));
        managers.push(Entry {
            manager: BEFORE_FIRST_APPLY.to_string(),
            operation: Operation::Update,
            api_version: req.api_version.to_string(),
            time: Some(req.now.to_string()),
            subresource: subresource.to_string(),
            set: existing,
        });
    }
    let config = applied_config(applied, req.subresource);
    let new_set =
        managed::strip(&typed::to_field_set(&config, root).map_err(ApplyError::InvalidObject)?);

    let previous = managers
        .iter()
        .position(|e| e.same_identity(req.manager, Operation::Apply, req.api_version, subresource))
        .map(|i| managers.remove(i));
    let last_set = previous.as_ref().map(|e| e.set.clone()).unwrap_or_default();

    let mut result = typed::merge(&live_obj, &config, root);
    let owned = managers
        .iter()
        .fold(new_set.clone(), |acc, e| acc.union(&e.set));
    for path in last_set.difference(&new_set).paths() {
        // A map field stays while anyone owns something inside it; a list
        // item only while someone owns the item itself, so an item dropped
        // by its only owner goes with whatever others set inside it, as
        // `Updater.prune` + `addBackDanglingItems` do.
        let kept = match path.last() {
            Some(PathElement::Field(_)) => owned.has_at_or_below(&path),
            _ => owned.has(&path),
        };
        if !kept && !is_key_field(&path) {
            typed::remove_path(&mut result, &path, root);
        }
    }

    let cmp = typed::compare(&live_obj, &result, root);
    let changed = cmp.added.union(&cmp.modified);
    let mut conflicts = Vec::new();
    for e in &managers {
        for path in e.set.intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                operation: if e.operation == Operation::Apply {
                    "Apply"
                } else {
                    "Update"
                }
                .to_string(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
                field: path_string(&path),
            });
        }
    }
    conflicts.sort_by(|a, b| {
        (a.manager_description(), &a.field).cmp(&(b.manager_description(), &b.field))
    });
    if !force && !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for e in &mut managers {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }

    let time = if result != live_obj {
        Some(req.now.to_string())
    } else {
        previous.and_then(|e| e.time)
    };
    managers.push(Entry {
        manager: req.manager.to_string(),
        operation: Operation::Apply,
        api_version: req.api_version.to_string(),
        time,
        subresource: subresource.to_string(),
        set: new_set,
    });
    managed::cap_update_managers(&mut managers);
    managed::encode(&mut result, managers);
    Ok(result)
}

/// Records an ordinary create (`old` is `None`), update or patch by
/// `req.manager` in `new.metadata.managedFields`: the fields it set or
/// changed join its `Update` entry and leave every other manager's.
///
/// A request object carrying `managedFields` replaces the stored ones (an
/// empty list resets them), as Kubernetes allows, except on subresources.
/// An existing object (one with a `uid`) without managed fields stays
/// untracked, as in Kubernetes.
pub fn update_managed_fields(old: Option<&Value>, new: &mut Value, req: &ManagerRequest<'_>) {
    let root = kind_root(&[Some(new), old]);
    let subresource = req.subresource.unwrap_or("");
    let from_old = || {
        old.map(|o| managed::decode(o).unwrap_or_default())
            .unwrap_or_default()
    };
    let mut managers = match new.pointer("/metadata/managedFields") {
        _ if !subresource.is_empty() => from_old(),
        Some(Value::Array(list)) if list.is_empty() || list == &[json!({})] => Vec::new(),
        Some(Value::Array(_)) => match managed::decode(new) {
            Ok(m) if !m.is_empty() => m,
            _ => from_old(),
        },
        _ => from_old(),
    };
    if old.is_none() && subresource.is_empty() && managers.is_empty() {
        record_create(new, req);
        return;
    }
    let new_obj = without_managed_fields(new);
    let existed = old.is_some_and(|o| {
        o.pointer("/metadata/uid")
            .and_then(Value::as_str)
            .is_some_and(|uid| !uid.is_empty())
    });
    if managers.is_empty() && existed {
        // Kubernetes does not start tracking on an update of an object
        // that has no managed fields (`skipNonAppliedManager`).
        *new = new_obj;
        return;
    }
    // A create is the change from the kind's zero object, as in Kubernetes.
    let old_obj = old.map(without_managed_fields);
    let from = old_obj.as_ref().unwrap_or_else(|| zero_of(&new_obj));
    let cmp = typed::compare(from, &new_obj, root);
    // The strategies reset these (`ResetFieldsFor…`), so Kubernetes' field
    // manager ignores them for ownership.
    let reset = PathElement::Field(reset_field(req.subresource).to_string());
    let changed = cmp.added.union(&cmp.modified).without_top(&reset);
    let removed = cmp.removed.without_top(&reset);

    let previous = managers
        .iter()
        .position(|e| e.same_identity(req.manager, Operation::Update, req.api_version, subresource))
        .map(|i| managers.remove(i));
    for e in &mut managers {
        e.set = e.set.difference(&changed).difference(&removed);
    }
    let kept = previous
        .as_ref()
        .map(|e| e.set.difference(&changed).difference(&removed))
        .unwrap_or_default();
    let current = managed::strip(&changed);
    let (set, time) = if current.is_empty() {
        (kept, previous.and_then(|e| e.time))
    } else {
        (current.union(&kept), Some(req.now.to_string()))
    };
    managers.push(Entry {
        manager: req.manager.to_string(),
        operation: Operation::Update,
        api_version: req.api_version.to_string(),
        time,
        subresource: subresource.to_string(),
        set,
    });
    managed::cap_update_managers(&mut managers);
    *new = new_obj;
    managed::encode(new, managers);
}

/// [`update_managed_fields`] for a plain create: every field the object
/// sets belongs to the creator. The entry is written as JSON text by
/// [`created_managed_fields`] (which the API server splices into the
/// encoded object on its hot path) and joins the tree here.
fn record_create(new: &mut Value, req: &ManagerRequest<'_>) {
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    // Our own encoding: it always parses.
    let entry = created_managed_fields(new, req)
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok());
    let (Some(entry), Some(object)) = (entry, new.as_object_mut()) else {
        return;
    };
    if let Value::Object(meta) = object.entry("metadata").or_insert_with(|| json!({})) {
        meta.insert("managedFields".into(), entry);
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
