//! Hostile and malformed requests: each one is answered with a 4xx `Status`
//! object whose `code` matches the HTTP status, and the server keeps serving.

use e2e::{Backend, Cluster, both_backends_async};
use reqwest::Method;
use serde_json::{Value, json};

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    /// The exact status Kubernetes answers, or `None` for "any 4xx".
    status: Option<u16>,
}

fn case(
    what: &'static str,
    method: Method,
    path: &str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
    status: Option<u16>,
) -> Case {
    Case {
        what,
        method,
        path: path.to_owned(),
        content_type,
        body: body.into(),
        status,
    }
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const JSON: &str = "application/json";

fn cases() -> Vec<Case> {
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_value = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let deep_in_object = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"deep","annotations":{deep_value}}}}}"#
    );
    let huge = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"huge"}},"data":{{"blob":"{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    let cm = |name: &str| {
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#)
    };
    let deploy_three = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "three"},
        "spec": {"replicas": "three", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    })
    .to_string();
    let target = format!("{CMS}/target");
    vec![
        case(
            "truncated JSON",
            Method::POST,
            CMS,
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"#,
            Some(400),
        ),
        case(
            "10,000-deep array",
            Method::POST,
            CMS,
            JSON,
            deep_array.clone(),
            Some(400),
        ),
        case(
            "10,000-deep object inside an object",
            Method::POST,
            CMS,
            JSON,
            deep_in_object,
            Some(400),
        ),
        case("4 MiB body", Method::POST, CMS, JSON, huge, Some(413)),
        case(
            "replicas: \"three\"",
            Method::POST,
            "/apis/apps/v1/namespaces/default/deployments",
            JSON,
            deploy_three,
            Some(400),
        ),
        case(
            "data is a list",
            Method::POST,
            CMS,
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"l"},"data":["a"]}"#,
            Some(400),
        ),
        case(
            "metadata is a string",
            Method::POST,
            CMS,
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":"m"}"#,
            Some(400),
        ),
        case("array body", Method::POST, CMS, JSON, "[]", Some(400)),
        case(
            "string body",
            Method::POST,
            CMS,
            JSON,
            r#""configmap""#,
            Some(400),
        ),
        case("number body", Method::POST, CMS, JSON, "42", Some(400)),
        case("null body", Method::POST, CMS, JSON, "null", Some(400)),
        case("empty body", Method::POST, CMS, JSON, "", Some(400)),
        case(
            "invalid UTF-8",
            Method::POST,
            CMS,
            JSON,
            b"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"\xff\xfe\"}}"
                .to_vec(),
            Some(400),
        ),
        case(
            "wrong kind for the URL",
            Method::POST,
            CMS,
            JSON,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#,
            Some(400),
        ),
        case(
            "namespace differs from the URL",
            Method::POST,
            CMS,
            JSON,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"n","namespace":"kube-system"}}"#,
            Some(400),
        ),
        case(
            "name differs from the URL on PUT",
            Method::PUT,
            &target,
            JSON,
            cm("other"),
            Some(400),
        ),
        case(
            "unsupported media type",
            Method::POST,
            CMS,
            "text/plain",
            cm("plain"),
            Some(415),
        ),
        case(
            "garbage YAML",
            Method::POST,
            CMS,
            "application/yaml",
            ": : :\n\t- [",
            Some(400),
        ),
        case(
            "unparsable label selector",
            Method::GET,
            &format!("{CMS}?labelSelector=a%20in%20(b"),
            JSON,
            "",
            Some(400),
        ),
        case(
            "label selector with a bad value",
            Method::GET,
            &format!("{CMS}?labelSelector=a%3D%25%25"),
            JSON,
            "",
            Some(400),
        ),
        case(
            "unsupported field selector",
            Method::GET,
            &format!("{CMS}?fieldSelector=data.k%3Dv"),
            JSON,
            "",
            Some(400),
        ),
        case(
            "non-numeric limit",
            Method::GET,
            &format!("{CMS}?limit=ten"),
            JSON,
            "",
            Some(400),
        ),
        case(
            "bogus continue token",
            Method::GET,
            &format!("{CMS}?limit=1&continue=not-a-token"),
            JSON,
            "",
            Some(400),
        ),
        case(
            "non-numeric resourceVersion on a watch",
            Method::GET,
            &format!("{CMS}?watch=true&resourceVersion=abc"),
            JSON,
            "",
            None,
        ),
        case(
            "merge patch that is not JSON",
            Method::PATCH,
            &target,
            "application/merge-patch+json",
            "{not json",
            Some(400),
        ),
        case(
            "merge patch that is an array",
            Method::PATCH,
            &target,
            "application/merge-patch+json",
            "[1,2]",
            None,
        ),
        case(
            "JSON patch that is an object",
            Method::PATCH,
            &target,
            "application/json-patch+json",
            r#"{"op":"add"}"#,
            Some(400),
        ),
        case(
            "JSON patch with an unknown op",
            Method::PATCH,
            &target,
            "application/json-patch+json",
            r#"[{"op":"explode","path":"/data/x"}]"#,
            None,
        ),
        case(
            "JSON patch removing a missing path",
            Method::PATCH,
            &target,
            "application/json-patch+json",
            r#"[{"op":"remove","path":"/data/missing/deeper"}]"#,
            None,
        ),
        case(
            "JSON patch making the object invalid",
            Method::PATCH,
            &target,
            "application/json-patch+json",
            r#"[{"op":"replace","path":"/data","value":7}]"#,
            None,
        ),
        case(
            "strategic patch with a deep array",
            Method::PATCH,
            &target,
            "application/strategic-merge-patch+json",
            deep_array,
            Some(400),
        ),
        case(
            "patch with an unsupported patch type",
            Method::PATCH,
            &target,
            JSON,
            r#"{"data":{}}"#,
            Some(415),
        ),
        case(
            "unknown resource",
            Method::GET,
            "/api/v1/namespaces/default/widgets",
            JSON,
            "",
            Some(404),
        ),
        case(
            "unknown group",
            Method::GET,
            "/apis/nope.example.com/v1/things",
            JSON,
            "",
            Some(404),
        ),
        case(
            "DELETE with a non-JSON body",
            Method::DELETE,
            &target,
            JSON,
            "{",
            Some(400),
        ),
    ]
}

async fn hostile_requests_get_4xx_status_and_server_survives(backend: Backend) {
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(backend))
        .await
        .expect("start");
    let http = reqwest::Client::new();
    let base = cluster.url();
    let target = http
        .post(format!("{base}{CMS}"))
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}, "data": {"k": "v"}}))
        .send()
        .await
        .expect("create the patch target");
    assert_eq!(target.status(), 201);

    let mut failures = Vec::new();
    for case in cases() {
        let response = http
            .request(case.method.clone(), format!("{base}{}", case.path))
            .header("content-type", case.content_type)
            .body(case.body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: no answer: {e}", case.what));
                continue;
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let status_ok = match case.status {
            Some(expected) => status == expected,
            None => (400..500).contains(&status),
        };
        let body_ok = answer["kind"] == "Status"
            && answer["apiVersion"] == "v1"
            && answer["status"] == "Failure"
            && answer["code"] == status
            && answer["message"].as_str().is_some_and(|m| !m.is_empty());
        if !status_ok || !body_ok {
            let shown: String = text.chars().take(300).collect();
            failures.push(format!(
                "{}: expected {:?}, got {status}: {shown}",
                case.what, case.status
            ));
        }
        // A fresh connection: the server may close the one it refused a body on.
        let ready = reqwest::Client::new()
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(
            ready.ok(),
            Some(200),
            "the server stopped serving after {:?}",
            case.what
        );
    }

    // The server still works normally, and nothing hostile was stored.
    let ok = http
        .post(format!("{base}{CMS}"))
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}))
        .send()
        .await
        .expect("create after the hostile requests");
    assert_eq!(ok.status(), 201);
    let list: Value = http
        .get(format!("{base}{CMS}"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        // Published in every namespace by the controller-manager, as in Kubernetes.
        .filter(|n| *n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["after", "target"]);
    let target: Value = http
        .get(format!("{base}{CMS}/target"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("JSON");
    assert_eq!(target["data"], json!({"k": "v"}));

    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("stop");
    assert!(
        failures.is_empty(),
        "{} hostile requests were mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

both_backends_async!(hostile_requests_get_4xx_status_and_server_survives);
