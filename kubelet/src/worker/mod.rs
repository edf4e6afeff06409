//! The pod worker: one task per pod bound to this node. It adopts the
//! containers a previous kubelet left running, prepares the sandbox
//! (network namespace and CNI, unless `hostNetwork`), runs the init
//! containers in order ([`init`]), starts containers (then their
//! `postStart` hooks and probe workers, [`probes`]), restarts them per
//! `restartPolicy` with the kubelet's back-off (10 s doubling to 5 min),
//! reports status when it changes, and on deletion stops the containers
//! (preStop, SIGTERM, grace period, SIGKILL), cleans up, and deletes the
//! Pod object with `gracePeriodSeconds=0`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::cni::Cni;
use crate::containers::{self, FoundState, PodRef};
use crate::events::Recorder;
use crate::prober::Report;
use crate::runtime::Runtime;
use crate::spec::Placement;
use crate::status::{self, ContainerRecord, PodFacts, RunState, Terminated};

mod backoff;
mod images;
mod init;
mod probes;
mod sandbox;
mod terminate;

pub use backoff::{BACKOFF_INITIAL, BACKOFF_MAX, go_duration, next_backoff, should_restart};
pub use images::Pulls;

/// Retry delay for sandbox and status errors.
const RETRY: Duration = Duration::from_secs(2);

/// What every pod worker shares.
pub struct NodeContext {
    pub client: Client,
    pub runtime: Runtime,
    pub node_name: String,
    pub host_ip: String,
    pub data_dir: PathBuf,
    pub cni: Option<Cni>,
    /// The cgroup every pod's cgroup lives under (`/ferrokube`).
    pub cgroup_parent: String,
    /// What pods' resolv.conf files are made of.
    pub cluster_dns: crate::dns::ClusterDns,
    pub host_resolv: crate::dns::ResolvConf,
    /// Container output copiers (log files, attach).
    pub logs: Arc<crate::logs::copier::Registry>,
    /// Image pull settings (insecure registries) and serialisation.
    pub pulls: Pulls,
}

struct Slot {
    record: ContainerRecord,
    /// The current attempt's containerd ID, while it exists.
    current: Option<String>,
    backoff: Duration,
    /// The back-off the pending restart waits (for the CrashLoopBackOff message).
    delay: Duration,
    next_start: Option<Instant>,
    probing: Option<probes::Probing>,
}

struct Exit {
    name: String,
    terminated: Terminated,
}

struct Worker {
    ctx: Arc<NodeContext>,
    pod: Arc<Pod>,
    pod_ref: PodRef,
    slots: BTreeMap<String, Slot>,
    netns: Option<PathBuf>,
    pod_ip: Option<String>,
    sandbox_ready: bool,
    /// CNI ADD under way while the first container is created.
    wiring: Option<sandbox::Wiring>,
    /// Why the pod network could not be wired this sync.
    sandbox_error: Option<String>,
    start_time: Timestamp,
    last_status: Option<PodStatus>,
    exits_tx: mpsc::UnboundedSender<Exit>,
    probe_tx: mpsc::UnboundedSender<Report>,
    events: Recorder,
    http: Option<reqwest::Client>,
    /// Every init container has succeeded.
    initialized: bool,
    /// Images whose last pull failed, backing off.
    pull_backoff: images::PullBackoffs,
}

/// Runs a pod until it is deleted; `updates` carries the latest Pod, or
/// `None` once the object is gone from the API.
pub async fn run(ctx: Arc<NodeContext>, mut updates: watch::Receiver<Option<Arc<Pod>>>) {
    let Some(pod) = updates.borrow_and_update().clone() else {
        return;
    };
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let (probe_tx, mut probe_reports) = mpsc::unbounded_channel();
    let meta = &pod.metadata;
    let pod_ref = PodRef {
        uid: meta.uid.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    };
    let mut worker = Worker {
        start_time: pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map_or_else(Timestamp::now, |t| t.0),
        last_status: pod.status.clone(),
        pod_ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
        events: Recorder::new(ctx.client.clone(), ctx.node_name.clone()),
        http: crate::prober::handlers::http_client(),
        ctx,
        pod,
        pod_ref,
        slots: BTreeMap::new(),
        netns: None,
        sandbox_ready: false,
        wiring: None,
        sandbox_error: None,
        exits_tx,
        probe_tx,
        initialized: false,
        pull_backoff: images::PullBackoffs::new(),
    };
    worker.init_slots();
    if let Err(e) = worker.adopt().await {
        tracing::warn!(pod = %worker.pod_ref.name, error = %e, "cannot list existing containers");
    }
    worker.initialized = worker.initialized_before();
    let mut gone = false;
    loop {
        let deleting = worker.pod.metadata.deletion_timestamp.is_some();
        if gone || deleting {
            worker.terminate(&mut exits, gone).await;
            return;
        }
        let wake = worker.sync().await;
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(exit) = exits.recv() => worker.on_exit(exit).await,
            Some(report) = probe_reports.recv() => worker.on_probe(report),
            changed = updates.changed() => match changed {
                Ok(()) => match updates.borrow_and_update().clone() {
                    Some(pod) => worker.pod = pod,
                    None => gone = true,
                },
                Err(_) => gone = true,
            },
            () = sleep => {}
        }
    }
}

impl Worker {
    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    fn init_slots(&mut self) {
        let spec = self.pod.spec.as_ref();
        let init = spec.and_then(|s| s.init_containers.as_ref());
        // Kubernetes' default waiting reason while init containers exist.
        let waiting = if init.is_some_and(|i| !i.is_empty()) {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        for c in spec
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .chain(init.into_iter().flatten())
        {
            let image = c.image.clone().unwrap_or_default();
            self.slots.insert(
                c.name.clone(),
                Slot {
                    record: ContainerRecord {
                        name: c.name.clone(),
                        image_id: crate::image::normalize_reference(&image),
                        image,
                        restart_count: 0,
                        state: RunState::Waiting {
                            reason: waiting.into(),
                            message: None,
                        },
                        last_terminated: None,
                        started: false,
                        ready: false,
                    },
                    current: None,
                    backoff: BACKOFF_INITIAL,
                    delay: Duration::ZERO,
                    next_start: None,
                    probing: None,
                },
            );
        }
    }

    /// Picks up containers a previous kubelet started: running ones are
    /// waited on again, never restarted.
    async fn adopt(&mut self) -> Result<(), crate::runtime::RuntimeError> {
        let found = containers::find(&self.ctx.runtime, &self.pod_ref.uid).await?;
        for f in found {
            // Re-attach to its output; an exited one is drained first.
            let log = crate::logs::log_path(&self.pod_dir().join(&f.name), f.attempt);
            let Some(slot) = self.slots.get_mut(&f.name) else {
                containers::remove(&self.ctx.runtime, &f.id).await?;
                continue;
            };
            // Attempts come oldest first: each newer one demotes the previous.
            if let RunState::Terminated(previous) = &slot.record.state {
                let previous = previous.clone();
                if let Some(older) = slot.record.last_terminated.replace(previous) {
                    containers::remove(&self.ctx.runtime, &older.id).await?;
                }
            }
            slot.record.restart_count = f.attempt;
            slot.current = Some(f.id.clone());
            let copier = self.ctx.logs.resume(&f.id, log);
            match f.state {
                FoundState::Running => {
                    let started_at = f.started_at.unwrap_or_else(Timestamp::now);
                    slot.record.state = RunState::Running {
                        id: f.id.clone(),
                        started_at,
                    };
                    self.watch_exit(f.name.clone(), f.id.clone(), f.started_at);
                    if let Some(c) = self.container_spec(&f.name) {
                        self.start_probes(&c, &f.id, started_at);
                    }
                }
                FoundState::Exited(t) => {
                    if let Some(copier) = copier {
                        let _ = tokio::time::timeout(Duration::from_secs(5), copier).await;
                    }
                    containers::record_exit(&self.ctx.runtime, &t).await?;
                    slot.record.state = RunState::Terminated(t);
                }
                FoundState::Unknown => {
                    containers::remove(&self.ctx.runtime, &f.id).await?;
                    slot.current = None;
                }
            }
        }
        if !self.slots.values().all(|s| s.current.is_none()) {
            tracing::info!(pod = %self.pod_ref.name, "adopted existing containers");
        }
        Ok(())
    }

    fn watch_exit(&self, name: String, id: String, started_at: Option<Timestamp>) {
        let rt = self.ctx.runtime.clone();
        let tx = self.exits_tx.clone();
        let cgroup = format!("{}/pod{}/{id}", self.ctx.cgroup_parent, self.pod_ref.uid);
        tokio::spawn(async move {
            let (code, at) = loop {
                // A stopped kubelet (worker gone) stops waiting; the next one re-adopts.
                let waited = tokio::select! {
                    waited = rt.wait_task(&id) => waited,
                    () = tx.closed() => return,
                };
                match waited {
                    Ok(result) => break result,
                    Err(e) if e.is_not_found() => break (255, None),
                    Err(e) => {
                        tracing::warn!(container = %id, error = %e, "waiting for task failed; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                }
            };
            // The container's cgroup lives until its task is deleted.
            let oom_killed = crate::cgroups::oom_killed(&cgroup);
            let terminated = Terminated {
                id,
                exit_code: code as i32,
                started_at,
                finished_at: Some(at.unwrap_or_else(Timestamp::now)),
                oom_killed,
            };
            let _ = tx.send(Exit { name, terminated });
        });
    }

    async fn on_exit(&mut self, exit: Exit) {
        if let Err(e) = containers::record_exit(&self.ctx.runtime, &exit.terminated).await {
            tracing::warn!(container = %exit.terminated.id, error = %e, "cannot record exit");
        }
        let policy = self.restart_policy();
        self.stop_probes(&exit.name);
        let restart = if self.is_init(&exit.name) {
            init::should_restart_init(&policy, exit.terminated.exit_code)
        } else {
            should_restart(&policy, exit.terminated.exit_code)
        };
        let Some(slot) = self.slots.get_mut(&exit.name) else {
            return;
        };
        if restart {
            let ran_long = exit
                .terminated
                .started_at
                .zip(exit.terminated.finished_at)
                .is_some_and(|(s, f)| f.duration_since(s).as_secs() >= 600);
            // A container that ran 10 minutes resets its back-off.
            if ran_long {
                slot.backoff = BACKOFF_INITIAL;
            }
            let delay = if slot.record.restart_count == 0 && slot.record.last_terminated.is_none() {
                Duration::ZERO
            } else {
                slot.backoff
            };
            slot.next_start = Some(Instant::now() + delay);
            slot.delay = delay;
            if !delay.is_zero() {
                slot.backoff = next_backoff(slot.backoff);
            }
        }
        slot.record.state = RunState::Terminated(exit.terminated);
    }

    /// `DATA_DIR/pods/<namespace>_<name>_<uid>`: logs and volumes.
    fn pod_dir(&self) -> PathBuf {
        self.ctx.data_dir.join("pods").join(format!(
            "{}_{}_{}",
            self.pod_ref.namespace, self.pod_ref.name, self.pod_ref.uid
        ))
    }

    /// Writes `<pod dir>/resolv.conf` for the pod's DNS policy. Host-network
    /// pods that resolve like the host keep the host's own file.
    async fn write_resolv_conf(
        &self,
        pod_dir: &std::path::Path,
    ) -> Result<Option<PathBuf>, containers::ContainerError> {
        let spec = self.pod.spec.as_ref();
        let policy = spec
            .and_then(|s| s.dns_policy.as_deref())
            .unwrap_or("ClusterFirst");
        if self.host_network() && policy != "ClusterFirstWithHostNet" && policy != "None" {
            return Ok(None);
        }
        let conf =
            crate::dns::pod_resolv_conf(&self.pod, &self.ctx.cluster_dns, &self.ctx.host_resolv);
        let path = pod_dir.join("resolv.conf");
        let written = async {
            tokio::fs::create_dir_all(pod_dir).await?;
            tokio::fs::write(&path, conf.render()).await
        };
        written
            .await
            .map_err(|source| containers::ContainerError::ResolvConf {
                path: path.clone(),
                source,
            })?;
        Ok(Some(path))
    }

    fn placement(&self) -> Placement {
        let spec = self.pod.spec.as_ref();
        let hostname = spec
            .and_then(|s| s.hostname.clone())
            .unwrap_or_else(|| self.pod_ref.name.clone());
        let extra_env = vec![("HOSTNAME".to_string(), hostname.clone())];
        Placement {
            mounts: Vec::new(),
            resolv_conf: None,
            netns: self.netns.clone(),
            cgroups_path: format!("{}/pod{}", self.ctx.cgroup_parent, self.pod_ref.uid),
            hostname,
            extra_env,
        }
    }

    /// Starts what should run and reports status; returns when to wake
    /// for the next back-off expiry.
    async fn sync(&mut self) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut sandbox = self.ensure_sandbox().await;
        if sandbox.is_ok() {
            if self.sync_init(&mut wake).await {
                let containers: Vec<_> = self
                    .pod
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter().cloned())
                    .collect();
                for c in containers {
                    self.start_if_due(&c, &mut wake).await;
                }
            }
            // Nothing may have waited for the network (an image pull backing off).
            sandbox = self.finish_wiring().await;
        }
        match sandbox {
            Ok(()) => self.show_crash_loops(),
            Err(message) => {
                tracing::warn!(pod = %self.pod_ref.name, error = %message, "sandbox setup failed");
                for slot in self.slots.values_mut() {
                    if !matches!(slot.record.state, RunState::Running { .. }) {
                        slot.record.state = RunState::Waiting {
                            reason: "ContainerCreating".into(),
                            message: Some(message.clone()),
                        };
                    }
                }
                earliest(&mut wake, Instant::now() + RETRY);
            }
        }
        if !self.report().await {
            earliest(&mut wake, Instant::now() + RETRY);
        }
        wake
    }

    async fn start_container(
        &mut self,
        c: &k8s_openapi::api::core::v1::Container,
        attempt: i32,
        first: bool,
    ) {
        // The pod network failed this sync: nothing could run in it.
        if self.sandbox_error.is_some() {
            return;
        }
        let began = Instant::now();
        let local = match self.ensure_image(c).await {
            Ok(local) => local,
            Err(wait) => {
                if let Some(slot) = self.slots.get_mut(&c.name) {
                    slot.record.state = RunState::Waiting {
                        reason: wait.reason.into(),
                        message: Some(wait.message),
                    };
                    // The image's own back-off, not the container's.
                    slot.next_start = Some(wait.retry_at);
                }
                return;
            }
        };
        tracing::debug!(pod = %self.pod_ref.name, container = %c.name, took = ?began.elapsed(), "image ready");
        if sandbox::needs_pod_ip(c) && self.finish_wiring().await.is_err() {
            return;
        }
        let mut place = self.placement();
        let pod_dir = self.pod_dir();
        let log_dir = pod_dir.join(&c.name);
        let env = crate::env::resolve(
            &self.ctx.client,
            &self.pod,
            c,
            &self.ctx.host_ip,
            self.pod_ip.as_deref(),
        )
        .await;
        let volumes = crate::volumes::mounts(&self.ctx.client, &self.pod, &pod_dir, c).await;
        let resolv = self.write_resolv_conf(&pod_dir).await;
        tracing::debug!(pod = %self.pod_ref.name, container = %c.name, took = ?began.elapsed(), "environment and volumes ready");
        let result = match (env, volumes, resolv) {
            (Err(e), _, _) => Err(containers::ContainerError::Env(e)),
            (_, Err(e), _) => Err(containers::ContainerError::Volume(e)),
            (_, _, Err(e)) => Err(e),
            (Ok(env), Ok(mounts), Ok(resolv)) => {
                place.resolv_conf = resolv;
                place.extra_env.extend(env);
                place.mounts = mounts;
                let rt = &self.ctx.runtime;
                match containers::create(
                    rt,
                    &self.pod,
                    &self.pod_ref,
                    c,
                    &local,
                    attempt,
                    place,
                    log_dir,
                    &self.ctx.logs,
                )
                .await
                {
                    Ok(id) => {
                        tracing::debug!(pod = %self.pod_ref.name, container = %c.name, took = ?began.elapsed(), "container created");
                        // Its process runs only in a wired network.
                        if self.finish_wiring().await.is_err() {
                            if let Err(e) = containers::remove(&self.ctx.runtime, &id).await {
                                tracing::warn!(container = %id, error = %e, "cannot remove container");
                            }
                            return;
                        }
                        tracing::debug!(pod = %self.pod_ref.name, took = ?began.elapsed(), "network wired");
                        let started = containers::start_created(&self.ctx.runtime, &id).await;
                        started.map(|at| (id, at))
                    }
                    Err(e) => Err(e),
                }
            }
        };
        tracing::debug!(pod = %self.pod_ref.name, container = %c.name, took = ?began.elapsed(), "container started");
        let Some(slot) = self.slots.get_mut(&c.name) else {
            return;
        };
        match result {
            Ok((id, started_at)) => {
                if !first {
                    if let Some(t) = terminated_of(&slot.record) {
                        slot.record.last_terminated = Some(t);
                    }
                    // Kubernetes keeps one dead container per container: the newest.
                    if attempt >= 2 {
                        let older =
                            containers::container_id(&self.pod_ref.uid, &c.name, attempt - 2);
                        if let Err(e) = containers::remove(&self.ctx.runtime, &older).await {
                            tracing::warn!(container = %older, error = %e, "cannot remove old container");
                        }
                    }
                }
                slot.record.restart_count = attempt;
                slot.record.state = RunState::Running {
                    id: id.clone(),
                    started_at,
                };
                slot.current = Some(id.clone());
                slot.next_start = None;
                self.watch_exit(c.name.clone(), id.clone(), Some(started_at));
                self.after_start(c, &id, started_at).await;
            }
            Err(e) => {
                tracing::warn!(pod = %self.pod_ref.name, container = %c.name, error = %e, "cannot start container");
                slot.record.state = RunState::Waiting {
                    reason: e.reason().into(),
                    message: Some(e.to_string()),
                };
                slot.next_start = Some(Instant::now() + slot.backoff);
                slot.delay = slot.backoff;
                slot.backoff = next_backoff(slot.backoff);
            }
        }
    }

    /// Patches `pods/<name>/status` if it changed; false on failure.
    async fn report(&mut self) -> bool {
        let records: Vec<ContainerRecord> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .filter_map(|c| self.slots.get(&c.name).map(|s| s.record.clone()))
            .collect();
        let init_records: Vec<ContainerRecord> = self
            .init_containers()
            .iter()
            .filter_map(|c| self.slots.get(&c.name).map(|s| s.record.clone()))
            .collect();
        let facts = PodFacts {
            restart_policy: self.restart_policy(),
            host_ip: self.ctx.host_ip.clone(),
            pod_ip: self.pod_ip.clone(),
            start_time: Some(self.start_time),
            now: None,
            sandbox_ready: self.sandbox_ready,
            initialized: self.initialized,
        };
        let mut status =
            status::pod_status(&init_records, &records, &facts, self.last_status.as_ref());
        status.qos_class = self.pod.status.as_ref().and_then(|s| s.qos_class.clone());
        if self
            .last_status
            .as_ref()
            .is_some_and(|last| same_status(last, &status))
        {
            return true;
        }
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.pod_ref.namespace);
        let patch = json!({ "status": status });
        match pods
            .patch_status(
                &self.pod_ref.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                tracing::debug!(pod = %self.pod_ref.name, phase = ?status.phase, "status patched");
                self.last_status = Some(status);
                true
            }
            Err(e) => {
                tracing::warn!(pod = %self.pod_ref.name, error = %e, "status update failed");
                false
            }
        }
    }
}

/// Moves `wake` earlier to `at`.
pub(super) fn earliest(wake: &mut Option<Instant>, at: Instant) {
    *wake = Some(wake.map_or(at, |w| w.min(at)));
}

fn terminated_of(record: &ContainerRecord) -> Option<Terminated> {
    match &record.state {
        RunState::Terminated(t) => Some(t.clone()),
        RunState::Waiting { .. } | RunState::Running { .. } => None,
    }
    .or_else(|| record.last_terminated.clone())
}

/// Statuses equal up to condition heartbeat noise.
fn same_status(a: &PodStatus, b: &PodStatus) -> bool {
    a.phase == b.phase
        && a.conditions == b.conditions
        && a.container_statuses == b.container_statuses
        && a.init_container_statuses == b.init_container_statuses
        && a.pod_ip == b.pod_ip
        && a.host_ip == b.host_ip
        && a.start_time == b.start_time
}
