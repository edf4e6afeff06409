//! The storage conformance suite: every case is written once against
//! `Arc<dyn Storage>` and instantiated for both backends — the embedded store
//! in a temporary directory, and a real etcd (`/usr/bin/etcd`) started per
//! test. A backend passes only if it gives exactly the semantics the
//! [`Storage`] trait documents.

mod basic;
mod concurrency;
mod history;
mod model;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::{
    EmbeddedStore, EtcdProcess, EtcdStore, Storage, StorageError, WatchEvent, WatchStream,
};

/// A backend under test and what keeps it alive.
pub(super) struct Backend {
    pub storage: Arc<dyn Storage>,
    _dir: Option<tempfile::TempDir>,
    _etcd: Option<EtcdProcess>,
}

impl Backend {
    pub fn embedded() -> Backend {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = EmbeddedStore::open(dir.path()).expect("embedded store opens");
        Backend {
            storage: Arc::new(store),
            _dir: Some(dir),
            _etcd: None,
        }
    }

    pub async fn etcd() -> Backend {
        let process = EtcdProcess::start().expect("etcd starts");
        let store = EtcdStore::connect(std::slice::from_ref(&process.endpoint))
            .await
            .expect("etcd store connects");
        Backend {
            storage: Arc::new(store),
            _dir: None,
            _etcd: Some(process),
        }
    }
}

/// Instantiates each case once per backend, as `on_embedded::case` and
/// `on_etcd::case`.
macro_rules! conformance_suite {
    ($($case:ident),* $(,)?) => {
        mod on_embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::embedded();
                    super::$case(backend.storage.clone()).await;
                }
            )*
        }
        mod on_etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::etcd().await;
                    super::$case(backend.storage.clone()).await;
                }
            )*
        }
    };
}

use basic::*;
use concurrency::*;
use history::*;
use model::*;

conformance_suite!(
    create_then_get_returns_the_value_and_a_second_create_fails,
    update_with_a_stale_revision_conflicts_and_carries_the_current_value,
    delete_is_conditional_on_the_revision,
    list_pages_in_key_order_without_leaking_sibling_prefixes,
    a_list_larger_than_a_grpc_message_is_answered_whole,
    revisions_increase_strictly_across_keys,
    list_at_an_old_revision_sees_the_state_of_then,
    watch_from_a_past_revision_replays_then_streams_live,
    live_watch_sees_every_concurrent_write_once_in_order,
    watch_and_list_before_the_compacted_revision_answer_compacted,
    compaction_keeps_the_state_at_the_compacted_revision,
    compactor_compacts_to_the_revision_of_the_previous_tick,
    racing_updates_on_one_key_have_exactly_one_winner_per_round,
    thirty_two_concurrent_writers_get_distinct_revisions,
    random_histories_match_the_model,
);

pub(super) fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next change on `stream`, skipping progress notifications.
pub(super) async fn next_change(stream: &mut WatchStream) -> WatchEvent {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a watch event within 10s")
            .expect("the watch stream stays open");
        match item.expect("a watch event, not an error") {
            WatchEvent::Progress { .. } => continue,
            event => return event,
        }
    }
}

/// Asserts that watching after `after` is refused as compacted, either by
/// the call itself or as the stream's first item (etcd reports it so).
pub(super) async fn assert_watch_compacted(storage: &dyn Storage, prefix: &str, after: i64) {
    let error = match storage.watch(prefix, after).await {
        Err(error) => error,
        Ok(mut stream) => {
            let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("an answer within 10s");
            match item {
                Some(Err(error)) => error,
                other => panic!("watch after {after} should be compacted, got {other:?}"),
            }
        }
    };
    assert!(
        matches!(error, StorageError::Compacted { .. }),
        "watch after {after}: {error:?}"
    );
}
