//! Interplay between server-side apply and kubectl's client-side apply
//! annotation `kubectl.kubernetes.io/last-applied-configuration`, so users
//! can move from `kubectl apply` to `kubectl apply --server-side`
//! (`lastAppliedManager` and `lastAppliedUpdater` in Kubernetes).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::fieldpath::path_string;
use super::schema::Field;
use super::typed;

/// The field manager `kubectl apply --server-side` uses; only it gets the
/// client-side apply interplay.
pub(crate) const KUBECTL: &str = "kubectl";

const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn annotation(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/annotations")?
        .get(ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Fields (printed as in conflicts) that the live object's last-applied
/// configuration sets to exactly the live values: conflicts on them are
/// not real disagreements.
pub(crate) fn agreed_fields(live: &Value, root: Field, api_version: &str) -> HashSet<String> {
    let Some(last) = annotation(live).and_then(|a| serde_json::from_str::<Value>(a).ok()) else {
        return HashSet::new();
    };
    if last.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
        return HashSet::new();
    }
    let Ok(set) = typed::to_field_set(&last, root) else {
        return HashSet::new();
    };
    let cmp = typed::compare(&last, live, root);
    set.difference(&cmp.modified)
        .difference(&cmp.added)
        .difference(&cmp.removed)
        .paths()
        .iter()
        .map(|p| path_string(p))
        .collect()
}

/// Rewrites the annotation on `result` to the applied configuration when
/// it was there already, so a later client-side apply diffs against it.
pub(crate) fn refresh(result: &mut Value, applied: &Value) {
    if annotation(result).is_none() {
        return;
    }
    let mut config = applied.clone();
    if let Some(annotations) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(ANNOTATION);
    }
    let encoded = go_json(&config);
    if let Some(annotations) = result
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(ANNOTATION.to_string(), Value::String(encoded));
    }
}

/// JSON as Go's `json.Encoder` writes an unstructured object: keys sorted,
/// HTML-sensitive characters escaped, a trailing newline.
fn go_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let out: Map<String, Value> = keys
                    .into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect();
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let mut out = sorted(v)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_json_sorts_keys_escapes_html_and_ends_with_a_newline() {
        let v = json!({"b": 1, "a": {"d": "<&>", "c": [{"z": 1, "y": 2}]}});
        assert_eq!(
            go_json(&v),
            "{\"a\":{\"c\":[{\"y\":2,\"z\":1}],\"d\":\"\\u003c\\u0026\\u003e\"},\"b\":1}\n"
        );
    }
}
