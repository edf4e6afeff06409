//! A JSON create body is decoded straight into its kind's type, and every
//! body that path cannot take goes the general way. The oracle: the same
//! text sent as YAML, which always takes the general path (its decoder
//! reads JSON first), must get the same answer and store the same object.

mod support;

use serde_json::{Value, json};
use support::{call, server};

/// What may differ between two servers for the same create: identity,
/// times, and the random suffix of the service account token volume.
fn comparable(mut v: Value) -> Value {
    const VOLUME: &str = "kube-api-access-";
    let text = v.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(VOLUME) {
        let end = (at + VOLUME.len() + 5).min(rest.len());
        out.push_str(&rest[..at + VOLUME.len()]);
        out.push_str("xxxxx");
        rest = &rest[end..];
    }
    out.push_str(rest);
    v = serde_json::from_str(&out).unwrap_or(v);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for volatile in ["uid", "creationTimestamp", "resourceVersion"] {
            meta.remove(volatile);
        }
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            for entry in entries {
                if let Some(e) = entry.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    v
}

#[tokio::test]
async fn json_creates_answer_as_the_general_path_does() {
    let (_a, json_server) = server().await;
    let (_b, yaml_server) = server().await;
    let pod = |extra: Value| {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        json_patch::merge(&mut pod, &extra);
        pod.to_string()
    };
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "pods",
            "",
            pod(json!({"status": {"phase": "Running", "podIP": "10.0.0.9"}})),
        ),
        (
            "pods",
            "",
            pod(json!({"metadata": {"name": "v2"}, "apiVersion": "v2"})),
        ),
        (
            "pods",
            "",
            pod(json!({"metadata": {"name": "svc"}, "kind": "Service"})),
        ),
        ("pods", "", "[1, 2]".to_string()),
        ("pods", "", "\"pod\"".to_string()),
        ("pods", "", "   ".to_string()),
        (
            "pods",
            "",
            pod(json!({"metadata": {"name": "bad"}, "spec": {"containers": "oops"}})),
        ),
        (
            "pods",
            "",
            pod(
                json!({"metadata": {"name": "f"}, "spec": {"terminationGracePeriodSeconds": 30.5}}),
            ),
        ),
        (
            "pods",
            "?fieldValidation=Strict",
            pod(json!({"metadata": {"name": "u"}, "spex": 1})),
        ),
        (
            "pods",
            "?fieldValidation=Warn",
            pod(json!({"metadata": {"name": "w"}, "spex": 1})),
        ),
        (
            "pods",
            "",
            pod(json!({"metadata": {"name": "noid"}}))
                .replace("\"apiVersion\":\"v1\",", "")
                .replace("\"kind\":\"Pod\",", ""),
        ),
        (
            "pods",
            "",
            pod(
                json!({"metadata": {"name": "managed", "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]}}),
            ),
        ),
        (
            "nodes",
            "",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
                "status": {"capacity": {"cpu": "2"}}})
            .to_string(),
        ),
    ];
    for (plural, query, body) in cases {
        let uri = match plural {
            "nodes" => format!("/api/v1/nodes{query}"),
            _ => format!("/api/v1/namespaces/default/{plural}{query}"),
        };
        let fast = call(&json_server, "POST", &uri, "application/json", &body).await;
        let general = call(&yaml_server, "POST", &uri, "application/yaml", &body).await;
        assert_eq!(
            fast.code, general.code,
            "{body}: {} / {}",
            fast.body, general.body
        );
        assert_eq!(fast.warnings, general.warnings, "{body}");
        assert_eq!(
            comparable(fast.body.clone()),
            comparable(general.body),
            "{body}"
        );
        if fast.code == 201 {
            let name = fast.body["metadata"]["name"].as_str().unwrap_or_default();
            let url = format!("{}/{name}", uri.split('?').next().unwrap_or_default());
            let stored_fast = call(&json_server, "GET", &url, "application/json", "").await;
            let stored_general = call(&yaml_server, "GET", &url, "application/json", "").await;
            assert_eq!(
                comparable(stored_fast.body),
                comparable(stored_general.body),
                "{body}"
            );
        }
    }
    // Not JSON at all: the general path's JSON error, which YAML words
    // differently.
    let body = format!("{} trailing", pod(json!({"metadata": {"name": "trail"}})));
    let uri = "/api/v1/namespaces/default/pods";
    let answer = call(&json_server, "POST", uri, "application/json", &body).await;
    assert_eq!(answer.code, 400, "{}", answer.body);
    assert_eq!(
        answer.body["message"],
        "couldn't get version/kind; json parse error: trailing characters at line 1 column 117"
    );
}
