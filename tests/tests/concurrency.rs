//! Optimistic concurrency over HTTP: writers racing with the same
//! resourceVersion on one object; exactly one wins each round and every other
//! gets 409 Conflict, on both backends.

use std::sync::Arc;

use e2e::{Backend, Cluster, both_backends_async};
use serde_json::{Value, json};
use tokio::sync::Barrier;

const ROUNDS: usize = 60;

async fn racing_writers_one_wins_each_round(backend: Backend) {
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(backend))
        .await
        .expect("start");
    let http = reqwest::Client::new();
    let collection = format!("{}/api/v1/namespaces/default/configmaps", cluster.url());
    let url = format!("{collection}/race");
    let created = http
        .post(&collection)
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "race"}, "data": {"round": "start"}}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);

    for writers in [2usize, 5] {
        for round in 0..ROUNDS {
            let current: Value = http
                .get(&url)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("JSON");
            let rv = current["metadata"]["resourceVersion"]
                .as_str()
                .expect("rv")
                .to_owned();
            let barrier = Arc::new(Barrier::new(writers));
            let tasks: Vec<_> = (0..writers)
                .map(|writer| {
                    let (http, url, rv, barrier) = (http.clone(), url.clone(), rv.clone(), barrier.clone());
                    tokio::spawn(async move {
                        let body = json!({
                            "apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "race", "namespace": "default", "resourceVersion": rv},
                            "data": {"round": round.to_string(), "writer": writer.to_string()},
                        });
                        barrier.wait().await;
                        let response = http.put(&url).json(&body).send().await.expect("put");
                        let status = response.status().as_u16();
                        let answer: Value = response.json().await.expect("a JSON answer");
                        (writer, status, answer)
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for task in tasks {
                let (writer, status, answer) = task.await.expect("writer task");
                match status {
                    200 => winners.push((writer, answer)),
                    409 => {
                        assert_eq!(answer["kind"], "Status");
                        assert_eq!(answer["reason"], "Conflict", "{answer}");
                        assert_eq!(answer["code"], 409);
                        assert_eq!(
                            answer["message"],
                            "Operation cannot be fulfilled on configmaps \"race\": the object has been modified; \
                             please apply your changes to the latest version and try again"
                        );
                    }
                    other => panic!("round {round}: writer {writer} got {other}: {answer}"),
                }
            }
            assert_eq!(
                winners.len(),
                1,
                "round {round} with {writers} writers: exactly one wins, got {}",
                winners.len()
            );
            let (winner, answer) = &winners[0];
            let stored: Value = http
                .get(&url)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("JSON");
            assert_eq!(stored["data"]["writer"], winner.to_string());
            assert_eq!(stored["data"]["round"], round.to_string());
            assert_eq!(
                stored["metadata"]["resourceVersion"],
                answer["metadata"]["resourceVersion"]
            );
            assert_ne!(stored["metadata"]["resourceVersion"], rv.as_str());
        }
    }
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("stop");
}

both_backends_async!(racing_writers_one_wins_each_round);
