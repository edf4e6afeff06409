//! Durability: SIGKILL the API server while 32 clients are creating 1,000
//! objects, restart it on the same data, and find every object whose create
//! was answered 201.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::{Backend, Cluster, both_backends_async};
use serde_json::{Value, json};

const CREATES: usize = 1_000;
const CLIENTS: usize = 32;
/// The kill comes after this many 201s: well inside the run.
const KILL_AFTER: usize = 400;

async fn acknowledged_creates_survive_sigkill(backend: Backend) {
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(backend))
        .await
        .expect("start");
    let collection = format!("{}/api/v1/namespaces/default/configmaps", cluster.url());
    let cluster = Arc::new(Mutex::new(cluster));
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let killed = Arc::new(AtomicBool::new(false));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (collection, next, acknowledged, killed, cluster) =
                (collection.clone(), next.clone(), acknowledged.clone(), killed.clone(), cluster.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= CREATES {
                        return;
                    }
                    let name = format!("durable-{i:04}");
                    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": i.to_string()}});
                    match http.post(&collection).json(&body).send().await {
                        Ok(response) if response.status() == 201 => {
                            let count = {
                                let mut set = acknowledged.lock().expect("lock");
                                set.insert(name);
                                set.len()
                            };
                            if count == KILL_AFTER && !killed.swap(true, Ordering::SeqCst) {
                                let cluster = cluster.clone();
                                tokio::task::spawn_blocking(move || cluster.lock().expect("lock").kill9())
                                    .await
                                    .expect("kill");
                            }
                        }
                        Ok(response) => {
                            let status = response.status();
                            let text = response.text().await.unwrap_or_default();
                            panic!("create {name} answered {status}: {text}");
                        }
                        // After the kill connections fail; those creates were never acknowledged.
                        Err(_) if killed.load(Ordering::SeqCst) => {}
                        Err(e) => panic!("create {name} failed before the kill: {e}"),
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client task");
    }
    assert!(
        killed.load(Ordering::SeqCst),
        "the server was killed mid-run"
    );
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("lock"));
    assert!(acknowledged.len() >= KILL_AFTER);
    eprintln!(
        "{} of {CREATES} creates acknowledged before and around the SIGKILL",
        acknowledged.len()
    );

    let restarted = cluster.clone();
    tokio::task::spawn_blocking(move || restarted.lock().expect("lock").restart())
        .await
        .expect("restart");

    let http = reqwest::Client::new();
    let list: Value = http
        .get(&collection)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    let stored: BTreeSet<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged creates lost after SIGKILL: {lost:?}",
        lost.len()
    );
    for item in list["items"].as_array().expect("items") {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        // Published in every namespace by the controller-manager.
        if name == "kube-root-ca.crt" {
            continue;
        }
        assert_eq!(
            Some(item["data"]["i"].as_str().unwrap_or_default()),
            name.strip_prefix("durable-")
                .map(|n| n.trim_start_matches('0'))
                .map(|n| if n.is_empty() { "0" } else { n }),
            "{item}"
        );
    }

    // The restarted server keeps writing, above the old revisions.
    let old_rv: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("list rv");
    let response = http
        .post(&collection)
        .json(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after-restart"}}))
        .send()
        .await
        .expect("create after restart");
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("JSON");
    let new_rv: u64 = created["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("rv");
    assert!(new_rv > old_rv, "{new_rv} > {old_rv}");

    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("stop");
}

both_backends_async!(acknowledged_creates_survive_sigkill);
