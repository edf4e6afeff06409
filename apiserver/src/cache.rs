//! The watch cache: every stored object, decoded once and kept in memory
//! with its serialized JSON, fed by a single storage watch over `/registry/`.
//!
//! kube-apiserver keeps one cache per resource, each fed by its own etcd
//! watch. We feed all of them from one watch so that they share one
//! revision: a consistent list only has to wait until that revision reaches
//! the store's current one, with no need for etcd progress notifications.
//! N API watchers of a resource cost one broadcast subscription, never a
//! store watch of their own.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};

use crate::storage::{KeyValue, Storage, StorageError, WatchEvent};

/// How long the history of a resource keeps events for watch resumption
/// (kube-apiserver's watch cache sizes itself to a 75 s window).
const HISTORY_WINDOW: Duration = Duration::from_secs(75);
const HISTORY_MIN: usize = 100;
const HISTORY_MAX: usize = 10_000;
const BROADCAST_CAPACITY: usize = 4096;
/// Creates in flight with a hint, at most (see [`ResourceCache::expect_create`]).
const MAX_HINTS: usize = 4096;

fn same_buffer(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// One object as the cache holds it.
#[derive(Debug, PartialEq, Eq)]
pub struct CachedObject {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Selectable fields besides metadata.name/namespace.
    pub fields: Vec<(&'static str, String)>,
    /// The object's JSON, with its resourceVersion set.
    pub json: Bytes,
    pub rv: i64,
}

impl CachedObject {
    /// Value of a selectable field, for field selectors.
    pub fn field(&self, name: &str) -> Option<String> {
        match name {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone()),
            _ => self
                .fields
                .iter()
                .find(|(f, _)| *f == name)
                .map(|(_, v)| v.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change of one object; `prev` lets selector-filtered watchers turn a
/// change out of their selection into DELETED, as Kubernetes does.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventType,
    pub obj: Arc<CachedObject>,
    pub prev: Option<Arc<CachedObject>>,
    pub rv: i64,
    at: Instant,
}

/// What a create through this server knows of the object it is about to
/// store: applying the create's event then needs no decode. Decoding every
/// event is what kube-apiserver's watch cache does, and for a created pod it
/// cost as much as the rest of the create's request work.
pub struct CreateHint {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub fields: Vec<(&'static str, String)>,
    /// The very bytes stored, and where their resourceVersion goes.
    pub encoded: crate::encoded::WithManagedFields,
}

/// Decodes a stored value into a cached object with the given revision.
pub type Decoder = Box<dyn Fn(&[u8], i64) -> Result<CachedObject, String> + Send + Sync>;

#[derive(Default)]
struct Inner {
    objects: BTreeMap<String, Arc<CachedObject>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Events after this revision are all in `history`.
    floor: i64,
}

/// The cache of one resource.
pub struct ResourceCache {
    prefix: String,
    decoder: Decoder,
    inner: RwLock<Inner>,
    tx: broadcast::Sender<Arc<CacheEvent>>,
    /// Bumped when the cache is reloaded from a fresh list: watchers started
    /// before it may have missed events and must end, as Kubernetes ends
    /// watches when its watch cache reinitialises.
    epoch: watch::Sender<u64>,
    /// Shared with the other resources: the revision the cache has reached.
    revision: watch::Receiver<i64>,
    /// Creates in flight through this server, by key. An event is matched
    /// to its hint by the identity of its bytes (the embedded store hands
    /// the written buffer to its watchers), so a hint is never applied to
    /// other bytes; any event for the key, or the create's failure, ends it.
    hints: Mutex<HashMap<String, CreateHint>>,
    /// Events applied from a hint rather than decoded.
    hints_taken: std::sync::atomic::AtomicU64,
}

/// What a watch starts with: events to send first, then the live feed.
pub struct WatchStart {
    pub initial: Vec<Arc<CacheEvent>>,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// Changes when the watch must end because the cache was reloaded.
    pub reloaded: watch::Receiver<u64>,
}

/// Why the cache could not serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld { requested: i64, oldest: i64 },
    #[error("Too large resource version: {requested}, current: {current}")]
    TooNew { requested: i64, current: i64 },
}

impl ResourceCache {
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn lock_read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The key range of one namespace, or of the whole resource.
    fn range(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => format!("{}{ns}/", self.prefix),
            None => self.prefix.clone(),
        }
    }

    /// One object by storage key.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.lock_read().objects.get(key).cloned()
    }

    /// Objects under `namespace` (all when None) in key order that pass
    /// `filter`, starting after `start_after`, at most `limit` (0 = all).
    /// Returns them, the revision they reflect, and the last key returned
    /// when more matching objects remain.
    pub fn list(
        &self,
        namespace: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
        filter: impl Fn(&CachedObject) -> bool,
    ) -> (Vec<Arc<CachedObject>>, i64, Option<String>) {
        let inner = self.lock_read();
        let rv = *self.revision.borrow();
        let range = self.range(namespace);
        let lower = match start_after {
            Some(k) if k.as_bytes() >= range.as_bytes() => Bound::Excluded(k.to_string()),
            _ => Bound::Included(range.clone()),
        };
        let mut out = Vec::new();
        let mut last_key = None;
        for (key, obj) in inner.objects.range((lower, Bound::Unbounded)) {
            if !key.starts_with(&range) {
                break;
            }
            if !filter(obj) {
                continue;
            }
            if limit > 0 && out.len() == limit {
                return (out, rv, last_key);
            }
            out.push(obj.clone());
            last_key = Some(key.clone());
        }
        (out, rv, None)
    }

    /// Starts a watch. `from: None` begins with the current state as ADDED
    /// events; `Some(rv)` replays every change after `rv`.
    pub fn watch(
        &self,
        namespace: Option<&str>,
        from: Option<i64>,
    ) -> Result<WatchStart, CacheError> {
        let inner = self.lock_read();
        let live = self.tx.subscribe();
        let reloaded = self.epoch.subscribe();
        let initial = match from {
            None => {
                let range = self.range(namespace);
                inner
                    .objects
                    .range(range.clone()..)
                    .take_while(|(k, _)| k.starts_with(&range))
                    .map(|(_, o)| {
                        Arc::new(CacheEvent {
                            kind: EventType::Added,
                            obj: o.clone(),
                            prev: None,
                            rv: o.rv,
                            at: Instant::now(),
                        })
                    })
                    .collect()
            }
            Some(rv) => {
                if rv < inner.floor {
                    return Err(CacheError::TooOld {
                        requested: rv,
                        oldest: inner.floor,
                    });
                }
                let current = *self.revision.borrow();
                if rv > current {
                    return Err(CacheError::TooNew {
                        requested: rv,
                        current,
                    });
                }
                let start = inner.history.partition_point(|e| e.rv <= rv);
                inner.history.iter().skip(start).cloned().collect()
            }
        };
        Ok(WatchStart {
            initial,
            live,
            reloaded,
        })
    }

    /// The revision a bookmark may carry: every event of this resource up
    /// to it has been handed to `live`, which is drained.
    pub fn bookmark_revision(&self, live: &broadcast::Receiver<Arc<CacheEvent>>) -> Option<i64> {
        let _inner = self.lock_read();
        if live.is_empty() {
            Some(*self.revision.borrow())
        } else {
            None
        }
    }

    /// Tells the cache that `key` is about to be created with
    /// `hint.encoded.bytes`.
    pub fn expect_create(&self, key: &str, hint: CreateHint) {
        let mut hints = self.lock_hints();
        // A create whose request was dropped after its write failed leaves
        // its hint until the key's next event; the cap bounds such leftovers.
        if hints.len() < MAX_HINTS {
            hints.insert(key.to_string(), hint);
        }
    }

    /// How many events were applied from a create's hint.
    pub fn hints_taken(&self) -> u64 {
        self.hints_taken.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The create of `key` with `bytes` failed: its hint goes.
    pub fn withdraw_create(&self, key: &str, bytes: &Bytes) {
        let mut hints = self.lock_hints();
        if hints
            .get(key)
            .is_some_and(|h| same_buffer(&h.encoded.bytes, bytes))
        {
            hints.remove(key);
        }
    }

    fn lock_hints(&self) -> std::sync::MutexGuard<'_, HashMap<String, CreateHint>> {
        self.hints.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached form of a stored object: from its create's hint when the
    /// event carries the hinted bytes themselves, else decoded.
    fn cached(&self, kv: &KeyValue) -> Option<Arc<CachedObject>> {
        let hint = self.lock_hints().remove(&kv.key);
        match hint {
            Some(h) if same_buffer(&h.encoded.bytes, &kv.value) => {
                let hinted = Arc::new(CachedObject {
                    json: Bytes::from(h.encoded.with_resource_version(kv.mod_revision)),
                    namespace: h.namespace,
                    name: h.name,
                    labels: h.labels,
                    fields: h.fields,
                    rv: kv.mod_revision,
                });
                self.hints_taken
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Every test run checks the hint against the decode it saves.
                #[cfg(debug_assertions)]
                if let Some(decoded) = self.decode(kv, kv.mod_revision) {
                    assert_eq!(hinted, decoded, "a create hint differs from its decode");
                }
                Some(hinted)
            }
            _ => self.decode(kv, kv.mod_revision),
        }
    }

    fn decode(&self, kv: &KeyValue, rv: i64) -> Option<Arc<CachedObject>> {
        match (self.decoder)(&kv.value, rv) {
            Ok(o) => Some(Arc::new(o)),
            Err(e) => {
                warn!(key = %kv.key, error = %e, "skipping undecodable stored object");
                None
            }
        }
    }

    fn reset(&self, kvs: Vec<&KeyValue>, revision: i64) {
        let objects = kvs
            .into_iter()
            .filter_map(|kv| Some((kv.key.clone(), self.decode(kv, kv.mod_revision)?)))
            .collect();
        let mut inner = self.lock_write();
        *inner = Inner {
            objects,
            history: VecDeque::new(),
            floor: revision,
        };
        // Creates in flight may have been listed already; hints of the
        // others only save a decode.
        self.lock_hints().clear();
        self.epoch.send_modify(|e| *e += 1);
    }

    fn apply(&self, event: &WatchEvent, revision_tx: &watch::Sender<i64>) {
        // Decoded before the lock: readers wait for the insert alone.
        let put = match event {
            WatchEvent::Put { kv, .. } => self.cached(kv),
            _ => None,
        };
        let mut inner = self.lock_write();
        let (key, ev) = match (event, put) {
            (WatchEvent::Put { kv, .. }, Some(obj)) => {
                let prev = inner.objects.insert(kv.key.clone(), obj.clone());
                let kind = if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                (kv.key.clone(), (kind, obj, prev))
            }
            (WatchEvent::Put { .. }, None) => return,
            (WatchEvent::Delete { prev, revision }, _) => {
                let Some(obj) = self.decode(prev, *revision) else {
                    inner.objects.remove(&prev.key);
                    return;
                };
                let old = inner.objects.remove(&prev.key);
                (prev.key.clone(), (EventType::Deleted, obj, old))
            }
            (WatchEvent::Progress { .. }, _) => return,
        };
        let (kind, obj, prev) = ev;
        let rv = event.revision();
        let now = Instant::now();
        let e = Arc::new(CacheEvent {
            kind,
            obj,
            prev,
            rv,
            at: now,
        });
        inner.history.push_back(e.clone());
        while inner.history.len() > HISTORY_MAX
            || (inner.history.len() > HISTORY_MIN
                && inner
                    .history
                    .front()
                    .is_some_and(|f| now.duration_since(f.at) > HISTORY_WINDOW))
        {
            if let Some(old) = inner.history.pop_front() {
                inner.floor = old.rv;
            }
        }
        debug!(%key, rv, kind = kind.as_str(), "cache event");
        // Revision first, under the lock, so a watcher that sees the event
        // also sees a revision at least as new (bookmarks rely on it).
        revision_tx.send_replace(rv);
        let _ = self.tx.send(e);
    }
}

/// All resource caches and the task that feeds them.
pub struct Cache {
    resources: Vec<Arc<ResourceCache>>,
    revision_tx: watch::Sender<i64>,
    revision: watch::Receiver<i64>,
}

impl Cache {
    pub fn new() -> Cache {
        let (revision_tx, revision) = watch::channel(0);
        Cache {
            resources: Vec::new(),
            revision_tx,
            revision,
        }
    }

    /// Registers a resource by its storage prefix; call before `start`.
    pub fn register(&mut self, prefix: String, decoder: Decoder) -> Arc<ResourceCache> {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (epoch, _) = watch::channel(0);
        let rc = Arc::new(ResourceCache {
            prefix,
            decoder,
            inner: RwLock::new(Inner::default()),
            tx,
            epoch,
            revision: self.revision.clone(),
            hints: Mutex::new(HashMap::new()),
            hints_taken: Default::default(),
        });
        self.resources.push(rc.clone());
        rc
    }

    fn resource_of(&self, key: &str) -> Option<&Arc<ResourceCache>> {
        self.resources
            .iter()
            .filter(|r| key.starts_with(&r.prefix))
            .max_by_key(|r| r.prefix.len())
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    /// Waits until the cache reflects `revision`; false on timeout.
    pub async fn wait_for(&self, revision: i64, timeout: Duration) -> bool {
        let mut rx = self.revision.clone();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|r| *r >= revision)).await,
            Ok(Ok(_))
        )
    }

    /// Loads everything, then follows the store; returns once loaded, with
    /// the feeding task running in the background for the server's life.
    pub async fn start(self: &Arc<Self>, storage: Arc<dyn Storage>) -> Result<(), StorageError> {
        let revision = self.load(storage.as_ref()).await?;
        let this = self.clone();
        tokio::spawn(async move { this.follow(storage, revision).await });
        Ok(())
    }

    async fn load(&self, storage: &dyn Storage) -> Result<i64, StorageError> {
        let list = storage.list("/registry/", None, 0, None).await?;
        for rc in &self.resources {
            let kvs = list
                .kvs
                .iter()
                .filter(|kv| {
                    self.resource_of(&kv.key)
                        .is_some_and(|r| Arc::ptr_eq(r, rc))
                })
                .collect();
            rc.reset(kvs, list.revision);
        }
        self.revision_tx.send_replace(list.revision);
        Ok(list.revision)
    }

    async fn follow(&self, storage: Arc<dyn Storage>, mut revision: i64) {
        loop {
            match storage.watch("/registry/", revision).await {
                Ok(mut stream) => {
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(ev) => {
                                revision = revision.max(ev.revision());
                                let key = match &ev {
                                    WatchEvent::Put { kv, .. } => Some(kv.key.as_str()),
                                    WatchEvent::Delete { prev, .. } => Some(prev.key.as_str()),
                                    WatchEvent::Progress { .. } => None,
                                };
                                match key.and_then(|k| self.resource_of(k)) {
                                    Some(rc) => rc.apply(&ev, &self.revision_tx),
                                    None => {
                                        self.revision_tx.send_replace(revision);
                                    }
                                }
                            }
                            Err(StorageError::Compacted { .. }) => break,
                            Err(e) => {
                                warn!(error = %e, "watch cache: store watch failed; resuming");
                                break;
                            }
                        }
                    }
                }
                Err(StorageError::Compacted { .. }) => {
                    warn!(revision, "watch cache fell behind compaction; reloading");
                    match self.load(storage.as_ref()).await {
                        Ok(r) => revision = r,
                        Err(e) => warn!(error = %e, "watch cache reload failed"),
                    }
                }
                Err(e) => warn!(error = %e, "watch cache: cannot watch the store"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::EmbeddedStore;

    /// A decoder for test values shaped `{"ns":..,"name":..,"app":..}`.
    fn decoder() -> Decoder {
        Box::new(|bytes: &[u8], rv: i64| {
            let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            let mut labels = BTreeMap::new();
            if let Some(app) = v["app"].as_str() {
                labels.insert("app".to_string(), app.to_string());
            }
            Ok(CachedObject {
                namespace: v["ns"].as_str().unwrap_or_default().to_string(),
                name: v["name"].as_str().unwrap_or_default().to_string(),
                labels,
                fields: Vec::new(),
                // As the registry's decoder: with the revision when the
                // value has metadata.
                json: crate::encoded::with_resource_version(bytes, rv)
                    .map_or_else(|| Bytes::copy_from_slice(bytes), Bytes::from),
                rv,
            })
        })
    }

    fn value(ns: &str, name: &str, app: &str) -> Bytes {
        Bytes::from(serde_json::json!({"ns": ns, "name": name, "app": app}).to_string())
    }

    async fn setup() -> (
        tempfile::TempDir,
        Arc<dyn Storage>,
        Arc<Cache>,
        Arc<ResourceCache>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage: Arc<dyn Storage> = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        let mut cache = Cache::new();
        let pods = cache.register("/registry/pods/".into(), decoder());
        cache.register("/registry/podsx/".into(), decoder());
        let cache = Arc::new(cache);
        cache.start(storage.clone()).await.expect("start");
        (dir, storage, cache, pods)
    }

    /// A create's bytes and a hint that describes them.
    fn hinted(name: &str, app: &str) -> (Bytes, CreateHint) {
        let object = serde_json::json!({"ns": "a", "name": name, "app": app, "metadata": {}});
        let raw = serde_json::to_vec(&object).expect("encodes");
        let encoded =
            crate::encoded::with_managed_fields(&raw, br#"[{"manager":"m"}]"#).expect("spliced");
        let hint = CreateHint {
            namespace: "a".into(),
            name: name.into(),
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            fields: Vec::new(),
            encoded: encoded.clone(),
        };
        (encoded.bytes, hint)
    }

    #[tokio::test]
    async fn a_create_hint_stands_in_for_a_decode_of_its_own_bytes_only() {
        let (_dir, storage, cache, pods) = setup().await;
        // The very bytes hinted: the event is applied from the hint (which,
        // in a debug build, is checked against the decode it saves).
        let (bytes, hint) = hinted("p", "web");
        pods.expect_create("/registry/pods/a/p", hint);
        let r = storage
            .create("/registry/pods/a/p", bytes)
            .await
            .expect("create");
        assert!(cache.wait_for(r, Duration::from_secs(5)).await);
        assert_eq!(pods.hints_taken(), 1);
        let cached = pods.get("/registry/pods/a/p").expect("cached");
        assert_eq!(cached.rv, r);
        let json: serde_json::Value = serde_json::from_slice(&cached.json).expect("JSON");
        assert_eq!(json["metadata"]["resourceVersion"], r.to_string());
        assert!(pods.lock_hints().is_empty(), "the event took its hint");

        // Equal bytes in another buffer (what etcd's watch hands back) are
        // decoded, and the stale hint goes with the event.
        let (bytes, hint) = hinted("q", "web");
        pods.expect_create("/registry/pods/a/q", hint);
        let copy = Bytes::copy_from_slice(&bytes);
        let r = storage
            .create("/registry/pods/a/q", copy)
            .await
            .expect("create");
        assert!(cache.wait_for(r, Duration::from_secs(5)).await);
        assert_eq!(pods.hints_taken(), 1);
        assert!(pods.get("/registry/pods/a/q").is_some());
        assert!(pods.lock_hints().is_empty());

        // A failed create withdraws its own hint, not another's.
        let (bytes, hint) = hinted("p", "db");
        pods.expect_create("/registry/pods/a/p", hint);
        pods.withdraw_create("/registry/pods/a/p", &Bytes::copy_from_slice(&bytes));
        assert_eq!(pods.lock_hints().len(), 1);
        pods.withdraw_create("/registry/pods/a/p", &bytes);
        assert!(pods.lock_hints().is_empty());

        // Leftover hints are bounded.
        for i in 0..=MAX_HINTS {
            let (_, hint) = hinted(&format!("r{i}"), "web");
            pods.expect_create(&format!("/registry/pods/a/r{i}"), hint);
        }
        assert_eq!(pods.lock_hints().len(), MAX_HINTS);
        assert!(storage.watchers_get_written_buffers());
    }

    #[tokio::test]
    async fn lists_follow_the_store_by_namespace_in_pages_without_neighbours() {
        let (_dir, storage, cache, pods) = setup().await;
        for (ns, name) in [("a", "p1"), ("a", "p2"), ("b", "p3")] {
            storage
                .create(
                    &format!("/registry/pods/{ns}/{name}"),
                    value(ns, name, "web"),
                )
                .await
                .expect("create");
        }
        let rev = storage
            .create("/registry/podsx/a/other", value("a", "other", "web"))
            .await
            .expect("create");
        assert!(cache.wait_for(rev, Duration::from_secs(5)).await);
        let (all, rv, more) = pods.list(None, None, 0, |_| true);
        assert_eq!((all.len(), rv, more), (3, rev, None));
        let (in_a, _, _) = pods.list(Some("a"), None, 0, |_| true);
        assert_eq!(
            in_a.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            ["p1", "p2"]
        );
        let (page, _, more) = pods.list(None, None, 2, |_| true);
        assert_eq!(page.len(), 2);
        let (rest, _, end) = pods.list(None, more.as_deref(), 2, |_| true);
        assert_eq!((rest.len(), rest[0].name.as_str(), end), (1, "p3", None));
    }

    #[tokio::test]
    async fn a_watch_from_a_revision_replays_then_follows_and_older_is_too_old() {
        let (_dir, storage, cache, pods) = setup().await;
        let r1 = storage
            .create("/registry/pods/a/p1", value("a", "p1", "web"))
            .await
            .expect("create");
        let r2 = storage
            .update("/registry/pods/a/p1", value("a", "p1", "db"), r1)
            .await
            .expect("update");
        assert!(cache.wait_for(r2, Duration::from_secs(5)).await);
        let mut start = pods.watch(None, Some(r1)).expect("watch");
        assert_eq!(start.initial.len(), 1);
        assert_eq!(
            (start.initial[0].kind, start.initial[0].rv),
            (EventType::Modified, r2)
        );
        assert_eq!(
            start.initial[0]
                .prev
                .as_ref()
                .map(|p| p.labels["app"].clone()),
            Some("web".into())
        );
        let (_, r3) = storage
            .delete("/registry/pods/a/p1", None)
            .await
            .expect("delete");
        let ev = tokio::time::timeout(Duration::from_secs(5), start.live.recv())
            .await
            .expect("event")
            .expect("open");
        assert_eq!((ev.kind, ev.rv), (EventType::Deleted, r3));
        assert!(matches!(
            pods.watch(None, Some(r3 + 100)),
            Err(CacheError::TooNew { .. })
        ));
        // A cache loaded later has no history from before its load.
        let mut later = Cache::new();
        let later_pods = later.register("/registry/pods/".into(), decoder());
        Arc::new(later).start(storage.clone()).await.expect("start");
        assert!(matches!(
            later_pods.watch(None, Some(r1)),
            Err(CacheError::TooOld { .. })
        ));
        assert!(later_pods.watch(None, Some(r3)).is_ok());
    }

    #[tokio::test]
    async fn a_watch_without_revision_starts_with_the_state_as_added() {
        let (_dir, storage, cache, pods) = setup().await;
        let r = storage
            .create("/registry/pods/a/p1", value("a", "p1", "web"))
            .await
            .expect("create");
        assert!(cache.wait_for(r, Duration::from_secs(5)).await);
        let start = pods.watch(Some("a"), None).expect("watch");
        assert_eq!(start.initial.len(), 1);
        assert_eq!(start.initial[0].kind, EventType::Added);
        assert!(
            pods.watch(Some("b"), None)
                .expect("watch")
                .initial
                .is_empty()
        );
    }
}
