//! The kubelet's cgroup parent on the cgroupfs (v1) hierarchies: runc
//! creates `<parent>/pod<uid>/<container>` in each controller and removes
//! the container level on delete; the pod level is ours to remove.

use std::path::Path;

/// Where the v1 controllers are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Removes `<parent>/pod<uid>` from every controller; best effort, since a
/// controller may not have it (or the host may use cgroup v2 only).
pub async fn remove_pod(parent: &str, uid: &str) {
    remove_pod_under(Path::new(CGROUP_ROOT), parent, uid).await;
}

/// As [`remove_pod`], under an explicit hierarchy root (tests use a tempdir).
pub async fn remove_pod_under(root: &Path, parent: &str, uid: &str) {
    let relative = format!("{}/pod{uid}", parent.trim_matches('/'));
    let Ok(controllers) = std::fs::read_dir(root) else {
        return;
    };
    for controller in controllers.flatten() {
        let dir = controller.path().join(&relative);
        // cgroup directories are removed with rmdir, never recursively;
        // EBUSY while the last processes are being reaped is retried, as
        // runc does.
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

/// A single blocking pass of [`remove_pod`], container cgroups first (for
/// cleanup paths that cannot await).
pub fn remove_pod_now(parent: &str, uid: &str) {
    let relative = format!("{}/pod{uid}", parent.trim_matches('/'));
    let Ok(controllers) = std::fs::read_dir(CGROUP_ROOT) else {
        return;
    };
    for controller in controllers.flatten() {
        let dir = controller.path().join(&relative);
        for child in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if child.path().is_dir() {
                let _ = std::fs::remove_dir(child.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

/// Whether the memory controller OOM-killed a process of the cgroup at
/// `cgroups_path` (v1 `memory.oom_control`, `oom_kill N` since Linux 4.13).
pub fn oom_killed(cgroups_path: &str) -> bool {
    let path = Path::new(CGROUP_ROOT)
        .join("memory")
        .join(cgroups_path.trim_start_matches('/'))
        .join("memory.oom_control");
    std::fs::read_to_string(path).is_ok_and(|text| oom_kills(&text) > 0)
}

/// The `oom_kill` count of a `memory.oom_control` file.
pub fn oom_kills(oom_control: &str) -> u64 {
    oom_control
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_are_read_from_oom_control() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), 0);
    }

    #[tokio::test]
    async fn pod_cgroups_are_removed_from_every_controller() {
        let root = tempfile::tempdir().expect("tempdir");
        for controller in ["cpu", "memory"] {
            std::fs::create_dir_all(root.path().join(controller).join("ferrokube/podu1"))
                .expect("mkdir");
        }
        std::fs::create_dir_all(root.path().join("pids")).expect("mkdir");
        remove_pod_under(root.path(), "/ferrokube", "u1").await;
        assert!(!root.path().join("cpu/ferrokube/podu1").exists());
        assert!(!root.path().join("memory/ferrokube/podu1").exists());
        assert!(root.path().join("cpu/ferrokube").exists());
    }
}
