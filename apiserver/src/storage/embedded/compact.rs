//! Compaction of the embedded store's log, with etcd's retention rule: after
//! `compact(c)`, lists at revisions ≥ `c` and watches from `c - 1` on still
//! work, earlier ones answer `Compacted`. A log entry older than `c` is
//! removed when a later entry of the same key, also older than `c`,
//! supersedes it, and tombstones older than `c` are removed; entries at or
//! after `c`, and the last entry of each key before `c`, stay.
//!
//! The compacted revision is raised first (so no reader asks for what is
//! about to go), then the log is swept in bounded transactions so writers
//! are never held up for long. The sweep position is persisted, so a sweep
//! interrupted by a crash resumes at the next compaction.

use redb::{Database, ReadableTable};

use super::codec::LogView;
use super::{COMPACT_CURSOR, COMPACT_REVISION, CURRENT_REVISION, LOG, META, internal};
use crate::storage::StorageError;

/// Log entries examined per sweep transaction.
pub(super) const SWEEP_CHUNK: usize = 2048;

pub(super) fn compact(db: &Database, revision: i64) -> Result<(), StorageError> {
    if !raise_compacted_revision(db, revision)? {
        return Ok(());
    }
    while sweep_chunk(db)? {}
    Ok(())
}

/// Returns false when `revision` is already compacted (nothing to do).
fn raise_compacted_revision(db: &Database, revision: i64) -> Result<bool, StorageError> {
    let mut txn = db.begin_write().map_err(|e| internal(&e))?;
    txn.set_quick_repair(true);
    {
        let mut meta = txn.open_table(META).map_err(|e| internal(&e))?;
        let read = |name| -> Result<i64, StorageError> {
            Ok(meta
                .get(name)
                .map_err(|e| internal(&e))?
                .map_or(0, |r| r.value()))
        };
        let (current, compacted) = (read(CURRENT_REVISION)?, read(COMPACT_REVISION)?);
        if revision > current {
            return Err(StorageError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision <= compacted {
            return Ok(false);
        }
        meta.insert(COMPACT_REVISION, revision)
            .map_err(|e| internal(&e))?;
    }
    txn.commit().map_err(|e| internal(&e))?;
    Ok(true)
}

/// Sweeps the next chunk of the log below the compacted revision; returns
/// whether more remains.
fn sweep_chunk(db: &Database) -> Result<bool, StorageError> {
    let mut txn = db.begin_write().map_err(|e| internal(&e))?;
    txn.set_quick_repair(true);
    let more = {
        let mut meta = txn.open_table(META).map_err(|e| internal(&e))?;
        let mut log = txn.open_table(LOG).map_err(|e| internal(&e))?;
        let target = meta
            .get(COMPACT_REVISION)
            .map_err(|e| internal(&e))?
            .map_or(0, |r| r.value());
        let cursor = meta
            .get(COMPACT_CURSOR)
            .map_err(|e| internal(&e))?
            .map_or(0, |r| r.value());
        if cursor >= target {
            return Ok(false);
        }
        let mut doomed = Vec::new();
        let mut next_cursor = target;
        for (seen, item) in log
            .range(cursor..target)
            .map_err(|e| internal(&e))?
            .enumerate()
        {
            let (revision, bytes) = item.map_err(|e| internal(&e))?;
            let revision = revision.value();
            if seen == SWEEP_CHUNK {
                next_cursor = revision;
                break;
            }
            let entry = LogView::parse(revision, bytes.value())?;
            if entry.prev_revision != 0 {
                doomed.push(entry.prev_revision);
            }
            if entry.value.is_none() {
                doomed.push(revision);
            }
        }
        for revision in doomed {
            log.remove(revision).map_err(|e| internal(&e))?;
        }
        meta.insert(COMPACT_CURSOR, next_cursor)
            .map_err(|e| internal(&e))?;
        next_cursor < target
    };
    txn.commit().map_err(|e| internal(&e))?;
    Ok(more)
}
