//! `POST pods/<name>/binding` as Kubernetes' `BindingREST` answers it: the
//! pod gets its node and a true PodScheduled condition once; a second
//! binding or a binding for another pod's UID is a 409 Conflict that
//! leaves the pod as it was; a missing pod is a 404.

mod support;

use serde_json::{Value, json};

async fn call(app: &axum::Router, method: &str, path: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let answer = support::call(app, method, path, "application/json", &body).await;
    (answer.code, answer.body)
}

fn binding(pod: &str, uid: &str, node: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": pod, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
}

#[tokio::test]
async fn a_pod_is_bound_once_to_one_node() {
    let (_dir, app) = support::server().await;
    let pods = "/api/v1/namespaces/default/pods";
    let (code, pod) = call(
        &app,
        "POST",
        pods,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "terminationGracePeriodSeconds": 30}}),
    )
    .await;
    assert_eq!(code, 201, "{pod}");
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let created_rv = pod["metadata"]["resourceVersion"].clone();

    let (code, status) = call(
        &app,
        "POST",
        &format!("{pods}/web/binding"),
        binding("web", "other-uid", "n1"),
    )
    .await;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");

    let (code, status) = call(
        &app,
        "POST",
        &format!("{pods}/web/binding"),
        binding("web", &uid, "n1"),
    )
    .await;
    assert_eq!(code, 201, "{status}");
    assert_eq!(status["status"], "Success");

    let (_, bound) = call(&app, "GET", &format!("{pods}/web"), Value::Null).await;
    assert_eq!(bound["spec"]["nodeName"], "n1");
    assert_ne!(bound["metadata"]["resourceVersion"], created_rv);
    let scheduled: Vec<&Value> = bound["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .filter(|c| c["type"] == "PodScheduled")
        .collect();
    assert_eq!(scheduled.len(), 1, "{bound}");
    assert_eq!(scheduled[0]["status"], "True");
    assert!(scheduled[0]["lastTransitionTime"].is_string());
    assert_eq!(bound["metadata"]["uid"], uid.as_str());
    assert_eq!(bound["status"]["phase"], "Pending", "status otherwise kept");

    let (code, status) = call(
        &app,
        "POST",
        &format!("{pods}/web/binding"),
        binding("web", &uid, "n2"),
    )
    .await;
    assert_eq!(code, 409, "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("already assigned to node \"n1\"")),
        "{status}"
    );
    let (_, again) = call(&app, "GET", &format!("{pods}/web"), Value::Null).await;
    assert_eq!(again["spec"]["nodeName"], "n1");
    assert_eq!(
        again["metadata"]["resourceVersion"],
        bound["metadata"]["resourceVersion"]
    );

    let (code, status) = call(
        &app,
        "POST",
        &format!("{pods}/ghost/binding"),
        binding("ghost", "", "n1"),
    )
    .await;
    assert_eq!(code, 404, "{status}");
}
