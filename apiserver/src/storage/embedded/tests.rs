//! Tests of what only the embedded store has: persistence across reopening,
//! and watchers that fall behind the writer's broadcast.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::EmbeddedStore;
use crate::storage::{Storage, StorageError, WatchEvent};

fn value(i: usize) -> Bytes {
    Bytes::from(format!("{{\"i\":{i}}}"))
}

#[tokio::test]
async fn a_reopened_store_keeps_values_history_and_revisions() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (latest, at_old, old, compacted, revision) = {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        for i in 0..20 {
            store
                .create(&format!("/registry/pods/ns/p{i:02}"), value(i))
                .await
                .expect("create");
        }
        let compacted = store.current_revision().await.expect("revision");
        let old = compacted + 5;
        for i in 0..10 {
            let key = format!("/registry/pods/ns/p{i:02}");
            let kv = store.get(&key).await.expect("get").expect("present");
            if i % 2 == 0 {
                store
                    .update(&key, value(100 + i), kv.mod_revision)
                    .await
                    .expect("update");
            } else {
                store
                    .delete(&key, Some(kv.mod_revision))
                    .await
                    .expect("delete");
            }
        }
        store.compact(compacted).await.expect("compact");
        let at_old = store
            .list("/registry/", None, 0, Some(old))
            .await
            .expect("list old");
        let latest = store.list("/registry/", None, 0, None).await.expect("list");
        let revision = store.current_revision().await.expect("revision");
        (latest, at_old, old, compacted, revision)
    };

    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(store.current_revision().await.expect("revision"), revision);
    let reread = store.list("/registry/", None, 0, None).await.expect("list");
    assert_eq!(reread.kvs, latest.kvs);
    assert_eq!(reread.revision, revision);
    let reread_old = store
        .list("/registry/", None, 0, Some(old))
        .await
        .expect("list old");
    assert_eq!(reread_old.kvs, at_old.kvs);
    assert!(matches!(
        store.list("/registry/", None, 0, Some(compacted - 1)).await,
        Err(StorageError::Compacted { compacted: c, .. }) if c == compacted
    ));
    let next = store
        .create("/registry/pods/ns/new", value(0))
        .await
        .expect("create after reopening");
    assert_eq!(next, revision + 1, "revisions continue where they stopped");
}

#[tokio::test]
async fn opening_a_store_twice_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let first = EmbeddedStore::open(dir.path()).expect("open");
    let clone = first.clone();
    assert!(matches!(
        EmbeddedStore::open(dir.path()),
        Err(StorageError::Unavailable(_))
    ));
    drop(first);
    drop(clone);
    EmbeddedStore::open(dir.path()).expect("reopen after drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_watcher_rereads_the_log_and_misses_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // Two groups of broadcast slack: any consumer that stops reading lags.
    let store = EmbeddedStore::open_with(dir.path(), 2).expect("open");
    let mut watch = store.watch("/registry/", 0).await.expect("watch");
    // More single-write groups than the broadcast and the stream buffer hold.
    let mut written = Vec::new();
    for i in 0..400 {
        written.push(
            store
                .create(&format!("/registry/cm/ns/c{i:03}"), value(i))
                .await
                .expect("create"),
        );
    }
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let item = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("an event within 10s")
            .expect("the stream stays open")
            .expect("an event");
        if !matches!(item, WatchEvent::Progress { .. }) {
            seen.push(item.revision());
        }
    }
    assert_eq!(seen, written);
}

#[tokio::test(start_paused = true)]
async fn an_idle_watcher_reports_progress() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let mut watch = store.watch("/registry/nodes/", 0).await.expect("watch");
    let revision = store
        .create("/registry/pods/ns/a", value(0))
        .await
        .expect("create");
    let item = tokio::time::timeout(Duration::from_secs(60), watch.next())
        .await
        .expect("progress within a minute")
        .expect("the stream stays open")
        .expect("an event");
    assert_eq!(item, WatchEvent::Progress { revision });
}
