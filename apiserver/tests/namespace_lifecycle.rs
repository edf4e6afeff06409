//! NamespaceLifecycle, as kube-apiserver's admission plugin has it: a
//! namespace being deleted (phase Terminating) takes no new objects.

mod support;

use std::time::Duration;

use support::{call, server};

const JSON: &str = "application/json";

#[tokio::test]
async fn a_terminating_namespace_takes_no_new_objects() {
    let (_dir, app) = server().await;
    let ns = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"doomed"}}"#;
    assert_eq!(
        call(&app, "POST", "/api/v1/namespaces", JSON, ns)
            .await
            .code,
        201
    );
    let cm = |name: &str| {
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}}}}"#)
    };
    let uri = "/api/v1/namespaces/doomed/configmaps";
    assert_eq!(call(&app, "POST", uri, JSON, &cm("before")).await.code, 201);

    // The namespace keeps its `kubernetes` finalizer, so it stays, Terminating.
    let deleted = call(&app, "DELETE", "/api/v1/namespaces/doomed", JSON, "").await;
    assert_eq!(deleted.code, 200, "{}", deleted.body);
    assert_eq!(
        deleted.body["status"]["phase"], "Terminating",
        "{}",
        deleted.body
    );

    // Creates read the namespace from the watch cache, which follows the
    // store's watch: the refusal comes as soon as the cache has the delete.
    let mut attempt = 0;
    let answer = loop {
        let answer = call(&app, "POST", uri, JSON, &cm(&format!("after-{attempt}"))).await;
        if answer.code != 201 || attempt == 100 {
            break answer;
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer.code, 403, "{}", answer.body);
    assert_eq!(answer.body["reason"], "Forbidden");
    assert_eq!(
        answer.body["message"],
        format!(
            "configmaps \"after-{attempt}\" is forbidden: unable to create new content in namespace doomed because it is being terminated"
        )
    );

    // Another namespace is unaffected.
    let other = "/api/v1/namespaces/default/configmaps";
    assert_eq!(call(&app, "POST", other, JSON, &cm("fine")).await.code, 201);
}
