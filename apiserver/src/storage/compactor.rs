//! Periodic compaction of the store's history, as kube-apiserver does with
//! `--etcd-compaction-interval` (default 5 minutes): at each tick it compacts
//! to the revision it saw at the PREVIOUS tick, so every watcher and paged
//! list has at least one full interval of history to resume from.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{Storage, StorageError};

/// Compacts `storage` every `interval`, to the revision seen one interval
/// earlier. Works on any backend; errors are logged and retried next tick.
pub fn spawn_compactor(storage: Arc<dyn Storage>, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut compactor = Compactor::default();
        loop {
            ticker.tick().await;
            let current = match storage.current_revision().await {
                Ok(current) => current,
                Err(error) => {
                    tracing::warn!(%error, "compactor: reading the current revision");
                    continue;
                }
            };
            if let Some(revision) = compactor.tick(current) {
                match storage.compact(revision).await {
                    Ok(()) => tracing::debug!(revision, "compactor: compacted"),
                    // Another API server compacted further already.
                    Err(StorageError::Compacted { .. }) => {}
                    Err(error) => tracing::warn!(%error, revision, "compactor: compacting"),
                }
            }
        }
    })
}

/// The compactor's memory between ticks.
#[derive(Debug, Default)]
struct Compactor {
    /// The revision seen at the previous tick.
    previous: Option<i64>,
}

impl Compactor {
    /// Given the revision now, the revision to compact to (if any).
    fn tick(&mut self, current: i64) -> Option<i64> {
        let target = self.previous.filter(|&previous| previous > 0);
        self.previous = Some(current);
        target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tick_compacts_to_the_revision_seen_one_tick_earlier() {
        let mut compactor = Compactor::default();
        // (revision now, expected compaction target)
        let ticks = [
            (0, None),
            (5, None),
            (9, Some(5)),
            (9, Some(9)),
            (20, Some(9)),
        ];
        for (current, expected) in ticks {
            assert_eq!(compactor.tick(current), expected, "at revision {current}");
        }
    }
}
