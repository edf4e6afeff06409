//! `fkctl get KIND [NAME]` and `fkctl delete KIND NAME`. `get` asks the
//! server for a `meta.k8s.io/v1` Table (as kubectl does) and prints its
//! default columns, so every kind reads the way the server describes it.

use kube::api::{Api, DeleteParams, DynamicObject};
use serde_json::Value;

use crate::CtlError;
use crate::discovery::Resource;
use crate::table::render;

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// Where to look: one namespace or all of them.
#[derive(Debug, Clone)]
pub enum Scope {
    Namespace(String),
    All,
}

/// The server's Table for the resource (or one object), rendered.
pub async fn get(
    client: &kube::Client,
    resource: &Resource,
    name: Option<&str>,
    scope: &Scope,
) -> Result<String, CtlError> {
    let ns = match scope {
        Scope::Namespace(ns) => Some(ns.as_str()),
        Scope::All => None,
    };
    let mut path = resource.path(ns);
    if let Some(n) = name {
        path.push('/');
        path.push_str(n);
    }
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, TABLE_ACCEPT)
        .body(Vec::new())
        .map_err(|e| CtlError::Transport(kube::Error::HttpError(e)))?;
    let table: Value = client.request(req).await?;
    let with_namespace = matches!(scope, Scope::All) && resource.namespaced;
    let out = render_table(&table, with_namespace);
    if out.is_empty() {
        return Err(CtlError::NotFound(match ns {
            Some(ns) if resource.namespaced => format!("No resources found in {ns} namespace."),
            _ => "No resources found".to_string(),
        }));
    }
    Ok(out)
}

/// A Table's default (priority 0) columns, headers upper-cased, with a
/// NAMESPACE column first when listing across namespaces.
pub fn render_table(table: &Value, with_namespace: bool) -> String {
    let columns: Vec<(usize, String)> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| c["priority"].as_i64().unwrap_or(0) == 0)
        .map(|(i, c)| (i, c["name"].as_str().unwrap_or("").to_uppercase()))
        .collect();
    let rows: Vec<Vec<String>> = table["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let mut cells = Vec::new();
            if with_namespace {
                cells.push(
                    row["object"]["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                );
            }
            for (i, _) in &columns {
                cells.push(cell(&row["cells"][*i]));
            }
            cells
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut header: Vec<String> = Vec::new();
    if with_namespace {
        header.push("NAMESPACE".into());
    }
    header.extend(columns.into_iter().map(|(_, h)| h));
    render(&header, &rows)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Deletes one object; kubectl's line (`pod "web" deleted`).
pub async fn delete(
    client: &kube::Client,
    resource: &Resource,
    name: &str,
    namespace: &str,
) -> Result<String, CtlError> {
    let ar = resource.api_resource();
    let api: Api<DynamicObject> = if resource.namespaced {
        Api::namespaced_with(client.clone(), namespace, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    api.delete(name, &DeleteParams::default()).await?;
    Ok(format!("{} {name:?} deleted", resource.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_show_default_columns_and_namespaces_when_asked() {
        let table = json!({
            "kind": "Table",
            "columnDefinitions": [
                {"name": "Name", "priority": 0},
                {"name": "Ready", "priority": 0},
                {"name": "IP", "priority": 1},
                {"name": "Age", "priority": 0}
            ],
            "rows": [
                {"cells": ["web", "1/1", "10.0.0.1", "5s"], "object": {"metadata": {"namespace": "shop"}}},
                {"cells": ["db", null, "10.0.0.2", "1m"], "object": {"metadata": {"namespace": "shop"}}}
            ]
        });
        assert_eq!(
            render_table(&table, false),
            "NAME   READY    AGE\nweb    1/1      5s\ndb     <none>   1m\n"
        );
        assert!(render_table(&table, true).starts_with("NAMESPACE   NAME"));
        assert_eq!(render_table(&json!({"rows": []}), false), "");
    }
}
