//! Storage: the one trait the API server persists through, and its two
//! backends — etcd ([`EtcdStore`]) and the embedded on-disk MVCC store
//! ([`EmbeddedStore`]). Both give the same semantics, which the
//! `conformance` suite checks against each:
//!
//! - one global, strictly increasing revision; every write gets the next one,
//!   and an object's `resourceVersion` is its key's `mod_revision`;
//! - create succeeds only if the key is absent; update and delete can be made
//!   conditional on the key's current `mod_revision`;
//! - watch from any retained revision delivers every later change under a
//!   prefix, in revision order, exactly once; a revision that has been
//!   compacted away answers [`StorageError::Compacted`];
//! - an acknowledged write is durable.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

mod compactor;
#[cfg(test)]
mod conformance;
pub(crate) mod embedded;
pub(crate) mod etcd;
mod etcd_testing;

pub use compactor::spawn_compactor;
pub use embedded::EmbeddedStore;
pub use etcd::EtcdStore;
pub use etcd_testing::{EtcdProcess, EtcdProcessError};

/// One key's value at a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created the key (its current incarnation).
    pub create_revision: i64,
    /// Revision of the last write to the key: the object's resourceVersion.
    pub mod_revision: i64,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created (`kv.create_revision == kv.mod_revision`) or
    /// updated; `prev` is the value before, if it existed.
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// The key was deleted at `revision`; `prev` is its last value.
    Delete { prev: KeyValue, revision: i64 },
    /// Nothing changed under the prefix up to `revision`: lets watchers
    /// advance their resourceVersion (etcd progress notifications).
    Progress { revision: i64 },
}

impl WatchEvent {
    pub fn revision(&self) -> i64 {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
            WatchEvent::Progress { revision } => *revision,
        }
    }
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StorageError>> + Send>>;

/// The result of a list: the values and the revision they were read at.
#[derive(Debug, Clone, Default)]
pub struct ListResult {
    pub kvs: Vec<KeyValue>,
    /// The store revision the list is consistent with.
    pub revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    /// A conditional write lost: the key's revision is no longer `expected`.
    /// `current` is the key's value now (None if it was deleted).
    #[error("key {key}: expected revision {expected}, found another")]
    Conflict {
        key: String,
        expected: i64,
        current: Option<KeyValue>,
    },
    /// The revision asked for has been compacted away (HTTP 410 Gone).
    #[error("required revision {requested} has been compacted; oldest available is {compacted}")]
    Compacted { requested: i64, compacted: i64 },
    /// The revision asked for is newer than the store has (a "Too large
    /// resource version" error in Kubernetes).
    #[error("revision {requested} is in the future; current revision is {current}")]
    FutureRevision { requested: i64, current: i64 },
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    #[error("storage backend error: {0}")]
    Internal(String),
}

/// The persistence interface of the API server. Keys are full paths such as
/// `/registry/pods/default/web-0`; values are opaque bytes (JSON objects).
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Current value of one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError>;

    /// All keys under `prefix`, in key order, starting strictly after
    /// `start_after` when given (for paging), at most `limit` (0 = no limit).
    /// With `revision: Some(r)`, reads the state as of revision `r` (which
    /// may answer `Compacted` or `FutureRevision`); `None` reads the latest.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<ListResult, StorageError>;

    /// Creates `key` if it does not exist; returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<i64, StorageError>;

    /// Replaces `key`'s value if its mod_revision is `expected`; returns the
    /// new revision. `NotFound` if the key is absent, `Conflict` if changed.
    async fn update(&self, key: &str, value: Bytes, expected: i64) -> Result<i64, StorageError>;

    /// Deletes `key`, if `expected` is given only when its mod_revision is
    /// that. Returns the deleted value and the revision of the delete.
    async fn delete(
        &self,
        key: &str,
        expected: Option<i64>,
    ) -> Result<(KeyValue, i64), StorageError>;

    /// Streams every change under `prefix` with revision > `after_revision`.
    /// `Compacted` (as the first item or the call's error) if that history is
    /// gone. The stream may also yield `Progress` events.
    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream, StorageError>;

    /// The latest revision of the whole store.
    async fn current_revision(&self) -> Result<i64, StorageError>;

    /// Whether watch events carry the very `Bytes` a write was given (an
    /// in-process store), so that a writer may tell the watch cache what
    /// those bytes hold instead of having them decoded.
    fn watchers_get_written_buffers(&self) -> bool {
        false
    }

    /// Discards history older than `revision`: watches and lists from
    /// earlier revisions then answer `Compacted`.
    async fn compact(&self, revision: i64) -> Result<(), StorageError>;
}
