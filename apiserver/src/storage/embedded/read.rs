//! Reads of the embedded store, each inside one redb read transaction (an
//! MVCC snapshot): `get`, `list` at the latest or an older revision, and the
//! log reads that watches replay.

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase};

use super::codec::{LiveRow, LogEntry, LogView, live_value};
use super::{COMPACT_REVISION, CURRENT_REVISION, KEYS, LOG, META, internal};
use crate::storage::{KeyValue, ListResult, StorageError, WatchEvent};

pub(super) fn get(db: &Database, key: &str) -> Result<Option<KeyValue>, StorageError> {
    let txn = db.begin_read().map_err(|e| internal(&e))?;
    let keys = txn.open_table(KEYS).map_err(|e| internal(&e))?;
    let Some(row) = keys.get(key).map_err(|e| internal(&e))? else {
        return Ok(None);
    };
    let log = txn.open_table(LOG).map_err(|e| internal(&e))?;
    read_live(&log, key, row.value()).map(Some)
}

/// A live key's value, from the log entry its row points at.
fn read_live(
    log: &ReadOnlyTable<i64, &'static [u8]>,
    key: &str,
    row: LiveRow,
) -> Result<KeyValue, StorageError> {
    let entry = log.get(row.1).map_err(|e| internal(&e))?;
    live_value(key, row, entry.as_ref().map(|entry| entry.value()))
}

/// The current and compacted revision as of this snapshot.
pub(super) fn revisions(txn: &ReadTransaction) -> Result<(i64, i64), StorageError> {
    let meta = txn.open_table(META).map_err(|e| internal(&e))?;
    let read = |name| -> Result<i64, StorageError> {
        Ok(meta
            .get(name)
            .map_err(|e| internal(&e))?
            .map_or(0, |r| r.value()))
    };
    Ok((read(CURRENT_REVISION)?, read(COMPACT_REVISION)?))
}

pub(super) fn list(
    db: &Database,
    prefix: &str,
    start_after: Option<&str>,
    limit: usize,
    revision: Option<i64>,
) -> Result<ListResult, StorageError> {
    let txn = db.begin_read().map_err(|e| internal(&e))?;
    let (current, compacted) = revisions(&txn)?;
    let keys = txn.open_table(KEYS).map_err(|e| internal(&e))?;
    let log = txn.open_table(LOG).map_err(|e| internal(&e))?;
    let limit = if limit == 0 { usize::MAX } else { limit };
    let at = match revision {
        Some(r) if r > current => {
            return Err(StorageError::FutureRevision {
                requested: r,
                current,
            });
        }
        Some(r) if r < compacted => {
            return Err(StorageError::Compacted {
                requested: r,
                compacted,
            });
        }
        Some(r) if r < current => r,
        _ => {
            let kvs = current_rows(&keys, &log, prefix, start_after)?
                .take(limit)
                .collect::<Result<_, _>>()?;
            return Ok(ListResult {
                kvs,
                revision: current,
            });
        }
    };
    let changed = changed_since(&log, prefix, start_after, at)?;
    // Keys untouched since `at` read from the current table; every other key
    // under the prefix has a log entry after `at` and its state at `at` is in
    // `changed`. Both iterate in key order, so a merge keeps the paging cheap.
    let mut unchanged = current_rows(&keys, &log, prefix, start_after)?
        .filter(|row| !matches!(row, Ok(kv) if changed.contains_key(&kv.key)))
        .peekable();
    let mut historic = changed.values().flatten().cloned().peekable();
    let mut kvs = Vec::new();
    while kvs.len() < limit {
        let take_historic = match (unchanged.peek(), historic.peek()) {
            (None, None) => break,
            (Some(Ok(a)), Some(b)) => b.key < a.key,
            (None, Some(_)) => true,
            (Some(_), _) => false,
        };
        let next = if take_historic {
            historic.next().map(Ok)
        } else {
            unchanged.next()
        };
        match next {
            Some(kv) => kvs.push(kv?),
            None => break,
        }
    }
    Ok(ListResult { kvs, revision: at })
}

/// The live keys under `prefix`, strictly after `start_after`, with their
/// values.
fn current_rows<'t>(
    keys: &'t ReadOnlyTable<&'static str, LiveRow>,
    log: &'t ReadOnlyTable<i64, &'static [u8]>,
    prefix: &'t str,
    start_after: Option<&'t str>,
) -> Result<impl Iterator<Item = Result<KeyValue, StorageError>> + 't, StorageError> {
    let lower = match start_after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    };
    let range = keys
        .range::<&str>((lower, Bound::Unbounded))
        .map_err(|e| internal(&e))?;
    Ok(range
        .map(|item| item.map_err(|e| internal(&e)))
        .take_while(move |item| !matches!(item, Ok((key, _)) if !key.value().starts_with(prefix)))
        .map(|item| {
            let (key, row) = item?;
            read_live(log, key.value(), row.value())
        }))
}

/// For every key under `prefix` (after `start_after`) written after revision
/// `at`, its value as of `at` (`None` if it did not exist then).
fn changed_since(
    log: &ReadOnlyTable<i64, &'static [u8]>,
    prefix: &str,
    start_after: Option<&str>,
    at: i64,
) -> Result<BTreeMap<String, Option<KeyValue>>, StorageError> {
    let mut changed = BTreeMap::new();
    for item in log.range(at + 1..).map_err(|e| internal(&e))? {
        let (revision, bytes) = item.map_err(|e| internal(&e))?;
        let entry = LogView::parse(revision.value(), bytes.value())?;
        if !entry.key.starts_with(prefix)
            || start_after.is_some_and(|after| entry.key <= after)
            || changed.contains_key(entry.key)
        {
            continue;
        }
        // The first entry after `at` points at the key's last entry at or
        // before `at`; a missing one was a compacted tombstone.
        let before = match entry.prev_revision {
            0 => None,
            prev => read_entry(log, prev)?.and_then(|e| e.key_value(prev)),
        };
        changed.insert(entry.key.to_owned(), before);
    }
    Ok(changed)
}

fn read_entry(
    log: &ReadOnlyTable<i64, &'static [u8]>,
    revision: i64,
) -> Result<Option<LogEntry>, StorageError> {
    match log.get(revision).map_err(|e| internal(&e))? {
        Some(bytes) => LogEntry::decode(revision, bytes.value()).map(Some),
        None => Ok(None),
    }
}

/// Watch events replayed from the log.
pub(super) struct LogChunk {
    pub events: Vec<WatchEvent>,
    /// Every matching event up to this revision is in `events`.
    pub scanned_to: i64,
    /// True when the chunk reached the snapshot's current revision.
    pub exhausted: bool,
}

/// Reads at most `max_entries` log entries after `after` and turns those
/// under `prefix` into watch events.
pub(super) fn log_chunk(
    db: &Database,
    prefix: &str,
    after: i64,
    max_entries: usize,
) -> Result<LogChunk, StorageError> {
    let txn = db.begin_read().map_err(|e| internal(&e))?;
    let (current, compacted) = revisions(&txn)?;
    // As etcd: a watch may start at the compacted revision itself.
    if after + 1 < compacted {
        return Err(StorageError::Compacted {
            requested: after + 1,
            compacted,
        });
    }
    let log = txn.open_table(LOG).map_err(|e| internal(&e))?;
    let mut events = Vec::new();
    let mut scanned_to = after;
    let entries = log.range(after + 1..).map_err(|e| internal(&e))?;
    for (scanned, item) in entries.enumerate() {
        if scanned == max_entries {
            return Ok(LogChunk {
                events,
                scanned_to,
                exhausted: false,
            });
        }
        let (revision, bytes) = item.map_err(|e| internal(&e))?;
        let revision = revision.value();
        scanned_to = revision;
        let entry = LogView::parse(revision, bytes.value())?;
        if entry.key.starts_with(prefix) {
            events.push(event(&log, revision, entry.to_entry())?);
        }
    }
    Ok(LogChunk {
        events,
        scanned_to: after.max(current),
        exhausted: true,
    })
}

fn event(
    log: &ReadOnlyTable<i64, &'static [u8]>,
    revision: i64,
    entry: LogEntry,
) -> Result<WatchEvent, StorageError> {
    let prev = match entry.prev_revision {
        0 => None,
        prev => read_entry(log, prev)?.and_then(|e| e.key_value(prev)),
    };
    match entry.key_value(revision) {
        Some(kv) => Ok(WatchEvent::Put { kv, prev }),
        None => {
            let prev = prev.ok_or_else(|| {
                StorageError::Internal(format!(
                    "log entry {} of the value deleted at {revision} is missing",
                    entry.prev_revision
                ))
            })?;
            Ok(WatchEvent::Delete { prev, revision })
        }
    }
}
