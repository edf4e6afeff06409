//! `metadata.managedFields` entries: decoding, the manager identity
//! Kubernetes keys them by, and encoding in Kubernetes' order.

use serde_json::{Map, Value, json};

use super::fieldpath::{FieldSet, PathElement};

/// Whether an entry records an apply or an ordinary write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub set: FieldSet,
}

impl Entry {
    /// Whether two entries belong to the same manager identity. Kubernetes
    /// (`BuildManagerIdentifier`) ignores time and fields, and for appliers
    /// also the API version so re-applying at a new version keeps the entry.
    pub(crate) fn same_identity(
        &self,
        manager: &str,
        op: Operation,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        self.manager == manager
            && self.operation == op
            && self.subresource == subresource
            && (op == Operation::Apply || self.api_version == api_version)
    }
}

/// Decodes `metadata.managedFields` of `obj` (absent means none).
pub(crate) fn decode(obj: &Value) -> Result<Vec<Entry>, String> {
    let Some(list) = obj.pointer("/metadata/managedFields") else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = list else {
        return Ok(Vec::new());
    };
    list.iter().map(decode_entry).collect()
}

fn decode_entry(v: &Value) -> Result<Entry, String> {
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let operation = match v.get("operation").and_then(Value::as_str) {
        Some("Apply") => Operation::Apply,
        Some("Update") => Operation::Update,
        other => return Err(format!("invalid managedFields operation {other:?}")),
    };
    match v.get("fieldsType").and_then(Value::as_str) {
        Some("FieldsV1") | None => {}
        Some(other) => return Err(format!("unsupported fieldsType {other:?}")),
    }
    let set = match v.get("fieldsV1") {
        Some(f) => FieldSet::from_fields_v1(f)?,
        None => FieldSet::default(),
    };
    Ok(Entry {
        manager: text("manager"),
        operation,
        api_version: text("apiVersion"),
        time: v.get("time").and_then(Value::as_str).map(str::to_string),
        subresource: text("subresource"),
        set,
    })
}

/// Writes `entries` into `obj.metadata.managedFields`, sorted as
/// Kubernetes sorts them (operation, time, manager, apiVersion,
/// subresource); no entries means no field at all.
pub(crate) fn encode(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (
            a.operation,
            a.time.as_deref().unwrap_or(""),
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                b.time.as_deref().unwrap_or(""),
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let Some(meta) = obj.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
    }) else {
        return;
    };
    let Value::Object(meta) = meta else { return };
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let list = entries
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation.as_str()));
            m.insert("apiVersion".into(), json!(e.api_version));
            if let Some(t) = e.time {
                m.insert("time".into(), json!(t));
            }
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), e.set.to_fields_v1());
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), json!(e.subresource));
            }
            Value::Object(m)
        })
        .collect();
    meta.insert("managedFields".into(), Value::Array(list));
}

/// Metadata fields no manager ever owns.
pub(super) const STRIPPED_METADATA: [&str; 9] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

/// Fields no manager ever owns (`stripMetaManager`): identity and
/// server-maintained metadata.
pub(crate) fn strip(set: &FieldSet) -> FieldSet {
    let mut stripped = FieldSet::default();
    let f = |s: &str| PathElement::Field(s.to_string());
    stripped.insert(&[f("apiVersion")]);
    stripped.insert(&[f("kind")]);
    stripped.insert(&[f("metadata")]);
    for name in STRIPPED_METADATA {
        stripped.insert(&[f("metadata"), f(name)]);
    }
    set.difference(&stripped)
}

/// Kubernetes keeps at most this many `Update` entries; older ones are
/// folded into one (`capManagersManager`).
const MAX_UPDATE_MANAGERS: usize = 10;
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Folds the oldest `Update` entries into `ancient-changes` once there are
/// more than [`MAX_UPDATE_MANAGERS`].
pub(crate) fn cap_update_managers(entries: &mut Vec<Entry>) {
    let updates = entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .count();
    if updates <= MAX_UPDATE_MANAGERS {
        return;
    }
    let mut order: Vec<usize> = (0..entries.len())
        .filter(|&i| {
            entries[i].operation == Operation::Update && entries[i].manager != ANCIENT_CHANGES
        })
        .collect();
    order.sort_by(|&a, &b| entries[a].time.cmp(&entries[b].time));
    let mut ancient = entries
        .iter()
        .find(|e| e.manager == ANCIENT_CHANGES && e.operation == Operation::Update)
        .cloned();
    // The bucket itself is one of the entries over the cap.
    let excess = updates - MAX_UPDATE_MANAGERS + 1 - usize::from(ancient.is_some());
    let fold: Vec<usize> = order.into_iter().take(excess).collect();
    for &i in &fold {
        let e = &entries[i];
        ancient = Some(match ancient {
            Some(mut a) => {
                a.set = a.set.union(&e.set);
                if e.time > a.time {
                    a.time = e.time.clone();
                }
                a
            }
            None => Entry {
                manager: ANCIENT_CHANGES.to_string(),
                ..e.clone()
            },
        });
    }
    let mut kept: Vec<Entry> = entries
        .drain(..)
        .enumerate()
        .filter(|(i, e)| {
            !fold.contains(i) && (e.manager != ANCIENT_CHANGES || e.operation != Operation::Update)
        })
        .map(|(_, e)| e)
        .collect();
    kept.extend(ancient);
    *entries = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, op: Operation, time: &str) -> Entry {
        let mut set = FieldSet::default();
        set.insert(&[PathElement::Field(manager.to_string())]);
        Entry {
            manager: manager.into(),
            operation: op,
            api_version: "v1".into(),
            time: Some(time.into()),
            subresource: String::new(),
            set,
        }
    }

    #[test]
    fn entries_encode_sorted_and_decode_back() {
        let mut obj = json!({"metadata": {"name": "x"}});
        let entries = vec![
            entry("b", Operation::Update, "2025-01-01T00:00:02Z"),
            entry("a", Operation::Update, "2025-01-01T00:00:01Z"),
            entry("z", Operation::Apply, "2025-01-01T00:00:09Z"),
        ];
        encode(&mut obj, entries);
        let managers: Vec<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields list")
            .iter()
            .map(|e| e["manager"].as_str().expect("manager"))
            .collect();
        assert_eq!(managers, ["z", "a", "b"]);
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:z": {}})
        );
        let back = decode(&obj).expect("decodes");
        assert_eq!(back.len(), 3);
        assert_eq!(back[0].operation, Operation::Apply);
    }

    #[test]
    fn update_managers_beyond_ten_fold_into_ancient_changes() {
        let mut entries: Vec<Entry> = (0..12)
            .map(|i| {
                entry(
                    &format!("m{i:02}"),
                    Operation::Update,
                    &format!("2025-01-01T00:00:{i:02}Z"),
                )
            })
            .collect();
        entries.push(entry("applier", Operation::Apply, "2025-01-01T00:00:00Z"));
        cap_update_managers(&mut entries);
        let updates: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.operation == Operation::Update)
            .collect();
        assert_eq!(updates.len(), 10);
        let ancient = updates
            .iter()
            .find(|e| e.manager == ANCIENT_CHANGES)
            .expect("ancient-changes entry");
        assert!(ancient.set.has(&[PathElement::Field("m00".into())]));
        assert!(ancient.set.has(&[PathElement::Field("m02".into())]));
        assert!(!entries.iter().any(|e| e.manager == "m02"));
        assert!(entries.iter().any(|e| e.manager == "applier"));
    }
}
