//! Conformance: history — lists at older revisions, watches that replay and
//! then stream, and compaction (by hand and by the periodic compactor).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::{assert_watch_compacted, bytes, next_change};
use crate::storage::{KeyValue, Storage, StorageError, WatchEvent, spawn_compactor};

fn summary(kvs: &[KeyValue]) -> Vec<(String, String, i64)> {
    kvs.iter()
        .map(|kv| {
            let value = String::from_utf8_lossy(&kv.value).into_owned();
            (kv.key.clone(), value, kv.mod_revision)
        })
        .collect()
}

pub(super) async fn list_at_an_old_revision_sees_the_state_of_then(storage: Arc<dyn Storage>) {
    let p = "/registry/services/ns/";
    let a1 = storage
        .create(&format!("{p}a"), bytes("a1"))
        .await
        .expect("create a");
    let b1 = storage
        .create(&format!("{p}b"), bytes("b1"))
        .await
        .expect("create b");
    let c1 = storage
        .create(&format!("{p}c"), bytes("c1"))
        .await
        .expect("create c");
    let then = storage.current_revision().await.expect("revision");
    let before = storage.list(p, None, 0, None).await.expect("list then");

    // Afterwards: a is updated, b deleted, c deleted and recreated, d created,
    // and a sibling prefix is written.
    storage
        .update(&format!("{p}a"), bytes("a2"), a1)
        .await
        .expect("update a");
    storage
        .delete(&format!("{p}b"), Some(b1))
        .await
        .expect("delete b");
    storage
        .delete(&format!("{p}c"), None)
        .await
        .expect("delete c");
    storage
        .create(&format!("{p}c"), bytes("c2"))
        .await
        .expect("recreate c");
    storage
        .create(&format!("{p}d"), bytes("d1"))
        .await
        .expect("create d");
    storage
        .create("/registry/servicesx/ns/a", bytes("x"))
        .await
        .expect("sibling");

    let old = storage
        .list(p, None, 0, Some(then))
        .await
        .expect("list at then");
    assert_eq!(old.revision, then);
    assert_eq!(summary(&old.kvs), summary(&before.kvs));
    assert_eq!(
        summary(&old.kvs),
        [
            (format!("{p}a"), "a1".to_owned(), a1),
            (format!("{p}b"), "b1".to_owned(), b1),
            (format!("{p}c"), "c1".to_owned(), c1),
        ]
    );
    let page = storage
        .list(p, Some(&format!("{p}a")), 1, Some(then))
        .await
        .expect("page at then");
    assert_eq!(summary(&page.kvs), [(format!("{p}b"), "b1".to_owned(), b1)]);
    let first = storage
        .list(p, None, 0, Some(a1))
        .await
        .expect("list at a1");
    assert_eq!(
        summary(&first.kvs),
        [(format!("{p}a"), "a1".to_owned(), a1)]
    );

    let now = storage.current_revision().await.expect("revision");
    let latest = storage.list(p, None, 0, None).await.expect("latest");
    let keys: Vec<_> = latest.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, [format!("{p}a"), format!("{p}c"), format!("{p}d")]);
    match storage.list(p, None, 0, Some(now + 10)).await {
        Err(StorageError::FutureRevision { requested, current }) => {
            assert_eq!((requested, current), (now + 10, now));
        }
        other => panic!("list in the future: {other:?}"),
    }
}

pub(super) async fn watch_from_a_past_revision_replays_then_streams_live(
    storage: Arc<dyn Storage>,
) {
    let p = "/registry/pods/ns/";
    let a1 = storage
        .create(&format!("{p}a"), bytes("a1"))
        .await
        .expect("create a");
    let b2 = storage
        .create(&format!("{p}b"), bytes("b1"))
        .await
        .expect("create b");
    let a3 = storage
        .update(&format!("{p}a"), bytes("a2"), a1)
        .await
        .expect("update a");
    let (_, b4) = storage
        .delete(&format!("{p}b"), Some(b2))
        .await
        .expect("delete b");
    storage
        .create("/registry/podsx/ns/z", bytes("z"))
        .await
        .expect("sibling");

    let mut watch = storage.watch(p, a1).await.expect("watch");
    match next_change(&mut watch).await {
        WatchEvent::Put { kv, prev: None } => assert_eq!(
            (kv.key.as_str(), kv.mod_revision, kv.create_revision),
            (format!("{p}b").as_str(), b2, b2)
        ),
        other => panic!("replayed create of b: {other:?}"),
    }
    match next_change(&mut watch).await {
        WatchEvent::Put {
            kv,
            prev: Some(prev),
        } => {
            assert_eq!(
                (&kv.value[..], kv.mod_revision, kv.create_revision),
                (&b"a2"[..], a3, a1)
            );
            assert_eq!((&prev.value[..], prev.mod_revision), (&b"a1"[..], a1));
        }
        other => panic!("replayed update of a: {other:?}"),
    }
    match next_change(&mut watch).await {
        WatchEvent::Delete { prev, revision } => {
            assert_eq!(revision, b4);
            assert_eq!(
                (prev.key.as_str(), &prev.value[..], prev.mod_revision),
                (format!("{p}b").as_str(), &b"b1"[..], b2)
            );
        }
        other => panic!("replayed delete of b: {other:?}"),
    }

    // Live now: the sibling prefix stays invisible, deletes carry the value.
    let c = storage
        .create(&format!("{p}c"), bytes("c1"))
        .await
        .expect("create c");
    storage
        .create("/registry/podsx/ns/y", bytes("y"))
        .await
        .expect("sibling");
    let (_, a_deleted) = storage
        .delete(&format!("{p}a"), None)
        .await
        .expect("delete a");
    match next_change(&mut watch).await {
        WatchEvent::Put { kv, prev: None } => assert_eq!(kv.mod_revision, c),
        other => panic!("live create of c: {other:?}"),
    }
    match next_change(&mut watch).await {
        WatchEvent::Delete { prev, revision } => {
            assert_eq!(revision, a_deleted);
            assert_eq!((&prev.value[..], prev.mod_revision), (&b"a2"[..], a3));
        }
        other => panic!("live delete of a: {other:?}"),
    }
    // Nothing repeated or skipped: the very next change is the next write.
    let d = storage
        .create(&format!("{p}d"), bytes("d1"))
        .await
        .expect("create d");
    assert_eq!(next_change(&mut watch).await.revision(), d);

    // A watch from the current revision sees only what follows.
    let mut fresh = storage.watch(p, d).await.expect("watch from now");
    let e = storage
        .create(&format!("{p}e"), bytes("e1"))
        .await
        .expect("create e");
    assert_eq!(next_change(&mut fresh).await.revision(), e);
}

pub(super) async fn live_watch_sees_every_concurrent_write_once_in_order(
    storage: Arc<dyn Storage>,
) {
    let p = "/registry/leases/ns/";
    storage
        .create(&format!("{p}seed"), bytes("0"))
        .await
        .expect("seed");
    let start = storage.current_revision().await.expect("revision");
    let mut watch = storage.watch(p, start).await.expect("watch");
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in 0..40 {
                    let key = format!("/registry/leases/ns/w{w}-{i}");
                    revisions.push(storage.create(&key, bytes("x")).await.expect("create"));
                }
                revisions
            })
        })
        .collect();
    let mut written = BTreeSet::new();
    for writer in writers {
        written.extend(writer.await.expect("writer task"));
    }
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        seen.push(next_change(&mut watch).await.revision());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "revision order");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), written);
}

pub(super) async fn watch_and_list_before_the_compacted_revision_answer_compacted(
    storage: Arc<dyn Storage>,
) {
    let key = "/registry/events/ns/e";
    let mut revision = storage.create(key, bytes("0")).await.expect("create");
    let first = revision;
    for i in 1..6 {
        revision = storage
            .update(key, bytes(&i.to_string()), revision)
            .await
            .expect("update");
    }
    let compact_to = revision - 2;
    storage.compact(compact_to).await.expect("compact");

    match storage
        .list("/registry/events/", None, 0, Some(first))
        .await
    {
        Err(StorageError::Compacted { requested, .. }) => assert_eq!(requested, first),
        other => panic!("list before the compacted revision: {other:?}"),
    }
    assert_watch_compacted(storage.as_ref(), "/registry/events/", first).await;
    assert_watch_compacted(storage.as_ref(), "/registry/events/", compact_to - 2).await;
    // Compacting again to the same or an older revision is harmless.
    storage.compact(compact_to).await.expect("compact again");
    storage.compact(first).await.expect("compact older");
    // Compacting into the future is refused.
    assert!(matches!(
        storage.compact(revision + 5).await,
        Err(StorageError::FutureRevision { .. })
    ));
}

pub(super) async fn compaction_keeps_the_state_at_the_compacted_revision(
    storage: Arc<dyn Storage>,
) {
    let p = "/registry/jobs/ns/";
    let a = storage
        .create(&format!("{p}a"), bytes("a1"))
        .await
        .expect("create a");
    let b = storage
        .create(&format!("{p}b"), bytes("b1"))
        .await
        .expect("create b");
    let a = storage
        .update(&format!("{p}a"), bytes("a2"), a)
        .await
        .expect("update a");
    storage
        .create(&format!("{p}c"), bytes("c1"))
        .await
        .expect("create c");
    storage
        .delete(&format!("{p}c"), None)
        .await
        .expect("delete c");
    let compact_to = storage.current_revision().await.expect("revision");
    let at_compaction = storage
        .list(p, None, 0, Some(compact_to))
        .await
        .expect("list");
    // Changes after the compaction point, which lists at it must see through.
    let a_next = storage
        .update(&format!("{p}a"), bytes("a3"), a)
        .await
        .expect("update a");
    storage
        .delete(&format!("{p}b"), Some(b))
        .await
        .expect("delete b");
    storage
        .create(&format!("{p}c"), bytes("c2"))
        .await
        .expect("recreate c");

    storage.compact(compact_to).await.expect("compact");
    let after = storage
        .list(p, None, 0, Some(compact_to))
        .await
        .expect("list at compaction");
    assert_eq!(summary(&after.kvs), summary(&at_compaction.kvs));
    assert_eq!(
        summary(&after.kvs),
        [
            (format!("{p}a"), "a2".to_owned(), a),
            (format!("{p}b"), "b1".to_owned(), b)
        ]
    );
    // A watch from just before the compacted revision's successor still
    // replays everything after it, prev values included.
    let mut watch = storage
        .watch(p, compact_to)
        .await
        .expect("watch from the compacted revision");
    match next_change(&mut watch).await {
        WatchEvent::Put {
            kv,
            prev: Some(prev),
        } => {
            assert_eq!((kv.mod_revision, prev.mod_revision), (a_next, a));
        }
        other => panic!("update of a after compaction: {other:?}"),
    }
    match next_change(&mut watch).await {
        WatchEvent::Delete { prev, .. } => {
            assert_eq!((&prev.value[..], prev.mod_revision), (&b"b1"[..], b))
        }
        other => panic!("delete of b after compaction: {other:?}"),
    }
    assert!(matches!(
        next_change(&mut watch).await,
        WatchEvent::Put { prev: None, .. }
    ));
}

pub(super) async fn compactor_compacts_to_the_revision_of_the_previous_tick(
    storage: Arc<dyn Storage>,
) {
    let key = "/registry/configmaps/ns/compacted";
    let first = storage.create(key, bytes("0")).await.expect("create");
    let mut revision = first;
    for i in 1..4 {
        revision = storage
            .update(key, bytes(&i.to_string()), revision)
            .await
            .expect("update");
    }
    let compactor = spawn_compactor(storage.clone(), Duration::from_millis(200));
    // The first tick records the revision; the second compacts to it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match storage
            .list("/registry/configmaps/", None, 0, Some(first))
            .await
        {
            Err(StorageError::Compacted { .. }) => break,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("the compactor never compacted: {other:?}"),
        }
    }
    compactor.abort();
    // It compacted to a revision it saw, never past the newest write.
    let latest = storage
        .list("/registry/configmaps/", None, 0, Some(revision))
        .await;
    assert_eq!(latest.expect("list at the newest revision").kvs.len(), 1);
}
