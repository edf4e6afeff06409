//! History compaction as clients see it: with a one-second compaction
//! interval, an exact list at a compacted resourceVersion and a continue
//! token from before the compaction both answer 410 Expired with the
//! messages of Kubernetes' etcd3 store (`interpretListError`).

use std::time::Duration;

use e2e::{Backend, Cluster, both_backends_async};
use serde_json::{Value, json};

async fn compacted_history_answers_410_expired(backend: Backend) {
    let cluster = tokio::task::spawn_blocking(move || {
        Cluster::start_with_args(backend, &["--compaction-interval-seconds", "1"])
    })
    .await
    .expect("start");
    let http = reqwest::Client::new();
    let collection = format!("{}/api/v1/namespaces/default/configmaps", cluster.url());
    for name in ["hist-a", "hist-b", "hist-c"] {
        let response = http
            .post(&collection)
            .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}))
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 201);
    }
    let first_page: Value = http
        .get(format!("{collection}?limit=1"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    let old_rv = first_page["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    let token = first_page["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_owned();

    // Newer revisions, then time for the compactor to pass the old one.
    for i in 0..3 {
        let response = http
            .patch(format!("{collection}/hist-a"))
            .header("content-type", "application/merge-patch+json")
            .body(json!({"data": {"i": i.to_string()}}).to_string())
            .send()
            .await
            .expect("patch");
        assert_eq!(response.status(), 200);
    }
    let exact = format!("{collection}?resourceVersion={old_rv}&resourceVersionMatch=Exact");
    let mut answer = Value::Null;
    let mut status = 0;
    for _ in 0..100 {
        let response = http.get(&exact).send().await.expect("exact list");
        status = response.status().as_u16();
        answer = response.json().await.expect("JSON");
        if status == 410 {
            break;
        }
        assert_eq!(
            status, 200,
            "an exact list before compaction works: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 410,
        "revision {old_rv} was never compacted: {answer}"
    );
    assert_eq!(answer["kind"], "Status");
    assert_eq!(answer["reason"], "Expired");
    assert_eq!(answer["code"], 410);
    assert_eq!(
        answer["message"],
        "The resourceVersion for the provided list is too old."
    );

    let response = http
        .get(format!("{collection}?limit=1&continue={token}"))
        .send()
        .await
        .expect("continue");
    assert_eq!(response.status(), 410);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["reason"], "Expired");
    // etcd3 store's handleCompactedErrorForPaging: the inconsistent-continue
    // message, with a token that continues at the latest revision.
    assert_eq!(
        answer["message"],
        "The provided continue parameter is too old to display a consistent list result. \
         You can start a new list without the continue parameter, or use the continue token in \
         this response to retrieve the remainder of the results. Continuing with the provided \
         token results in an inconsistent list - objects that were created, modified, or deleted \
         between the time the first chunk was returned and now may show up in the list."
    );
    assert!(
        answer["metadata"]["continue"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "the 410 carries a new continue token: {answer}"
    );

    // A fresh list still works and sees the latest state.
    let latest: Value = http
        .get(&collection)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    assert_eq!(latest["items"][0]["data"]["i"], "2");

    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("stop");
}

both_backends_async!(compacted_history_answers_410_expired);
