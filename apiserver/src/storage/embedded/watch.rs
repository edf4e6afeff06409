//! Watches on the embedded store. A watcher subscribes to the writer's
//! broadcast of committed groups BEFORE it reads the log, replays the log
//! after its start revision, then forwards live groups, skipping what the
//! replay already delivered (so nothing committed between the two is missed
//! or repeated). A watcher that falls behind the broadcast re-reads the log
//! from its last delivered revision instead of dropping events, and a slow
//! consumer only slows its own watcher.

use std::sync::Arc;
use std::time::Duration;

use redb::Database;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::read::{self, LogChunk};
use super::writer::Committed;
use crate::storage::{StorageError, WatchEvent, WatchStream};

/// Log entries replayed per blocking read.
const REPLAY_CHUNK: usize = 1024;
/// Events buffered between the watcher task and its consumer.
const STREAM_BUFFER: usize = 256;
/// An idle watcher reports the store's progress this often, like etcd's
/// progress notifications, so a client can advance its resourceVersion.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

pub(super) async fn start(
    db: Arc<Database>,
    events: &broadcast::Sender<Arc<Committed>>,
    prefix: String,
    after: i64,
) -> Result<WatchStream, StorageError> {
    let live = events.subscribe();
    let watcher = Watcher {
        db,
        prefix,
        last: after,
        reported: after,
    };
    // The first chunk is read here so a compacted start is the call's error.
    let first = watcher.read_chunk().await?;
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(watcher.run(first, live, tx));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

type Sink = mpsc::Sender<Result<WatchEvent, StorageError>>;

struct Watcher {
    db: Arc<Database>,
    prefix: String,
    /// Every matching event up to here has been delivered.
    last: i64,
    /// The revision of the last event or progress notification sent.
    reported: i64,
}

/// The consumer went away.
struct Closed;

impl Watcher {
    async fn run(
        mut self,
        first: LogChunk,
        mut live: broadcast::Receiver<Arc<Committed>>,
        tx: Sink,
    ) {
        let _ = self.follow(first, &mut live, &tx).await;
    }

    async fn follow(
        &mut self,
        first: LogChunk,
        live: &mut broadcast::Receiver<Arc<Committed>>,
        tx: &Sink,
    ) -> Result<(), Closed> {
        if !self.deliver(first, tx).await? {
            self.catch_up(tx).await?;
        }
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        progress.reset();
        loop {
            tokio::select! {
                () = tx.closed() => return Err(Closed),
                received = live.recv() => match received {
                    Ok(group) => self.forward(&group, tx).await?,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up(tx).await?,
                    // The store was dropped.
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = progress.tick() => {
                    if self.last > self.reported {
                        self.reported = self.last;
                        send(tx, Ok(WatchEvent::Progress { revision: self.last })).await?;
                    }
                }
            }
        }
    }

    async fn read_chunk(&self) -> Result<LogChunk, StorageError> {
        let (db, prefix, after) = (self.db.clone(), self.prefix.clone(), self.last);
        tokio::task::spawn_blocking(move || read::log_chunk(&db, &prefix, after, REPLAY_CHUNK))
            .await
            .map_err(|e| StorageError::Internal(format!("embedded store: {e}")))?
    }

    /// Replays the log from `last` up to the current revision.
    async fn catch_up(&mut self, tx: &Sink) -> Result<(), Closed> {
        loop {
            match self.read_chunk().await {
                Ok(chunk) => {
                    if self.deliver(chunk, tx).await? {
                        return Ok(());
                    }
                }
                Err(error) => {
                    send(tx, Err(error)).await?;
                    return Err(Closed);
                }
            }
        }
    }

    /// Sends a replayed chunk; returns whether it reached the current revision.
    async fn deliver(&mut self, chunk: LogChunk, tx: &Sink) -> Result<bool, Closed> {
        for event in chunk.events {
            self.reported = event.revision();
            send(tx, Ok(event)).await?;
        }
        self.last = self.last.max(chunk.scanned_to);
        Ok(chunk.exhausted)
    }

    async fn forward(&mut self, group: &Committed, tx: &Sink) -> Result<(), Closed> {
        for event in &group.events {
            if event.revision() > self.last && key(event).starts_with(&self.prefix) {
                self.reported = event.revision();
                send(tx, Ok(event.clone())).await?;
            }
        }
        self.last = self.last.max(group.revision);
        Ok(())
    }
}

fn key(event: &WatchEvent) -> &str {
    match event {
        WatchEvent::Put { kv, .. } => &kv.key,
        WatchEvent::Delete { prev, .. } => &prev.key,
        WatchEvent::Progress { .. } => "",
    }
}

async fn send(tx: &Sink, item: Result<WatchEvent, StorageError>) -> Result<(), Closed> {
    tx.send(item).await.map_err(|_| Closed)
}
