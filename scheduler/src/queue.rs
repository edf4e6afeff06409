//! The scheduling queue (`internal/queue`): an active queue ordered by
//! priority then age, a backoff queue (1 s doubling to 10 s per failed
//! attempt), and unschedulable pods that wait for a cluster change (node
//! added or updated, pod deleted) or for 5 minutes before another try.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::framework::{pod_key, pod_priority};

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// `podMaxInUnschedulablePodsDuration`.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

struct Entry {
    pod: Arc<Pod>,
    place: Place,
    attempts: u32,
    /// When the pod first entered the queue (age for ordering).
    added: Instant,
    last_failure: Option<Instant>,
    /// Bumped whenever the pod is (re)pushed on the heap.
    generation: u64,
    /// A cluster change happened while it was in flight.
    moved_while_in_flight: bool,
}

#[derive(PartialEq, Eq)]
struct HeapItem {
    priority: i32,
    added: Instant,
    key: String,
    generation: u64,
}

impl Ord for HeapItem {
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then_with(|| o.added.cmp(&self.added))
            .then_with(|| o.key.cmp(&self.key))
    }
}

impl PartialOrd for HeapItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[derive(Default)]
struct Inner {
    pods: HashMap<String, Entry>,
    heap: BinaryHeap<HeapItem>,
    next_generation: u64,
    closed: bool,
}

/// A pod handed to a scheduling cycle.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    pub key: String,
    pub attempts: u32,
}

#[derive(Default)]
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

/// Backoff after `attempts` failures: 1 s, 2 s, 4 s, 8 s, then 10 s.
pub fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

/// Whether an update could change the scheduling outcome; our own status
/// writes (the PodScheduled condition) must not requeue the pod.
fn spec_changed(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}

impl SchedulingQueue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push_active(inner: &mut Inner, key: &str) {
        inner.next_generation += 1;
        let generation = inner.next_generation;
        if let Some(e) = inner.pods.get_mut(key) {
            e.place = Place::Active;
            e.generation = generation;
            let item = HeapItem {
                priority: pod_priority(&e.pod),
                added: e.added,
                key: key.to_string(),
                generation,
            };
            inner.heap.push(item);
        }
    }

    /// A pending pod was added or updated.
    pub fn add(&self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        let mut inner = self.lock();
        let requeue = match inner.pods.get_mut(&key) {
            None => {
                inner.pods.insert(
                    key.clone(),
                    Entry {
                        pod,
                        place: Place::Active,
                        attempts: 0,
                        added: Instant::now(),
                        last_failure: None,
                        generation: 0,
                        moved_while_in_flight: false,
                    },
                );
                true
            }
            Some(e) => {
                let changed = spec_changed(&e.pod, &pod);
                e.pod = pod;
                match e.place {
                    Place::Unschedulable | Place::Backoff if changed => true,
                    Place::InFlight if changed => {
                        e.moved_while_in_flight = true;
                        false
                    }
                    _ => false,
                }
            }
        };
        if requeue {
            Self::push_active(&mut inner, &key);
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// The pod was deleted or bound; forget it.
    pub fn delete(&self, key: &str) {
        self.lock().pods.remove(key);
    }

    /// Waits for the highest-priority active pod; `None` once closed.
    pub async fn pop(&self) -> Option<QueuedPod> {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                while let Some(item) = inner.heap.pop() {
                    let Some(e) = inner.pods.get_mut(&item.key) else {
                        continue;
                    };
                    if e.generation != item.generation || e.place != Place::Active {
                        continue;
                    }
                    e.place = Place::InFlight;
                    e.attempts += 1;
                    e.moved_while_in_flight = false;
                    return Some(QueuedPod {
                        pod: e.pod.clone(),
                        key: item.key,
                        attempts: e.attempts,
                    });
                }
            }
            notified.await;
        }
    }

    /// The attempt found no node: wait for a cluster change (or, if one
    /// already happened during the attempt, only for the backoff).
    pub fn unschedulable(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(e) = inner.pods.get_mut(key) {
            e.last_failure = Some(Instant::now());
            e.place = if e.moved_while_in_flight {
                Place::Backoff
            } else {
                Place::Unschedulable
            };
        }
    }

    /// The attempt failed for another reason (error, failed binding): back off.
    pub fn backoff(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(e) = inner.pods.get_mut(key) {
            e.last_failure = Some(Instant::now());
            e.place = Place::Backoff;
        }
    }

    /// A cluster change that may make unschedulable pods fit (`MoveAllToActiveOrBackoffQueue`).
    pub fn move_all_to_active_or_backoff(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let mut ready = Vec::new();
        for (key, e) in inner.pods.iter_mut() {
            match e.place {
                Place::InFlight => e.moved_while_in_flight = true,
                Place::Unschedulable => {
                    if backoff_done(e, now) {
                        ready.push(key.clone());
                    } else {
                        e.place = Place::Backoff;
                    }
                }
                _ => {}
            }
        }
        self.activate(inner, ready);
    }

    /// Moves pods whose backoff has expired, and pods unschedulable for
    /// longer than [`MAX_UNSCHEDULABLE`], to the active queue.
    pub fn flush(&self) {
        let now = Instant::now();
        let inner = self.lock();
        let ready: Vec<String> = inner
            .pods
            .iter()
            .filter(|(_, e)| match e.place {
                Place::Backoff => backoff_done(e, now),
                Place::Unschedulable => e
                    .last_failure
                    .is_none_or(|t| now.duration_since(t) >= MAX_UNSCHEDULABLE),
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.activate(inner, ready);
    }

    /// Moves `ready` pods to the active queue and wakes the scheduling loop.
    fn activate(&self, mut inner: MutexGuard<'_, Inner>, ready: Vec<String>) {
        let any = !ready.is_empty();
        for key in ready {
            Self::push_active(&mut inner, &key);
        }
        drop(inner);
        if any {
            self.notify.notify_one();
        }
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// Number of pods in each place: (active, backoff, unschedulable, in flight).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let inner = self.lock();
        let mut c = (0, 0, 0, 0);
        for e in inner.pods.values() {
            match e.place {
                Place::Active => c.0 += 1,
                Place::Backoff => c.1 += 1,
                Place::Unschedulable => c.2 += 1,
                Place::InFlight => c.3 += 1,
            }
        }
        c
    }
}

fn backoff_done(e: &Entry, now: Instant) -> bool {
    e.last_failure
        .is_none_or(|t| now.duration_since(t) >= backoff(e.attempts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d"},
                "spec": {"priority": priority, "containers": []}}))
            .expect("pod"),
        )
    }

    async fn pop_now(q: &SchedulingQueue) -> Option<String> {
        tokio::time::timeout(Duration::from_millis(1), q.pop())
            .await
            .ok()
            .flatten()
            .map(|p| p.key)
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_ten() {
        let got: Vec<u64> = (1..=6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 10, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn higher_priority_pops_first_then_older() {
        let q = SchedulingQueue::default();
        q.add(pod("old-low", 0));
        tokio::time::advance(Duration::from_millis(5)).await;
        q.add(pod("high", 10));
        q.add(pod("new-low", 0));
        assert_eq!(pop_now(&q).await.as_deref(), Some("d/high"));
        assert_eq!(pop_now(&q).await.as_deref(), Some("d/old-low"));
        assert_eq!(pop_now(&q).await.as_deref(), Some("d/new-low"));
        assert_eq!(pop_now(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_wait_for_a_cluster_change_after_their_backoff() {
        let q = SchedulingQueue::default();
        q.add(pod("p", 0));
        assert!(pop_now(&q).await.is_some());
        q.unschedulable("d/p");
        q.flush();
        assert_eq!(pop_now(&q).await, None, "no change, no retry");
        q.move_all_to_active_or_backoff();
        assert_eq!(pop_now(&q).await, None, "still backing off");
        tokio::time::advance(Duration::from_secs(1)).await;
        q.flush();
        assert_eq!(pop_now(&q).await.as_deref(), Some("d/p"));
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_are_retried_after_five_minutes_anyway() {
        let q = SchedulingQueue::default();
        q.add(pod("p", 0));
        pop_now(&q).await;
        q.unschedulable("d/p");
        tokio::time::advance(MAX_UNSCHEDULABLE - Duration::from_secs(1)).await;
        q.flush();
        assert_eq!(pop_now(&q).await, None);
        tokio::time::advance(Duration::from_secs(1)).await;
        q.flush();
        assert_eq!(pop_now(&q).await.as_deref(), Some("d/p"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_during_the_attempt_sends_the_pod_to_backoff_not_to_sleep() {
        let q = SchedulingQueue::default();
        q.add(pod("p", 0));
        pop_now(&q).await;
        q.move_all_to_active_or_backoff();
        q.unschedulable("d/p");
        assert_eq!(q.counts(), (0, 1, 0, 0));
        tokio::time::advance(Duration::from_secs(1)).await;
        q.flush();
        assert_eq!(pop_now(&q).await.as_deref(), Some("d/p"));
    }

    #[tokio::test(start_paused = true)]
    async fn status_only_updates_do_not_requeue_but_spec_changes_do() {
        let q = SchedulingQueue::default();
        q.add(pod("p", 0));
        pop_now(&q).await;
        q.unschedulable("d/p");
        let mut status_only = (*pod("p", 0)).clone();
        status_only.status = Some(Default::default());
        q.add(Arc::new(status_only));
        assert_eq!(pop_now(&q).await, None);
        q.add(pod("p", 5));
        assert_eq!(pop_now(&q).await.as_deref(), Some("d/p"));
    }

    #[tokio::test(start_paused = true)]
    async fn deleted_pods_are_never_popped() {
        let q = SchedulingQueue::default();
        q.add(pod("p", 0));
        q.delete("d/p");
        assert_eq!(pop_now(&q).await, None);
    }
}
