//! The scheduler process (`schedule_one.go`): informers feed the cache and
//! the queue; one cycle at a time pops a pod, runs its profile's framework
//! on a snapshot of the cache, assumes the pod on the chosen node, and
//! binds it asynchronously; failures set the PodScheduled condition, write
//! an Event, and send the pod back to the queue.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::lean::{self, Lean};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::cache::Cache;
use crate::explain;
use crate::framework::runtime::{Explanation, Framework, ScheduleError};
use crate::framework::{pod_key, pod_priority};
use crate::preemption::{self, Outcome};
use crate::queue::SchedulingQueue;
use crate::report::{self, Recorder};

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error(transparent)]
    Config(#[from] crate::framework::config::ConfigError),
    #[error("cannot serve explanations on {addr}: {source}")]
    Explain {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Bindings in flight at once. Kubernetes starts one goroutine per
/// binding; a bound keeps a burst of decisions from opening thousands of
/// requests at once, and when it is reached the scheduling loop waits,
/// which is the back-pressure the API server needs.
pub const BIND_CONCURRENCY: usize = 64;
/// `Scheduled` events queued for sending; beyond this they are dropped, as
/// client-go's event broadcaster drops when its 1,000-event queue is full.
pub const EVENT_QUEUE: usize = 1_000;
/// Events sent at once.
const EVENT_CONCURRENCY: usize = 16;

/// A `Scheduled` event waiting to be sent.
struct ScheduledEvent {
    pod: Arc<Pod>,
    message: String,
}

pub struct Scheduler {
    client: kube::Client,
    frameworks: Vec<Framework>,
    cache: Mutex<Cache>,
    queue: SchedulingQueue,
    pub explanations: explain::Store,
    recorder: Recorder,
    next_start: Mutex<usize>,
    binds: Arc<Semaphore>,
    events: mpsc::Sender<ScheduledEvent>,
    events_rx: Mutex<Option<mpsc::Receiver<ScheduledEvent>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(crate::framework::config::DEFAULT_SCHEDULER_NAME)
}

fn assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// Whether a node update can change a scheduling outcome
/// (`nodeSchedulingPropertiesChange`): schedulability, allocatable, labels,
/// taints, condition statuses or images — not heartbeat timestamps.
fn scheduling_properties_changed(old: &Node, new: &Node) -> bool {
    let conditions = |n: &Node| -> Vec<(String, String)> {
        n.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    };
    let spec = |n: &Node| n.spec.as_ref().map(|s| (s.unschedulable, s.taints.clone()));
    let status = |n: &Node| {
        n.status
            .as_ref()
            .map(|s| (s.allocatable.clone(), s.images.clone()))
    };
    old.metadata.labels != new.metadata.labels
        || spec(old) != spec(new)
        || status(old) != status(new)
        || conditions(old) != conditions(new)
}

/// Terminal pods no longer hold resources (the scheduler's informer
/// excludes them with a field selector).
fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

impl Scheduler {
    pub fn new(client: kube::Client, frameworks: Vec<Framework>) -> Arc<Scheduler> {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        Arc::new(Scheduler {
            client,
            frameworks,
            cache: Mutex::new(Cache::default()),
            queue: SchedulingQueue::default(),
            explanations: explain::Store::default(),
            recorder: Recorder::default(),
            next_start: Mutex::new(0),
            binds: Arc::new(Semaphore::new(BIND_CONCURRENCY)),
            events: events_tx,
            events_rx: Mutex::new(Some(events_rx)),
        })
    }

    fn responsible(&self, pod: &Pod) -> bool {
        let name = scheduler_name(pod);
        self.frameworks.iter().any(|f| f.scheduler_name == name)
    }

    fn on_node(&self, node: Node) {
        let relevant = {
            let mut cache = lock(&self.cache);
            let old = cache.node(node.metadata.name.as_deref().unwrap_or(""));
            let relevant = old.is_none_or(|old| scheduling_properties_changed(&old, &node));
            cache.add_or_update_node(Arc::new(node));
            relevant
        };
        // Heartbeats (lease-like status updates) change nothing a filter
        // reads; requeueing every unschedulable pod on each would be waste.
        if relevant {
            self.queue.move_all_to_active_or_backoff();
        }
    }

    fn on_node_deleted(&self, name: &str) {
        lock(&self.cache).remove_node(name);
    }

    fn on_pod(&self, pod: Pod) {
        let key = pod_key(&pod);
        if terminal(&pod) {
            self.on_pod_deleted(&key, true);
            return;
        }
        if assigned(&pod) {
            self.queue.delete(&key);
            lock(&self.cache).add_or_update_pod(Arc::new(pod));
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() || !self.responsible(&pod) {
            return;
        }
        // `SchedulingGates` (PreEnqueue): gated pods wait outside the queue
        // until every gate is removed.
        let gated = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| !g.is_empty());
        if gated {
            self.queue.delete(&key);
            return;
        }
        // Until the informer shows it bound, an assumed pod is not pending.
        if lock(&self.cache).is_assumed(&key) {
            return;
        }
        self.queue.add(Arc::new(pod));
    }

    fn on_pod_deleted(&self, key: &str, frees_resources: bool) {
        self.queue.delete(key);
        self.recorder.forget(key);
        lock(&self.cache).remove_pod(key);
        if frees_resources {
            self.queue.move_all_to_active_or_backoff();
        }
    }

    async fn watch_nodes(self: Arc<Self>, synced: watch::Sender<bool>) {
        let api: Api<Lean<Node>> = Api::all(self.client.clone());
        let mut stream = lean::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => seen.clear(),
                Ok(Event::InitApply(n)) => {
                    seen.insert(n.metadata.name.clone().unwrap_or_default());
                    self.on_node(n);
                }
                Ok(Event::InitDone) => {
                    let stale: Vec<String> = lock(&self.cache)
                        .node_names()
                        .into_iter()
                        .filter(|n| !seen.contains(n))
                        .collect();
                    for n in stale {
                        self.on_node_deleted(&n);
                    }
                    let _ = synced.send(true);
                }
                Ok(Event::Apply(n)) => self.on_node(n),
                Ok(Event::Delete(n)) => {
                    self.on_node_deleted(n.metadata.name.as_deref().unwrap_or(""))
                }
                Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
            }
        }
    }

    async fn watch_pods(self: Arc<Self>, synced: watch::Sender<bool>) {
        let api: Api<Lean<Pod>> = Api::all(self.client.clone());
        let mut stream = lean::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => seen.clear(),
                Ok(Event::InitApply(p)) => {
                    seen.insert(pod_key(&p));
                    self.on_pod(p);
                }
                Ok(Event::InitDone) => {
                    let stale: Vec<String> = lock(&self.cache)
                        .pod_keys()
                        .into_iter()
                        .filter(|k| !seen.contains(k))
                        .collect();
                    for k in stale {
                        if !lock(&self.cache).is_assumed(&k) {
                            self.on_pod_deleted(&k, true);
                        }
                    }
                    let _ = synced.send(true);
                }
                Ok(Event::Apply(p)) => self.on_pod(p),
                Ok(Event::Delete(p)) => self.on_pod_deleted(&pod_key(&p), assigned(&p)),
                Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            }
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(
        self: Arc<Self>,
        explain_listen: Option<SocketAddr>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SchedulerError> {
        let mut tasks = Vec::new();
        if let Some(addr) = explain_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| SchedulerError::Explain { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| SchedulerError::Explain { addr, source })?;
            let router = explain::router(self.explanations.clone());
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            }));
            // An unspecified address is reachable on loopback.
            let host = if bound.ip().is_unspecified() {
                std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
            } else {
                bound
            };
            let url = format!("http://{host}");
            let holder = format!("ferrokube-scheduler-{}", std::process::id());
            let client = self.client.clone();
            tasks.push(tokio::spawn(async move {
                // The API server may still be starting: retry until it answers.
                loop {
                    match explain::publish(&client, &url, &holder).await {
                        Ok(()) => {
                            tracing::info!(%url, "explanations endpoint published");
                            return;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "cannot publish explanations endpoint yet")
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }
        let (node_tx, mut node_rx) = watch::channel(false);
        let (pod_tx, mut pod_rx) = watch::channel(false);
        tasks.push(tokio::spawn(self.clone().watch_nodes(node_tx)));
        tasks.push(tokio::spawn(self.clone().watch_pods(pod_tx)));
        let rx = lock(&self.events_rx).take();
        if let Some(rx) = rx {
            tasks.push(tokio::spawn(self.clone().send_events(rx)));
        }
        let flusher = self.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                flusher.queue.flush();
            }
        }));
        let this = self.clone();
        let main = async move {
            let _ = node_rx.wait_for(|s| *s).await;
            let _ = pod_rx.wait_for(|s| *s).await;
            tracing::info!("scheduler caches synced; scheduling");
            while let Some(item) = this.queue.pop().await {
                this.clone().schedule_one(item.pod, item.key).await;
            }
        };
        tokio::select! {
            _ = main => {}
            _ = shutdown => {}
        }
        self.queue.close();
        for t in tasks {
            t.abort();
        }
        Ok(())
    }

    /// One scheduling cycle for one pod.
    pub async fn schedule_one(self: Arc<Self>, pod: Arc<Pod>, key: String) {
        let Some(fw) = self
            .frameworks
            .iter()
            .find(|f| f.scheduler_name == scheduler_name(&pod))
        else {
            self.queue.delete(&key);
            return;
        };
        let nodes = lock(&self.cache).snapshot();
        let mut explanation = Explanation {
            pod: key.clone(),
            profile: fw.scheduler_name.clone(),
            time: jiff::Timestamp::now().to_string(),
            ..Explanation::default()
        };
        let result = {
            let mut start = lock(&self.next_start);
            fw.schedule(&pod, &nodes, &mut start, &mut rand::rng(), &mut explanation)
        };
        match result {
            Ok(res) => {
                // Released first so assuming does not copy the node list.
                drop(nodes);
                self.explanations.record(key.clone(), explanation);
                lock(&self.cache).assume(&pod, &res.node);
                self.queue.delete(&key);
                let Ok(permit) = self.binds.clone().acquire_owned().await else {
                    return;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    this.bind(pod, key, res.node).await;
                    drop(permit);
                });
            }
            Err(ScheduleError::Fit(mut fit)) => {
                let mut nominated = None;
                if fw.preemption {
                    match preemption::preempt(fw, &pod, &nodes, &fit) {
                        Outcome::NotPossible(msg) if !msg.is_empty() => {
                            fit.post_filter_msg = Some(msg)
                        }
                        Outcome::NotPossible(_) => {}
                        Outcome::Preempt { node, victims } => {
                            self.evict(&pod, &victims).await;
                            nominated = Some(node);
                        }
                    }
                }
                let message = fit.message();
                explanation.message = Some(message.clone());
                self.explanations.record(key.clone(), explanation);
                self.queue.unschedulable(&key);
                self.report_failure(
                    &pod,
                    report::REASON_UNSCHEDULABLE,
                    &message,
                    nominated.as_deref(),
                )
                .await;
            }
            Err(ScheduleError::Plugin(status)) => {
                let message = format!(
                    "running plugin {:?}: {}",
                    status.plugin.as_deref().unwrap_or(""),
                    status.message()
                );
                explanation.message = Some(message.clone());
                self.explanations.record(key.clone(), explanation);
                self.queue.backoff(&key);
                self.report_failure(&pod, report::REASON_SCHEDULER_ERROR, &message, None)
                    .await;
            }
        }
    }

    async fn report_failure(
        &self,
        pod: &Pod,
        reason: &str,
        message: &str,
        nominated: Option<&str>,
    ) {
        tracing::info!(pod = %pod_key(pod), %message, "unable to schedule pod");
        if let Err(e) =
            report::set_unschedulable(&self.client, pod, reason, message, nominated).await
        {
            tracing::warn!(pod = %pod_key(pod), error = %e, "cannot update PodScheduled condition");
        }
        if let Err(e) = self
            .recorder
            .event(
                &self.client,
                pod,
                "Warning",
                report::EVENT_FAILED_SCHEDULING,
                message,
            )
            .await
        {
            tracing::warn!(pod = %pod_key(pod), error = %e, "cannot record FailedScheduling event");
        }
    }

    /// Deletes preemption victims; the deletions requeue the preemptor.
    async fn evict(&self, preemptor: &Pod, victims: &[Arc<Pod>]) {
        for v in victims {
            let ns = v.metadata.namespace.as_deref().unwrap_or("default");
            let name = v.metadata.name.as_deref().unwrap_or("");
            let msg = format!(
                "Preempted by pod {} on node {}",
                preemptor.metadata.uid.as_deref().unwrap_or(""),
                v.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .unwrap_or("")
            );
            tracing::info!(victim = %pod_key(v), priority = pod_priority(v), "preempting");
            let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            if let Err(e) = api.delete(name, &DeleteParams::default()).await {
                tracing::warn!(victim = %pod_key(v), error = %e, "cannot preempt");
                continue;
            }
            let _ = self
                .recorder
                .event(&self.client, v, "Normal", "Preempted", &msg)
                .await;
        }
    }

    /// `POST pods/<name>/binding`; on failure the assumed pod is forgotten
    /// and the pod backs off.
    async fn bind(self: Arc<Self>, pod: Arc<Pod>, key: String, node: String) {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..ObjectReference::default()
            },
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let res: Result<serde_json::Value, kube::Error> = api
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await;
        match res {
            Ok(_) => {
                let message = format!("Successfully assigned {ns}/{name} to {node}");
                if self
                    .events
                    .try_send(ScheduledEvent { pod, message })
                    .is_err()
                {
                    tracing::debug!(pod = %key, "event queue full; Scheduled event dropped");
                }
            }
            Err(e) => {
                tracing::warn!(pod = %key, %node, error = %e, "binding failed");
                lock(&self.cache).forget(&key);
                let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
                if gone {
                    self.queue.delete(&key);
                } else {
                    self.queue.add(pod.clone());
                    self.queue.backoff(&key);
                    let message = format!("binding rejected: {e}");
                    self.report_failure(&pod, report::REASON_SCHEDULER_ERROR, &message, None)
                        .await;
                }
            }
        }
    }

    /// Sends queued `Scheduled` events, a few at a time, off the
    /// scheduling and binding paths.
    async fn send_events(self: Arc<Self>, mut rx: mpsc::Receiver<ScheduledEvent>) {
        let permits = Arc::new(Semaphore::new(EVENT_CONCURRENCY));
        while let Some(ev) = rx.recv().await {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let res = this
                    .recorder
                    .event(
                        &this.client,
                        &ev.pod,
                        "Normal",
                        report::EVENT_SCHEDULED,
                        &ev.message,
                    )
                    .await;
                if let Err(e) = res {
                    tracing::debug!(pod = %pod_key(&ev.pod), error = %e, "cannot record Scheduled event");
                }
                drop(permit);
            });
        }
    }

    /// How many nodes the cache holds (for readiness checks and tests).
    pub fn node_count(&self) -> usize {
        lock(&self.cache).node_count()
    }

    /// Queue sizes: (active, backoff, unschedulable, in flight).
    pub fn queue_counts(&self) -> (usize, usize, usize, usize) {
        self.queue.counts()
    }
}

/// The `ferrokube scheduler` component: connects with `kubeconfig`, builds
/// the profiles from `config` (the default profile without one) and
/// schedules until `shutdown`. With `wait_for_apiserver` it first waits for
/// the API server to answer (in-process under `ferrokube up`).
pub async fn run_component(
    kubeconfig: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
    explain_listen: Option<SocketAddr>,
    wait_for_apiserver: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SchedulerError> {
    let cfg = match config {
        Some(path) => crate::framework::config::KubeSchedulerConfiguration::from_file(path)?,
        None => crate::framework::config::KubeSchedulerConfiguration::default(),
    };
    let frameworks = cfg.build()?;
    let client = client::connect(kubeconfig).await?;
    if wait_for_apiserver {
        while client.apiserver_version().await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Scheduler::new(client, frameworks)
        .run(explain_listen, shutdown)
        .await
}
