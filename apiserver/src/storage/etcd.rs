//! The etcd backend, through `etcd-client`. The conditional writes are the
//! transactions kube-apiserver's etcd3 store issues
//! (`staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go`): create is
//! "if create_revision == 0 then put", update and delete are "if
//! mod_revision == expected then write else get", the else branch giving the
//! current value for the conflict.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, KvClient, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use futures::StreamExt;

use super::{KeyValue, ListResult, Storage, StorageError, WatchEvent, WatchStream};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const COMPACTED: &str = "required revision has been compacted";
const FUTURE: &str = "required revision is a future revision";
/// gRPC status codes CANCELLED (1), DEADLINE_EXCEEDED (4) and UNAVAILABLE
/// (14), fixed by the gRPC spec: the cluster is unreachable or leaderless.
const RETRYABLE_GRPC_CODES: [i32; 3] = [1, 4, 14];
/// The largest answer taken from etcd: its Go client's `math.MaxInt32`.
const MAX_ANSWER: usize = i32::MAX as usize;

/// A client of an etcd cluster. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// The highest compacted revision this process has heard of; etcd's
    /// "compacted" error on a range does not say which it is.
    compacted: Arc<AtomicI64>,
}

impl EtcdStore {
    /// Connects to `endpoints` and checks that the cluster answers.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore, StorageError> {
        let options = ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(unavailable)?;
        let store = EtcdStore {
            client,
            compacted: Arc::new(AtomicI64::new(0)),
        };
        tokio::time::timeout(CONNECT_TIMEOUT, store.current_revision())
            .await
            .map_err(|_| {
                StorageError::Unavailable(format!("etcd at {endpoints:?} did not answer"))
            })??;
        Ok(store)
    }

    /// The KV client, accepting answers up to 2 GiB as etcd's Go client
    /// does (gRPC's default is 4 MiB: 10,000 stored pods are 30 MB).
    fn kv(&self) -> KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_ANSWER)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StorageError> {
        self.kv().txn(txn).await.map_err(other)
    }

    fn compacted_error(&self, requested: i64) -> StorageError {
        StorageError::Compacted {
            requested,
            compacted: self.compacted.load(Ordering::Relaxed),
        }
    }

    async fn future_error(&self, requested: i64) -> StorageError {
        match self.current_revision().await {
            Ok(current) => StorageError::FutureRevision { requested, current },
            Err(error) => error,
        }
    }
}

fn unavailable(error: etcd_client::Error) -> StorageError {
    StorageError::Unavailable(error.to_string())
}

/// Transport failures and an unreachable cluster are `Unavailable`, so
/// callers can answer 503 or retry; the rest is `Internal`.
fn other(error: etcd_client::Error) -> StorageError {
    use etcd_client::Error as E;
    match &error {
        E::TransportError(_) | E::IoError(_) | E::EndpointError(_) => unavailable(error),
        E::GRpcStatus(status) if RETRYABLE_GRPC_CODES.contains(&(status.code() as i32)) => {
            unavailable(error)
        }
        _ => StorageError::Internal(format!("etcd: {error}")),
    }
}

fn message_contains(error: &etcd_client::Error, needle: &str) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status) if status.message().contains(needle))
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue, StorageError> {
    Ok(KeyValue {
        key: kv
            .key_str()
            .map_err(|e| StorageError::Internal(format!("etcd key is not UTF-8: {e}")))?
            .to_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

fn revision(response: &TxnResponse) -> Result<i64, StorageError> {
    response
        .header()
        .map(|h| h.revision())
        .ok_or_else(|| StorageError::Internal("etcd response without a header".into()))
}

/// The value a failed transaction's `else` get read.
fn else_value(response: &TxnResponse) -> Result<Option<KeyValue>, StorageError> {
    for op in response.op_responses() {
        if let TxnOpResponse::Get(get) = op {
            return get.kvs().first().map(key_value).transpose();
        }
    }
    Ok(None)
}

/// The first key of the range under `prefix`: etcd refuses an empty key,
/// and "\0" is the smallest key there is.
fn range_start(prefix: &str) -> Vec<u8> {
    if prefix.is_empty() {
        vec![0]
    } else {
        prefix.as_bytes().to_vec()
    }
}

/// The end of the key range holding every key that starts with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // An empty (or all-0xff) prefix: every key, etcd's "\0" range end.
    vec![0]
}

#[async_trait]
impl Storage for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StorageError> {
        let response = self.kv().get(key, None).await.map_err(other)?;
        response.kvs().first().map(key_value).transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<ListResult, StorageError> {
        let start = match start_after {
            // The smallest key after `after` is `after` followed by NUL.
            Some(after) if after >= prefix => format!("{after}\0").into_bytes(),
            _ => range_start(prefix),
        };
        let mut options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        if let Some(revision) = revision {
            options = options.with_revision(revision);
        }
        let response = match self.kv().get(start, Some(options)).await {
            Ok(response) => response,
            Err(e) if message_contains(&e, COMPACTED) => {
                return Err(self.compacted_error(revision.unwrap_or(0)));
            }
            Err(e) if message_contains(&e, FUTURE) => {
                return Err(self.future_error(revision.unwrap_or(0)).await);
            }
            Err(e) => return Err(other(e)),
        };
        let kvs = response
            .kvs()
            .iter()
            .map(key_value)
            .collect::<Result<_, _>>()?;
        let header_revision = response.header().map_or(0, |h| h.revision());
        Ok(ListResult {
            kvs,
            // As kube-apiserver: a list at a revision is consistent with it.
            revision: revision.unwrap_or(header_revision),
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<i64, StorageError> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return Err(StorageError::AlreadyExists {
                key: key.to_owned(),
            });
        }
        revision(&response)
    }

    async fn update(&self, key: &str, value: Bytes, expected: i64) -> Result<i64, StorageError> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value.to_vec(), None)])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(txn).await?;
        if response.succeeded() {
            return revision(&response);
        }
        match else_value(&response)? {
            None => Err(StorageError::NotFound {
                key: key.to_owned(),
            }),
            current => Err(StorageError::Conflict {
                key: key.to_owned(),
                expected,
                current,
            }),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<i64>,
    ) -> Result<(KeyValue, i64), StorageError> {
        let compare = match expected {
            Some(expected) => Compare::mod_revision(key, CompareOp::Equal, expected),
            None => Compare::create_revision(key, CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let response = self.txn(txn).await?;
        if !response.succeeded() {
            return match (else_value(&response)?, expected) {
                (Some(current), Some(expected)) => Err(StorageError::Conflict {
                    key: key.to_owned(),
                    expected,
                    current: Some(current),
                }),
                _ => Err(StorageError::NotFound {
                    key: key.to_owned(),
                }),
            };
        }
        let deleted = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(delete) => delete.prev_kvs().first().cloned(),
            _ => None,
        });
        match deleted {
            Some(prev) => Ok((key_value(&prev)?, revision(&response)?)),
            None => Err(StorageError::NotFound {
                key: key.to_owned(),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream, StorageError> {
        let options = WatchOptions::new()
            .with_range(prefix_end(prefix))
            .with_start_revision(after_revision + 1)
            .with_prev_key()
            .with_progress_notify();
        let mut stream = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_ANSWER)
            .watch(range_start(prefix), Some(options))
            .await
            .map_err(other)?;
        // The first response confirms the watch; a compacted start revision
        // follows as a cancel, which the stream reports as its first item.
        let first = tokio::time::timeout(CONNECT_TIMEOUT, stream.message())
            .await
            .map_err(|_| StorageError::Unavailable("etcd did not confirm the watch".into()))?;
        match first.map_err(other)? {
            Some(response) if response.created() && !response.canceled() => {}
            Some(response) if response.compact_revision() > 0 => {
                return Err(self.note_compacted(after_revision + 1, response.compact_revision()));
            }
            _ => return Err(StorageError::Unavailable("etcd refused the watch".into())),
        }
        let store = self.clone();
        let state = (stream, VecDeque::new(), false);
        let events = futures::stream::unfold(state, move |(mut stream, mut queue, mut done)| {
            let store = store.clone();
            async move {
                loop {
                    if let Some(item) = queue.pop_front() {
                        return Some((item, (stream, queue, done)));
                    }
                    if done {
                        return None;
                    }
                    match stream.message().await {
                        Ok(Some(response)) => {
                            let (items, last) = store.translate(&response, after_revision);
                            queue.extend(items);
                            done = last;
                        }
                        Ok(None) => return None,
                        Err(error) => {
                            return Some((Err(other(error)), (stream, queue, true)));
                        }
                    }
                }
            }
        });
        Ok(events.boxed())
    }

    async fn current_revision(&self) -> Result<i64, StorageError> {
        let options = GetOptions::new().with_count_only();
        let response = self.kv().get("/", Some(options)).await.map_err(other)?;
        response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| StorageError::Internal("etcd response without a header".into()))
    }

    async fn compact(&self, revision: i64) -> Result<(), StorageError> {
        // Physical: return once the history is gone, so what follows sees it.
        let options = CompactionOptions::new().with_physical();
        match self.kv().compact(revision, Some(options)).await {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::Relaxed);
                Ok(())
            }
            // Compacting to an already compacted revision leaves it as asked.
            Err(e) if message_contains(&e, COMPACTED) => Ok(()),
            Err(e) if message_contains(&e, FUTURE) => Err(self.future_error(revision).await),
            Err(e) => Err(other(e)),
        }
    }
}

impl EtcdStore {
    fn note_compacted(&self, requested: i64, compacted: i64) -> StorageError {
        self.compacted.fetch_max(compacted, Ordering::Relaxed);
        StorageError::Compacted {
            requested,
            compacted,
        }
    }

    /// Turns one etcd watch response into our events; the flag says the
    /// watch has ended.
    fn translate(
        &self,
        response: &etcd_client::WatchResponse,
        after_revision: i64,
    ) -> (Vec<Result<WatchEvent, StorageError>>, bool) {
        if response.canceled() {
            let error = if response.compact_revision() > 0 {
                self.note_compacted(after_revision + 1, response.compact_revision())
            } else {
                StorageError::Unavailable(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason()
                ))
            };
            return (vec![Err(error)], true);
        }
        if response.events().is_empty() {
            let revision = response.header().map_or(0, |h| h.revision());
            return (vec![Ok(WatchEvent::Progress { revision })], false);
        }
        let items = response.events().iter().map(watch_event).collect();
        (items, false)
    }
}

fn watch_event(event: &etcd_client::Event) -> Result<WatchEvent, StorageError> {
    let kv = event
        .kv()
        .ok_or_else(|| StorageError::Internal("etcd watch event without a key".into()))?;
    let prev = event.prev_kv().map(key_value).transpose()?;
    match event.event_type() {
        EventType::Put => Ok(WatchEvent::Put {
            kv: key_value(kv)?,
            prev,
        }),
        EventType::Delete => {
            let revision = kv.mod_revision();
            // etcd omits prev_kv when that revision was compacted meanwhile:
            // keep the key so the watcher still learns what went.
            let prev = match prev {
                Some(prev) => prev,
                None => KeyValue {
                    key: key_value(kv)?.key,
                    value: Bytes::new(),
                    create_revision: 0,
                    mod_revision: 0,
                },
            };
            Ok(WatchEvent::Delete { prev, revision })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_first_key_after_every_key_with_the_prefix() {
        let cases: [(&str, &[u8]); 4] = [
            ("/registry/pods/", b"/registry/pods0"),
            ("a", b"b"),
            ("a\u{7f}", b"a\x80"),
            ("", b"\0"),
        ];
        for (prefix, end) in cases {
            assert_eq!(prefix_end(prefix), end, "prefix {prefix:?}");
        }
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let endpoints = [format!("http://127.0.0.1:{port}")];
        match EtcdStore::connect(&endpoints).await {
            Err(StorageError::Unavailable(_)) => {}
            Err(other) => panic!("expected Unavailable, got {other:?}"),
            Ok(_) => panic!("connected to a closed port"),
        }
    }
}
