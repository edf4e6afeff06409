//! Shared informers, as kube-controller-manager's `SharedInformerFactory`:
//! one watch and one cache per kind for the whole controller-manager, read
//! by every controller and fanned out to each of them as events. Without
//! it every pod change was decoded and sent by the API server once per
//! controller that watches pods.
//!
//! kube-runtime's own shared streams (`store_shared`/`ReflectHandle`) are
//! not used: they never deliver deletions (the handle looks the object up
//! in the store, where it no longer is) and a slow subscriber blocks the
//! writer, hence every other subscriber. Here, as in client-go's
//! `processorListener`, each subscriber has its own unbounded buffer, so
//! the watch is never held up by a controller busy reconciling, and a
//! subscriber that comes late is first handed the cache's content (as
//! client-go's `AddEventHandler` replays the store).

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use client::lean::{self, Lean};
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A change a subscriber is told of: the object as it is now, or as it
/// was last seen before it was deleted.
#[derive(Debug)]
pub enum Change<K> {
    Apply(Arc<K>),
    Delete(Arc<K>),
}

impl<K> Change<K> {
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Apply(o) | Change::Delete(o) => o,
        }
    }

    pub fn into_object(self) -> Arc<K> {
        match self {
            Change::Apply(o) | Change::Delete(o) => o,
        }
    }
}

/// Bounds of the kinds an informer can watch.
pub trait Kind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Kind for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// `None` once the informer has stopped: its subscribers' streams end.
type Subscribers<K> = Option<Vec<mpsc::UnboundedSender<Change<K>>>>;

/// The informer of one kind; cheap to clone.
pub struct Informer<K: Kind> {
    store: Store<K>,
    subscribers: Arc<Mutex<Subscribers<K>>>,
    /// True once listed. `Store::wait_until_ready` is not used for this:
    /// its one-shot channel keeps one waker, so of several tasks waiting
    /// on a shared store only the last one would ever be woken.
    synced: watch::Receiver<bool>,
}

impl<K: Kind> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            subscribers: self.subscribers.clone(),
            synced: self.synced.clone(),
        }
    }
}

/// Why an informer's cache will never be ready.
#[derive(Debug, thiserror::Error)]
#[error("the {kind} informer stopped before its first list")]
pub struct Stopped {
    pub kind: String,
}

/// Waits for `synced` unless `stop` resolves first (then false): a
/// controller being stopped must not hang on a cache that cannot be
/// listed (on leader loss the API server may be unreachable).
pub async fn wait_synced<S, F>(stop: &mut S, synced: F) -> bool
where
    S: Future + Unpin,
    F: Future,
{
    tokio::select! {
        _ = stop => false,
        _ = synced => true,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned list is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Kind> Informer<K> {
    /// The shared cache. Wait for [`Informer::ready`], not for its
    /// `wait_until_ready`, before reading it.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Resolves once the cache holds a first complete list.
    pub fn ready(&self) -> impl Future<Output = Result<(), Stopped>> + Send + 'static {
        let mut synced = self.synced.clone();
        async move {
            match synced.wait_for(|s| *s).await {
                Ok(_) => Ok(()),
                Err(_) => Err(Stopped {
                    kind: K::kind(&()).into_owned(),
                }),
            }
        }
    }

    /// Every change from now on, preceded by the cache's current content
    /// as applies. The stream ends when the informer stops.
    pub fn subscribe(&self) -> impl Stream<Item = Change<K>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        let mut subs = lock(&self.subscribers);
        if let Some(list) = subs.as_mut() {
            // Under the lock the watch task holds while it applies and
            // fans out an event: the snapshot and the live feed neither
            // overlap nor leave a gap.
            for o in self.store.state() {
                let _ = tx.unbounded_send(Change::Apply(o));
            }
            list.push(tx);
        }
        rx
    }

    /// The objects of [`Informer::subscribe`], deleted ones included, as
    /// `Controller::watches_shared_stream` takes them.
    pub fn objects(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.subscribe().map(Change::into_object)
    }

    /// Only the objects applied, as `Controller::for_shared_stream` takes
    /// them (a deleted object has nothing left to reconcile).
    pub fn applied(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.subscribe().filter_map(|c| async move {
            match c {
                Change::Apply(o) => Some(o),
                Change::Delete(_) => None,
            }
        })
    }
}

/// Keeps the watch of one kind going, applying each event to the cache
/// and handing it to every subscriber, until `stop`.
/// Objects are decoded without their managed fields: no controller reads
/// them, and they are most of the work of decoding a pod.
async fn run<K: Kind>(
    api: Api<Lean<K>>,
    mut writer: Writer<K>,
    subscribers: Arc<Mutex<Subscribers<K>>>,
    synced: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = lean::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let reader = writer.as_reader();
    loop {
        let event = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            e = events.next() => e,
        };
        let event = match event {
            Some(Ok(e)) => e,
            Some(Err(e)) => {
                tracing::debug!(error = %e, kind = %K::kind(&()), "informer watch failed; retrying");
                continue;
            }
            None => break,
        };
        let mut subs = lock(&subscribers);
        let changes = match &event {
            watcher::Event::InitDone => {
                let changes = relisted(&mut writer, &reader, &event);
                synced.send_replace(true);
                changes
            }
            _ => {
                writer.apply_watcher_event(&event);
                match event {
                    watcher::Event::Apply(o) => reader
                        .get(&ObjectRef::from_obj(&o))
                        .map(Change::Apply)
                        .into_iter()
                        .collect(),
                    watcher::Event::Delete(o) => vec![Change::Delete(Arc::new(o))],
                    // Listed objects are handed out once the list is
                    // complete and in the cache.
                    _ => Vec::new(),
                }
            }
        };
        if let Some(list) = subs.as_mut() {
            for change in changes {
                list.retain(|tx| {
                    let c = match &change {
                        Change::Apply(o) => Change::Apply(o.clone()),
                        Change::Delete(o) => Change::Delete(o.clone()),
                    };
                    tx.unbounded_send(c).is_ok()
                });
            }
        }
    }
    // Dropping the senders ends the subscribers' streams; dropping the
    // writer fails any `wait_until_ready` still pending.
    *lock(&subscribers) = None;
}

/// Swaps a fresh list into the cache: every listed object is an apply,
/// and an object cached before but not listed was deleted meanwhile (as
/// client-go's `Replace` reports with `DeletedFinalStateUnknown`).
fn relisted<K: Kind>(
    writer: &mut Writer<K>,
    reader: &Store<K>,
    done: &watcher::Event<K>,
) -> Vec<Change<K>> {
    let before = reader.state();
    writer.apply_watcher_event(done);
    let now = reader.state();
    let listed: HashSet<ObjectRef<K>> = now.iter().map(|o| ObjectRef::from_obj(&**o)).collect();
    before
        .into_iter()
        .filter(|o| !listed.contains(&ObjectRef::from_obj(&**o)))
        .map(Change::Delete)
        .chain(now.into_iter().map(Change::Apply))
        .collect()
}

/// The informers of one controller-manager run: created on first use,
/// stopped together by [`Informers::stop`] (or once every handle to them
/// is dropped).
#[derive(Clone)]
pub struct Informers {
    client: Client,
    stop: Arc<watch::Sender<bool>>,
    registry: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    by_kind: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Informers {
    pub fn new(client: Client) -> Informers {
        Informers {
            client,
            stop: Arc::new(watch::channel(false).0),
            registry: Arc::default(),
        }
    }

    /// The cluster-wide informer of `K`, its watch started on first use
    /// (so call from within a tokio runtime).
    pub fn get<K: Kind>(&self) -> Informer<K> {
        let mut reg = lock(&self.registry);
        if let Some(i) = reg
            .by_kind
            .get(&TypeId::of::<K>())
            .and_then(|i| i.downcast_ref::<Informer<K>>())
        {
            return i.clone();
        }
        let writer = Writer::<K>::default();
        let (synced_tx, synced) = watch::channel(false);
        let informer = Informer {
            store: writer.as_reader(),
            subscribers: Arc::new(Mutex::new(Some(Vec::new()))),
            synced,
        };
        let task = tokio::spawn(run(
            Api::<Lean<K>>::all(self.client.clone()),
            writer,
            informer.subscribers.clone(),
            synced_tx,
            self.stop.subscribe(),
        ));
        reg.tasks.push(task);
        reg.by_kind
            .insert(TypeId::of::<K>(), Box::new(informer.clone()));
        informer
    }

    /// Stops every watch and waits until they have ended.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut lock(&self.registry).tasks);
        for t in tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p
    }

    fn names(changes: &[Change<Pod>]) -> Vec<String> {
        changes
            .iter()
            .map(|c| {
                let verb = match c {
                    Change::Apply(_) => "apply",
                    Change::Delete(_) => "delete",
                };
                format!(
                    "{verb} {}",
                    c.object().metadata.name.as_deref().unwrap_or("")
                )
            })
            .collect()
    }

    fn list(writer: &mut Writer<Pod>, reader: &Store<Pod>, pods: &[&str]) -> Vec<Change<Pod>> {
        writer.apply_watcher_event(&watcher::Event::Init);
        for p in pods {
            writer.apply_watcher_event(&watcher::Event::InitApply(pod(p)));
        }
        let mut changes = relisted(writer, reader, &watcher::Event::InitDone);
        changes.sort_by_key(|c| c.object().metadata.name.clone());
        changes
    }

    #[test]
    fn a_relist_applies_what_it_lists_and_deletes_what_vanished_meanwhile() {
        let mut writer = Writer::<Pod>::default();
        let reader = writer.as_reader();
        assert_eq!(
            names(&list(&mut writer, &reader, &["a", "b"])),
            ["apply a", "apply b"]
        );
        assert_eq!(
            names(&list(&mut writer, &reader, &["b", "c"])),
            ["delete a", "apply b", "apply c"]
        );
        assert_eq!(reader.len(), 2);
    }

    #[tokio::test]
    async fn a_late_subscriber_is_first_handed_the_cache_then_ends_with_the_informer() {
        let mut writer = Writer::<Pod>::default();
        let informer = Informer {
            store: writer.as_reader(),
            subscribers: Arc::new(Mutex::new(Some(Vec::new()))),
            synced: watch::channel(true).1,
        };
        writer.apply_watcher_event(&watcher::Event::Apply(pod("a")));
        let late = informer.subscribe();
        *lock(&informer.subscribers) = None;
        let seen: Vec<Change<Pod>> = late.collect().await;
        assert_eq!(names(&seen), ["apply a"]);
        let after_stop: Vec<Change<Pod>> = informer.subscribe().collect().await;
        assert!(after_stop.is_empty());
    }

    #[tokio::test]
    async fn every_controller_waiting_for_the_cache_is_woken() {
        let (tx, rx) = watch::channel(false);
        let informer = Informer::<Pod> {
            store: Writer::default().as_reader(),
            subscribers: Arc::new(Mutex::new(Some(Vec::new()))),
            synced: rx,
        };
        let waiters: Vec<_> = (0..3).map(|_| tokio::spawn(informer.ready())).collect();
        tokio::task::yield_now().await;
        tx.send_replace(true);
        for w in waiters {
            assert!(w.await.expect("waiter").is_ok());
        }
    }

    #[tokio::test]
    async fn readiness_fails_once_the_informer_stopped_without_a_list() {
        let (tx, rx) = watch::channel(false);
        let informer = Informer::<Pod> {
            store: Writer::default().as_reader(),
            subscribers: Arc::new(Mutex::new(Some(Vec::new()))),
            synced: rx,
        };
        drop(tx);
        assert!(informer.ready().await.is_err());
    }
}
