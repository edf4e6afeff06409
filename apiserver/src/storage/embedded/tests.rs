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

/// The revisions left in the log table.
fn log_revisions(store: &EmbeddedStore) -> Vec<i64> {
    use redb::{ReadableDatabase, ReadableTable};
    let txn = store.shared.db.begin_read().expect("read");
    let log = txn.open_table(super::LOG).expect("log table");
    log.iter()
        .expect("iterate")
        .map(|item| item.expect("entry").0.value())
        .collect()
}

#[tokio::test]
async fn compaction_removes_superseded_entries_and_old_tombstones_only() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let a1 = store.create("/k/a", value(1)).await.expect("create a");
    let a2 = store.update("/k/a", value(2), a1).await.expect("update a");
    let a3 = store.update("/k/a", value(3), a2).await.expect("update a");
    let b4 = store.create("/k/b", value(4)).await.expect("create b");
    let (_, b5) = store.delete("/k/b", None).await.expect("delete b");
    let c6 = store.create("/k/c", value(6)).await.expect("create c");
    let a7 = store.update("/k/a", value(7), a3).await.expect("update a");
    assert_eq!(log_revisions(&store), [a1, a2, a3, b4, b5, c6, a7]);

    store.compact(c6).await.expect("compact");
    // a3 is a's last entry before c6 and a7 (at or after c6) still needs it
    // as its prev; b's create and tombstone are both gone.
    assert_eq!(log_revisions(&store), [a3, c6, a7]);
    // At the compacted revision itself nothing is removed: a watch from just
    // before it replays a7 with a3 as its prev.
    store.compact(a7).await.expect("compact to the newest");
    assert_eq!(log_revisions(&store), [a3, c6, a7]);
    let a8 = store.update("/k/a", value(8), a7).await.expect("update a");
    store.compact(a8).await.expect("compact further");
    assert_eq!(log_revisions(&store), [c6, a7, a8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_larger_than_one_sweep_chunk_completes() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let writers: Vec<_> = (0..32)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("/k/{w:02}");
                let mut revision = store.create(&key, value(0)).await.expect("create");
                for i in 1..160 {
                    revision = store
                        .update(&key, value(i), revision)
                        .await
                        .expect("update");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let now = store.current_revision().await.expect("revision");
    assert!(log_revisions(&store).len() > 2 * super::compact::SWEEP_CHUNK);
    let before = store.list("/k/", None, 0, None).await.expect("list");
    store.compact(now).await.expect("compact");
    // Each key keeps its last entry; the key written at `now` itself also
    // keeps the one before, the prev of a watch from `now - 1`.
    assert_eq!(log_revisions(&store).len(), 33);
    let at = store
        .list("/k/", None, 0, Some(now))
        .await
        .expect("list at now");
    assert_eq!(at.kvs, before.kvs);
}

/// A store written before values were kept once: live keys are rows of their
/// revisions followed by a copy of the value.
fn write_legacy_store(path: &std::path::Path) {
    use super::codec::LogEntry;
    use super::{CURRENT_REVISION, FILE_NAME, LEGACY_KV, LOG, META};
    let db = redb::Database::create(path.join(FILE_NAME)).expect("create");
    let txn = db.begin_write().expect("write");
    {
        let mut kv = txn.open_table(LEGACY_KV).expect("kv");
        let mut log = txn.open_table(LOG).expect("log");
        let mut meta = txn.open_table(META).expect("meta");
        // a created at 1, updated at 3; b created at 2 and deleted at 4.
        let entries = [
            (1, "/registry/pods/ns/a", Some(value(1)), 1, 0),
            (2, "/registry/pods/ns/b", Some(value(2)), 2, 0),
            (3, "/registry/pods/ns/a", Some(value(3)), 1, 1),
            (4, "/registry/pods/ns/b", None, 2, 2),
        ];
        for (revision, key, value, create_revision, prev_revision) in entries {
            let entry = LogEntry {
                key: key.into(),
                value,
                create_revision,
                prev_revision,
            };
            log.insert(revision, entry.encode().as_slice())
                .expect("log");
        }
        let mut row = 1i64.to_le_bytes().to_vec();
        row.extend_from_slice(&3i64.to_le_bytes());
        row.extend_from_slice(&value(3));
        kv.insert("/registry/pods/ns/a", row.as_slice())
            .expect("kv");
        meta.insert(CURRENT_REVISION, 4).expect("meta");
    }
    txn.commit().expect("commit");
}

#[tokio::test]
async fn a_store_of_the_earlier_layout_opens_with_its_keys_values_and_history() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_legacy_store(dir.path());
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let a = store
            .get("/registry/pods/ns/a")
            .await
            .expect("get")
            .expect("present");
        assert_eq!(
            (a.value, a.create_revision, a.mod_revision),
            (value(3), 1, 3)
        );
        assert!(
            store
                .get("/registry/pods/ns/b")
                .await
                .expect("get")
                .is_none()
        );
        let at_2 = store
            .list("/registry/", None, 0, Some(2))
            .await
            .expect("list");
        let keys: Vec<_> = at_2.kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/registry/pods/ns/a", "/registry/pods/ns/b"]);
        assert_eq!(at_2.kvs[0].value, value(1));
        let revision = store
            .update("/registry/pods/ns/a", value(5), 3)
            .await
            .expect("update");
        assert_eq!(revision, 5);
    }
    use redb::{ReadableDatabase, TableHandle};
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    let latest = store.list("/registry/", None, 0, None).await.expect("list");
    assert_eq!(latest.kvs.len(), 1);
    assert_eq!(
        (latest.kvs[0].value.clone(), latest.revision),
        (value(5), 5)
    );
    let txn = store.shared.db.begin_read().expect("read");
    let tables: Vec<_> = txn
        .list_tables()
        .expect("tables")
        .map(|table| table.name().to_owned())
        .collect();
    assert!(!tables.contains(&"kv".to_owned()), "{tables:?}");
}

/// Copies the store's directory, as a crash at this moment would leave it,
/// opens the copy, and tells whether redb had to walk the file to rebuild
/// its allocator state.
fn crash_image_needs_full_repair(live: &std::path::Path, image: &std::path::Path) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    crate::testing::copy_store_files(live, image).expect("copy the store");
    let repaired = std::sync::Arc::new(AtomicBool::new(false));
    let flag = repaired.clone();
    let db = redb::Builder::new()
        .set_repair_callback(move |_| flag.store(true, Ordering::SeqCst))
        .create(image.join(super::FILE_NAME))
        .expect("open the image");
    drop(db);
    repaired.load(Ordering::SeqCst)
}

#[tokio::test]
async fn an_idle_writer_records_the_allocator_state_so_a_crash_then_needs_no_full_repair() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let live = dir.path().join("live");
    let store = EmbeddedStore::open(&live).expect("open");
    for i in 0..50 {
        store
            .create(&format!("/registry/pods/ns/p{i:02}"), value(i))
            .await
            .expect("create");
    }
    // Right after the writes, their group commits have left the record out.
    // The copy must be taken before the writer's idle pause ends, or it
    // would show the recorded state; on a machine too slow for that, this
    // half says nothing.
    let written = std::time::Instant::now();
    let busy = crash_image_needs_full_repair(&live, &dir.path().join("busy"));
    if written.elapsed() < super::writer::RECORD_AFTER_IDLE / 2 {
        assert!(busy, "a crash under load should need the full repair");
    }
    tokio::time::sleep(super::writer::RECORD_AFTER_IDLE * 3).await;
    assert!(
        !crash_image_needs_full_repair(&live, &dir.path().join("idle")),
        "a crash after the idle pause should find the recorded allocator state"
    );
    drop(store);
}
