//! The embedded store: the default backend, an in-process on-disk MVCC store
//! on `redb`, modelled on kine's log-structured backend
//! (`k3s-io/kine`, `pkg/logstructured/`). Three tables:
//!
//! - `log`: revision → (key, value or tombstone, create revision, revision of
//!   the key's previous entry): the history that watches replay and that
//!   `list` at an older revision walks back through;
//! - `keys`: each live key's create and mod revision; `get` and latest `list`
//!   read the value from the log entry at the mod revision, so a write stores
//!   its value once;
//! - `meta`: the current and the compacted revision.
//!
//! Writes go through one writer thread that group-commits ([`writer`]);
//! reads use redb's MVCC snapshots and never wait for the writer. History is
//! retained as etcd does: after `compact(c)` every log entry at or after `c`
//! is kept, and older entries are removed once superseded before `c`, so
//! lists at any revision ≥ `c` and watches from `c - 1` on stay answerable.

mod codec;
mod compact;
mod read;
#[cfg(test)]
mod tests;
mod watch;
mod writer;

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Builder, Database, ReadableTable, TableDefinition, TableHandle};
use std::sync::mpsc;

use tokio::sync::{broadcast, oneshot};

use super::{KeyValue, ListResult, Storage, StorageError, WatchStream};
use writer::{Committed, Op, Outcome, Request};

const KEYS: TableDefinition<&str, codec::LiveRow> = TableDefinition::new("keys");
/// Before `keys`, live keys were rows of their revisions followed by a second
/// copy of the value; opening such a store moves them to `keys`.
const LEGACY_KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<i64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const CURRENT_REVISION: &str = "current_revision";
const COMPACT_REVISION: &str = "compact_revision";
/// How far the log has been swept for a compaction (see [`compact`]).
const COMPACT_CURSOR: &str = "compact_cursor";

/// The file inside the store's directory.
const FILE_NAME: &str = "ferrokube.redb";
/// Committed groups a watcher may fall behind before it re-reads the log.
const EVENT_BUFFER: usize = 1024;

/// redb's page cache. The API server's watch cache serves every read of
/// objects; the store reads little besides the writer's lookups in hot tree
/// pages. redb keeps each page it writes in this cache until the cache is
/// full, so a large one (256 MiB before) grew the process by about every
/// byte written, a page fault each new page: after 20,000 pod creates the
/// peak RSS was 269 MiB, against 183 MiB with this size (and 59k page
/// faults against 38k).
const CACHE_SIZE: usize = 16 * 1024 * 1024;

/// The embedded MVCC store. Cheap to clone; all clones share one database
/// and one writer.
#[derive(Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
}

/// Fields drop in order: the request sender first, so the writer thread sees
/// its channel close, then the join waits for its last commit to finish,
/// which lets the same directory be reopened as soon as the store is dropped.
struct Shared {
    requests: mpsc::Sender<Request>,
    _writer: JoinOnDrop,
    db: Arc<Database>,
    events: broadcast::Sender<Arc<Committed>>,
    current: Arc<AtomicI64>,
}

struct JoinOnDrop(Option<JoinHandle<()>>);

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take()
            && thread.join().is_err()
        {
            tracing::error!("embedded store: writer thread panicked");
        }
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in the directory `path`.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StorageError> {
        Self::open_with(path, EVENT_BUFFER)
    }

    /// [`open`](Self::open) with `event_buffer` committed groups of slack
    /// before a watcher counts as lagging.
    fn open_with(path: &Path, event_buffer: usize) -> Result<EmbeddedStore, StorageError> {
        std::fs::create_dir_all(path)
            .map_err(|e| StorageError::Unavailable(format!("creating {}: {e}", path.display())))?;
        let file = path.join(FILE_NAME);
        let db = Builder::new()
            .set_cache_size(CACHE_SIZE)
            .create(&file)
            .map_err(|e| StorageError::Unavailable(format!("opening {}: {e}", file.display())))?;
        let revision = init_tables(&db).map_err(|e| internal(&e))?;
        let db = Arc::new(db);
        let current = Arc::new(AtomicI64::new(revision));
        let (requests, receiver) = mpsc::channel();
        let (events, _) = broadcast::channel(event_buffer);
        let writer = std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn({
                let (db, events, current) = (db.clone(), events.clone(), current.clone());
                move || writer::run(db, receiver, events, current)
            })
            .map_err(|e| StorageError::Internal(format!("spawning the writer thread: {e}")))?;
        Ok(EmbeddedStore {
            shared: Arc::new(Shared {
                requests,
                _writer: JoinOnDrop(Some(writer)),
                db,
                events,
                current,
            }),
        })
    }

    async fn write(&self, op: Op) -> Result<Outcome, StorageError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .requests
            .send(Request { op, reply })
            .map_err(|_| StorageError::Unavailable("embedded store writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StorageError::Unavailable("embedded store writer has stopped".into()))?
    }

    /// Runs a read on the blocking pool: redb reads may touch the disk.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let db = self.shared.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| internal(&e))?
    }
}

/// Creates the tables on first open and returns the persisted revision.
fn init_tables(db: &Database) -> Result<i64, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    let revision = {
        txn.open_table(KEYS)?;
        txn.open_table(LOG)?;
        let meta = txn.open_table(META)?;
        meta.get(CURRENT_REVISION)?.map_or(0, |r| r.value())
    };
    migrate_legacy_kv(&txn)?;
    txn.commit()?;
    Ok(revision)
}

/// Moves a legacy `kv` table's keys to `keys`, in the opening transaction, so
/// a crash leaves either the old layout or the new one.
fn migrate_legacy_kv(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let legacy_name = LEGACY_KV.name();
    if !txn.list_tables()?.any(|table| table.name() == legacy_name) {
        return Ok(());
    }
    {
        let legacy = txn.open_table(LEGACY_KV)?;
        let mut keys = txn.open_table(KEYS)?;
        for item in legacy.iter()? {
            let (key, row) = item?;
            let revisions = codec::legacy_row(key.value(), row.value())
                .map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            keys.insert(key.value(), revisions)?;
        }
    }
    txn.delete_table(LEGACY_KV)?;
    tracing::info!("embedded store: moved live keys to the `keys` table");
    Ok(())
}

fn internal(error: &impl Display) -> StorageError {
    StorageError::Internal(format!("embedded store: {error}"))
}

#[async_trait]
impl Storage for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        let key = key.to_owned();
        self.read(move |db| read::get(db, &key)).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<ListResult, StorageError> {
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        self.read(move |db| read::list(db, &prefix, start_after.as_deref(), limit, revision))
            .await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<i64, StorageError> {
        let op = Op::Create {
            key: key.to_owned(),
            value,
        };
        match self.write(op).await? {
            Outcome::Written(revision) => Ok(revision),
            Outcome::Deleted(..) => Err(StorageError::Internal("create answered a delete".into())),
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected: i64) -> Result<i64, StorageError> {
        let op = Op::Update {
            key: key.to_owned(),
            value,
            expected,
        };
        match self.write(op).await? {
            Outcome::Written(revision) => Ok(revision),
            Outcome::Deleted(..) => Err(StorageError::Internal("update answered a delete".into())),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<i64>,
    ) -> Result<(KeyValue, i64), StorageError> {
        let op = Op::Delete {
            key: key.to_owned(),
            expected,
        };
        match self.write(op).await? {
            Outcome::Deleted(prev, revision) => Ok((prev, revision)),
            Outcome::Written(_) => Err(StorageError::Internal("delete answered a put".into())),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream, StorageError> {
        watch::start(
            self.shared.db.clone(),
            &self.shared.events,
            prefix.to_owned(),
            after_revision,
        )
        .await
    }

    fn watchers_get_written_buffers(&self) -> bool {
        true
    }

    async fn current_revision(&self) -> Result<i64, StorageError> {
        Ok(self.shared.current.load(Ordering::Acquire))
    }

    async fn compact(&self, revision: i64) -> Result<(), StorageError> {
        self.read(move |db| compact::compact(db, revision)).await
    }
}
