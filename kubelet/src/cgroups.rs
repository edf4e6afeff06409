//! The kubelet's pod cgroups, on cgroup v1 (one hierarchy per controller,
//! `/sys/fs/cgroup/<controller>/...`, this machine) and v2 (the unified
//! hierarchy, `/sys/fs/cgroup/...`, most current hosts), chosen by probing
//! the host: v2 when the root has `cgroup.controllers`.
//!
//! runc creates `<parent>/pod<uid>/<container>` and removes the container
//! level on delete; the pod level is ours: created with the pod's limits
//! (Kubernetes' pod cgroup: memory and CPU quota the sums of the
//! containers' limits when every container has one, CPU shares/weight from
//! the requests) and removed on teardown. OOM kills are read from
//! `memory.oom_control` (v1) or `memory.events` (v2). The root is
//! injectable, so unit tests run both layouts on a temp directory.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use crate::quantity::{cpu_millis, memory_bytes};
use crate::spec::CPU_PERIOD;

/// Where cgroups are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {source}")]
pub struct CgroupError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The host's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    V1 { root: PathBuf },
    V2 { root: PathBuf },
}

/// The pod cgroup's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodLimits {
    pub memory_bytes: Option<i64>,
    /// CFS quota per [`CPU_PERIOD`].
    pub cpu_quota: Option<i64>,
    /// cgroup v1 `cpu.shares` (2 for no request).
    pub cpu_shares: u64,
}

/// Kubernetes' pod-level resources: limits only when every container has
/// one (otherwise the pod is unbounded), shares from the requests.
pub fn pod_limits(pod: &Pod) -> PodLimits {
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    let (mut memory, mut cpu, mut shares_millis) = (Some(0i64), Some(0i64), 0i64);
    for c in containers {
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let limit = |name: &str| limits.and_then(|l| l.get(name)).map(|q| q.0.clone());
        memory = memory
            .zip(limit("memory").and_then(|q| memory_bytes(&q)))
            .map(|(a, b)| a + b);
        let cpu_limit = limit("cpu").and_then(|q| cpu_millis(&q));
        cpu = cpu.zip(cpu_limit).map(|(a, b)| a + b);
        // A request defaults to the limit.
        let request = requests
            .and_then(|r| r.get("cpu"))
            .and_then(|q| cpu_millis(&q.0))
            .or(cpu_limit);
        shares_millis += request.unwrap_or(0);
    }
    let empty = pod.spec.as_ref().is_none_or(|s| s.containers.is_empty());
    PodLimits {
        memory_bytes: memory.filter(|_| !empty),
        cpu_quota: cpu
            .filter(|_| !empty)
            .map(|m| (m * CPU_PERIOD as i64 / 1000).max(1000)),
        cpu_shares: ((shares_millis * 1024) / 1000).max(2) as u64,
    }
}

/// runc's and Kubernetes' shares → weight conversion
/// (`[2, 262144]` onto `[1, 10000]`).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// The `oom_kill` count of a v1 `memory.oom_control` or v2
/// `memory.events` file (both carry an `oom_kill N` line).
pub fn oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError {
        path: path.to_path_buf(),
        source,
    })
}

impl Hierarchy {
    /// Probes the host.
    pub fn detect() -> Hierarchy {
        Hierarchy::detect_at(Path::new(CGROUP_ROOT))
    }

    /// Probes a hierarchy mounted at `root`.
    pub fn detect_at(root: &Path) -> Hierarchy {
        if root.join("cgroup.controllers").exists() {
            Hierarchy::V2 {
                root: root.to_path_buf(),
            }
        } else {
            Hierarchy::V1 {
                root: root.to_path_buf(),
            }
        }
    }

    /// The pod cgroup's directory in every hierarchy (one per v1
    /// controller).
    pub fn pod_dirs(&self, parent: &str, uid: &str) -> Vec<PathBuf> {
        let relative = format!("{}/pod{uid}", parent.trim_matches('/'));
        match self {
            Hierarchy::V2 { root } => vec![root.join(relative)],
            Hierarchy::V1 { root } => std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|c| c.path().join(&relative))
                .collect(),
        }
    }

    /// Creates the pod cgroup with its limits.
    pub fn ensure_pod(
        &self,
        parent: &str,
        uid: &str,
        limits: &PodLimits,
    ) -> Result<(), CgroupError> {
        let relative = format!("{}/pod{uid}", parent.trim_matches('/'));
        let mkdir = |dir: &Path| {
            std::fs::create_dir_all(dir).map_err(|source| CgroupError {
                path: dir.to_path_buf(),
                source,
            })
        };
        match self {
            Hierarchy::V2 { root } => {
                // Controllers must be enabled down the path for the pod's
                // cgroup to have their files.
                let mut dir = root.clone();
                for part in std::iter::once("").chain(parent.trim_matches('/').split('/')) {
                    dir = if part.is_empty() { dir } else { dir.join(part) };
                    mkdir(&dir)?;
                    write(&dir.join("cgroup.subtree_control"), "+cpu +memory +pids")?;
                }
                let pod = root.join(&relative);
                mkdir(&pod)?;
                let memory = limits
                    .memory_bytes
                    .map_or_else(|| "max".to_string(), |b| b.to_string());
                write(&pod.join("memory.max"), &memory)?;
                let quota = limits
                    .cpu_quota
                    .map_or_else(|| "max".to_string(), |q| q.to_string());
                write(&pod.join("cpu.max"), &format!("{quota} {CPU_PERIOD}"))?;
                write(
                    &pod.join("cpu.weight"),
                    &shares_to_weight(limits.cpu_shares).to_string(),
                )?;
            }
            Hierarchy::V1 { root } => {
                let memory = root.join("memory").join(&relative);
                mkdir(&memory)?;
                if let Some(bytes) = limits.memory_bytes {
                    write(&memory.join("memory.limit_in_bytes"), &bytes.to_string())?;
                }
                let cpu = root.join("cpu").join(&relative);
                mkdir(&cpu)?;
                write(&cpu.join("cpu.shares"), &limits.cpu_shares.to_string())?;
                if let Some(quota) = limits.cpu_quota {
                    write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD.to_string())?;
                    write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Removes the pod cgroup (container cgroups runc left first); best
    /// effort: EBUSY while the last processes are reaped is retried, as
    /// runc does.
    pub async fn remove_pod(&self, parent: &str, uid: &str) {
        for dir in self.pod_dirs(parent, uid) {
            remove_children(&dir);
            let mut delay = std::time::Duration::from_millis(10);
            for attempt in 0..6 {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if attempt == 5 => {
                        tracing::warn!(path = %dir.display(), error = %e, "cannot remove pod cgroup");
                    }
                    Err(_) => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
    }

    /// A single blocking pass of [`Hierarchy::remove_pod`].
    pub fn remove_pod_now(&self, parent: &str, uid: &str) {
        for dir in self.pod_dirs(parent, uid) {
            remove_children(&dir);
            let _ = std::fs::remove_dir(&dir);
        }
    }

    /// Whether the memory controller OOM-killed a process of the cgroup at
    /// `cgroups_path`.
    pub fn oom_killed(&self, cgroups_path: &str) -> bool {
        let relative = cgroups_path.trim_start_matches('/');
        let file = match self {
            Hierarchy::V1 { root } => root
                .join("memory")
                .join(relative)
                .join("memory.oom_control"),
            Hierarchy::V2 { root } => root.join(relative).join("memory.events"),
        };
        std::fs::read_to_string(file).is_ok_and(|text| oom_kills(&text) > 0)
    }
}

/// cgroup directories are removed with rmdir, never recursively.
fn remove_children(dir: &Path) {
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.path().is_dir() {
            let _ = std::fs::remove_dir(child.path());
        }
    }
}

/// [`Hierarchy::remove_pod`] on the host's hierarchy.
pub async fn remove_pod(parent: &str, uid: &str) {
    Hierarchy::detect().remove_pod(parent, uid).await;
}

/// [`Hierarchy::remove_pod`] under a v1 root (tests use a tempdir).
pub async fn remove_pod_under(root: &Path, parent: &str, uid: &str) {
    Hierarchy::detect_at(root).remove_pod(parent, uid).await;
}

/// [`Hierarchy::remove_pod_now`] on the host's hierarchy.
pub fn remove_pod_now(parent: &str, uid: &str) {
    Hierarchy::detect().remove_pod_now(parent, uid);
}

/// [`Hierarchy::oom_killed`] on the host's hierarchy.
pub fn oom_killed(cgroups_path: &str) -> bool {
    Hierarchy::detect().oom_killed(cgroups_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "p"}, "spec": {"containers": containers}}),
        )
        .expect("pod")
    }

    #[test]
    fn oom_kills_are_read_from_v1_and_v2_files() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            oom_kills("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n"),
            1
        );
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
    }

    #[test]
    fn pod_limits_sum_containers_only_when_all_have_one() {
        let limited = pod(serde_json::json!([
            {"name": "a", "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}},
            {"name": "b", "resources": {"limits": {"memory": "32Mi", "cpu": "250m"}, "requests": {"cpu": "100m"}}},
        ]));
        assert_eq!(
            pod_limits(&limited),
            PodLimits {
                memory_bytes: Some(96 << 20),
                cpu_quota: Some(75_000),
                cpu_shares: 614,
            }
        );
        let mixed = pod(serde_json::json!([
            {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
            {"name": "b"},
        ]));
        assert_eq!(
            pod_limits(&mixed),
            PodLimits {
                memory_bytes: None,
                cpu_quota: None,
                cpu_shares: 2,
            }
        );
    }

    #[test]
    fn shares_map_onto_weights_as_runc_does() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[tokio::test]
    async fn a_v2_host_gets_memory_max_cpu_max_and_cpu_weight() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids").expect("write");
        let h = Hierarchy::detect_at(root.path());
        assert!(matches!(h, Hierarchy::V2 { .. }));
        let limits = PodLimits {
            memory_bytes: Some(64 << 20),
            cpu_quota: Some(50_000),
            cpu_shares: 512,
        };
        h.ensure_pod("/ferrokube", "u1", &limits).expect("ensure");
        let pod = root.path().join("ferrokube/podu1");
        let read = |f: &str| std::fs::read_to_string(pod.join(f)).expect(f);
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("cpu.weight"), "20");
        assert_eq!(
            std::fs::read_to_string(root.path().join("ferrokube/cgroup.subtree_control"))
                .expect("subtree"),
            "+cpu +memory +pids"
        );
        h.ensure_pod("/ferrokube", "u2", &PodLimits::default())
            .expect("ensure");
        let unbounded = root.path().join("ferrokube/podu2");
        assert_eq!(
            std::fs::read_to_string(unbounded.join("memory.max")).expect("max"),
            "max"
        );
        assert_eq!(
            std::fs::read_to_string(unbounded.join("cpu.max")).expect("cpu"),
            "max 100000"
        );

        let container = pod.join("c1");
        std::fs::create_dir_all(&container).expect("mkdir");
        std::fs::write(container.join("memory.events"), "oom 1\noom_kill 1\n").expect("events");
        assert!(h.oom_killed("/ferrokube/podu1/c1"));
        assert!(!h.oom_killed("/ferrokube/podu2/c1"));
        // A real cgroupfs has no regular files to delete; the fake does.
        for f in ["memory.max", "cpu.max", "cpu.weight"] {
            std::fs::remove_file(pod.join(f)).expect("rm");
        }
        std::fs::remove_file(container.join("memory.events")).expect("rm");
        h.remove_pod("/ferrokube", "u1").await;
        assert!(
            !pod.exists(),
            "the pod cgroup and its container cgroups are removed"
        );
    }

    #[tokio::test]
    async fn a_v1_host_gets_per_controller_limits_and_cleanup() {
        let root = tempfile::tempdir().expect("tempdir");
        for controller in ["cpu", "memory", "pids"] {
            std::fs::create_dir_all(root.path().join(controller)).expect("mkdir");
        }
        let h = Hierarchy::detect_at(root.path());
        assert!(matches!(h, Hierarchy::V1 { .. }));
        let limits = PodLimits {
            memory_bytes: Some(1 << 20),
            cpu_quota: Some(20_000),
            cpu_shares: 256,
        };
        h.ensure_pod("/ferrokube", "u1", &limits).expect("ensure");
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).expect(p);
        assert_eq!(
            read("memory/ferrokube/podu1/memory.limit_in_bytes"),
            "1048576"
        );
        assert_eq!(read("cpu/ferrokube/podu1/cpu.cfs_quota_us"), "20000");
        assert_eq!(read("cpu/ferrokube/podu1/cpu.shares"), "256");
        std::fs::write(
            root.path()
                .join("memory/ferrokube/podu1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        )
        .expect("write");
        assert!(h.oom_killed("/ferrokube/podu1"));
        for f in [
            "memory/ferrokube/podu1/memory.limit_in_bytes",
            "memory/ferrokube/podu1/memory.oom_control",
            "cpu/ferrokube/podu1/cpu.cfs_quota_us",
            "cpu/ferrokube/podu1/cpu.cfs_period_us",
            "cpu/ferrokube/podu1/cpu.shares",
        ] {
            std::fs::remove_file(root.path().join(f)).expect("rm");
        }
        remove_pod_under(root.path(), "/ferrokube", "u1").await;
        assert!(!root.path().join("cpu/ferrokube/podu1").exists());
        assert!(!root.path().join("memory/ferrokube/podu1").exists());
        assert!(root.path().join("cpu/ferrokube").exists());
    }
}
