//! The embedded store's single writer: group commit. Every write request is
//! sent to one thread, which takes all requests queued so far, checks and
//! applies each in order inside ONE redb transaction (each successful write
//! gets its own revision), commits with `Durability::Immediate` (one fsync
//! for the whole group), publishes the resulting watch events, and only then
//! answers each caller. Under concurrency this turns N fsyncs into one while
//! keeping every acknowledged write durable.
//!
//! Group commits skip redb's quick-repair record (the allocator state, saved
//! by a second fsync'd phase), which cost more than the writes themselves.
//! Once the writer has been idle for [`RECORD_AFTER_IDLE`], an empty commit
//! saves it, so a store killed while idle reopens at once; one killed under
//! load has redb walk the file to rebuild the allocator state (measured in
//! the README), and a clean shutdown needs neither.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use tokio::sync::{broadcast, oneshot};

use super::codec::{LiveRow, LogEntry, live_value};
use super::{CURRENT_REVISION, KEYS, LOG, META, internal};
use crate::storage::{KeyValue, StorageError, WatchEvent};

/// At most this many requests share one transaction, so one huge burst
/// cannot delay the first callers' answers indefinitely.
const MAX_GROUP: usize = 2048;

/// A conditional write.
#[derive(Debug)]
pub(super) enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: i64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
}

/// What a successful write answers.
#[derive(Debug)]
pub(super) enum Outcome {
    Written(i64),
    Deleted(KeyValue, i64),
}

pub(super) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Outcome, StorageError>>,
}

/// The events of one committed group, published after the commit.
#[derive(Debug)]
pub(super) struct Committed {
    /// The store revision after this group.
    pub revision: i64,
    pub events: Vec<WatchEvent>,
}

/// While requests keep arriving, wait this long for more before committing.
const GATHER_STEP: Duration = Duration::from_micros(25);
/// Never delay a commit by more than this.
const GATHER_MAX: Duration = Duration::from_micros(100);

/// Gathers a group while applying it. Writers behind an API server arrive
/// spread out (each request is decoded and validated first), so committing on
/// the first arrival would pay an fsync for a group of one while the rest
/// queue behind it; a short, adaptive wait lets one fsync serve them all. The
/// requests gathered so far are applied during that wait rather than after
/// it. An idle writer adds at most one step of latency.
///
/// The wait is short because every caller of the group waits it out, and
/// requests that miss a group are not lost: they queue during its commit and
/// start the next one. With 50 µs steps up to 200 µs (and the kernel's
/// default 50 µs timer slack on top of each step), 32 API clients got
/// 18,000–20,000 creates/s; with these steps 20,000–23,000, with the same
/// groups of raw writers (about 32 each) and the same raw rate of the stored
/// pods (`bench api`, README). The price is paid when the CPUs are saturated
/// by writers from many sources: smaller groups, more commits, and about 15%
/// more CPU per bound pod in `bench scheduler`.
struct Gather {
    started: Instant,
    /// The last step brought nothing: the next empty look ends the group.
    waited: bool,
}

impl Gather {
    fn new() -> Self {
        Gather {
            started: Instant::now(),
            waited: false,
        }
    }

    /// Takes what has arrived into `group`; false when the group is complete.
    fn more(&mut self, requests: &Receiver<Request>, group: &mut Vec<Request>) -> bool {
        if group.len() >= MAX_GROUP || self.started.elapsed() >= GATHER_MAX {
            return false;
        }
        let before = group.len();
        drain(requests, group);
        if group.len() > before {
            self.waited = false;
            return true;
        }
        if self.waited {
            return false;
        }
        std::thread::sleep(GATHER_STEP);
        drain(requests, group);
        // A step that brought nothing ends the group at the next empty look.
        self.waited = group.len() == before;
        true
    }
}

fn drain(requests: &Receiver<Request>, group: &mut Vec<Request>) {
    while group.len() < MAX_GROUP {
        match requests.try_recv() {
            Ok(request) => group.push(request),
            Err(_) => break,
        }
    }
}

/// The writer's nice value, below the request threads' 0.
const WRITER_NICE: i32 = -10;

/// Every write waits for this one thread. With the CPUs saturated it used
/// to wait for a CPU behind the very request threads whose writes it was
/// to commit, which made every commit late. Raising its priority needs
/// CAP_SYS_NICE (root has it); without it the writer runs as before.
fn raise_priority() {
    let thread = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(thread), WRITER_NICE) {
        Ok(()) => tracing::debug!(nice = WRITER_NICE, "embedded store: writer priority raised"),
        Err(error) => {
            tracing::debug!(%error, "embedded store: writer keeps the default priority");
        }
    }
}

/// The writer's timer slack: the kernel may end a sleep this much late.
const WRITER_TIMER_SLACK: NonZeroU64 = NonZeroU64::new(1_000).expect("not zero");

/// Makes a gather step last what it says: with the default slack of 50 µs a
/// 25 µs step could last three times as long.
fn precise_sleeps() {
    if let Err(error) = rustix::thread::set_current_timer_slack(Some(WRITER_TIMER_SLACK)) {
        tracing::debug!(%error, "embedded store: writer keeps the default timer slack");
    }
}

/// How long the writer waits, after its last group, before it saves the
/// quick-repair record.
pub(super) const RECORD_AFTER_IDLE: Duration = Duration::from_millis(200);

/// Runs until every sender of `requests` is gone.
pub(super) fn run(
    db: Arc<Database>,
    requests: Receiver<Request>,
    events: broadcast::Sender<Arc<Committed>>,
    current: Arc<AtomicI64>,
) {
    raise_priority();
    precise_sleeps();
    let mut revision = current.load(Ordering::Acquire);
    let mut group = Vec::new();
    // Whether a commit since the last quick-repair record left it out.
    let mut unrecorded = false;
    loop {
        let first = if unrecorded {
            match requests.recv_timeout(RECORD_AFTER_IDLE) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    unrecorded = !save_repair_record(&db);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match requests.recv() {
                Ok(request) => request,
                Err(_) => break,
            }
        };
        group.push(first);
        unrecorded = true;
        match apply_group(&db, revision, &requests, &mut group) {
            Ok((next, outcomes, committed)) => {
                revision = next;
                current.store(revision, Ordering::Release);
                if !committed.is_empty() {
                    // No receiver is not an error: nobody is watching.
                    let _ = events.send(Arc::new(Committed {
                        revision,
                        events: committed,
                    }));
                }
                for (request, outcome) in group.drain(..).zip(outcomes) {
                    // The caller may have given up waiting; its write stands.
                    let _ = request.reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, "embedded store: group commit failed");
                for request in group.drain(..) {
                    let _ = request.reply.send(Err(internal(&error)));
                }
            }
        }
    }
}

type GroupResult = (i64, Vec<Result<Outcome, StorageError>>, Vec<WatchEvent>);

/// Saves redb's quick-repair record in an empty commit, so that a crash
/// from here on reopens without walking the file. Returns whether it did.
fn save_repair_record(db: &Database) -> bool {
    let saved = (|| -> Result<(), redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(true);
        Ok(txn.commit()?)
    })();
    match saved {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "embedded store: saving the quick-repair record failed");
            false
        }
    }
}

/// Gathers and applies one group in one transaction, then commits it.
fn apply_group(
    db: &Database,
    revision: i64,
    requests: &Receiver<Request>,
    group: &mut Vec<Request>,
) -> Result<GroupResult, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let mut next = revision;
    let mut outcomes = Vec::with_capacity(group.len());
    let mut events = Vec::new();
    {
        let mut tables = Tables::open(&txn)?;
        let mut gather = Gather::new();
        loop {
            for request in &group[outcomes.len()..] {
                match tables.apply(&request.op, next + 1)? {
                    Ok((outcome, event)) => {
                        next += 1;
                        outcomes.push(Ok(outcome));
                        events.push(event);
                    }
                    Err(refused) => outcomes.push(Err(refused)),
                }
            }
            if !gather.more(requests, group) {
                break;
            }
        }
        if next != revision {
            tables.meta.insert(CURRENT_REVISION, next)?;
        }
    }
    txn.commit()?;
    Ok((next, outcomes, events))
}

struct Tables<'txn> {
    keys: Table<'txn, &'static str, LiveRow>,
    log: Table<'txn, i64, &'static [u8]>,
    meta: Table<'txn, &'static str, i64>,
}

/// A write's answer: the outer error aborts the group, the inner one refuses
/// only this request.
type Applied = Result<Result<(Outcome, WatchEvent), StorageError>, redb::Error>;

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Tables {
            keys: txn.open_table(KEYS)?,
            log: txn.open_table(LOG)?,
            meta: txn.open_table(META)?,
        })
    }

    fn current(&self, key: &str) -> Result<Option<KeyValue>, redb::Error> {
        let Some(row) = self.keys.get(key)?.map(|row| row.value()) else {
            return Ok(None);
        };
        let entry = self.log.get(row.1)?;
        live_value(key, row, entry.as_ref().map(|entry| entry.value()))
            .map(Some)
            .map_err(|e| redb::Error::Corrupted(e.to_string()))
    }

    fn apply(&mut self, op: &Op, revision: i64) -> Applied {
        match op {
            Op::Create { key, value } => {
                if self.keys.get(key.as_str())?.is_some() {
                    return Ok(Err(StorageError::AlreadyExists { key: key.clone() }));
                }
                let kv = self.put(key, value, revision, revision, 0)?;
                Ok(Ok((
                    Outcome::Written(revision),
                    WatchEvent::Put { kv, prev: None },
                )))
            }
            Op::Update {
                key,
                value,
                expected,
            } => {
                let Some(prev) = self.current(key)? else {
                    return Ok(Err(StorageError::NotFound { key: key.clone() }));
                };
                if prev.mod_revision != *expected {
                    return Ok(Err(StorageError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: Some(prev),
                    }));
                }
                let kv = self.put(
                    key,
                    value,
                    prev.create_revision,
                    revision,
                    prev.mod_revision,
                )?;
                let event = WatchEvent::Put {
                    kv,
                    prev: Some(prev),
                };
                Ok(Ok((Outcome::Written(revision), event)))
            }
            Op::Delete { key, expected } => {
                let Some(prev) = self.current(key)? else {
                    return Ok(Err(StorageError::NotFound { key: key.clone() }));
                };
                if let Some(expected) = expected
                    && prev.mod_revision != *expected
                {
                    return Ok(Err(StorageError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: Some(prev),
                    }));
                }
                let tombstone = LogEntry {
                    key: key.clone(),
                    value: None,
                    create_revision: prev.create_revision,
                    prev_revision: prev.mod_revision,
                };
                self.log.insert(revision, tombstone.encode().as_slice())?;
                self.keys.remove(key.as_str())?;
                let event = WatchEvent::Delete {
                    prev: prev.clone(),
                    revision,
                };
                Ok(Ok((Outcome::Deleted(prev, revision), event)))
            }
        }
    }

    fn put(
        &mut self,
        key: &str,
        value: &Bytes,
        create_revision: i64,
        revision: i64,
        prev_revision: i64,
    ) -> Result<KeyValue, redb::Error> {
        let entry = LogEntry {
            key: key.to_owned(),
            value: Some(value.clone()),
            create_revision,
            prev_revision,
        };
        self.log.insert(revision, entry.encode().as_slice())?;
        self.keys.insert(key, (create_revision, revision))?;
        Ok(KeyValue {
            key: key.to_owned(),
            value: value.clone(),
            create_revision,
            mod_revision: revision,
        })
    }
}
