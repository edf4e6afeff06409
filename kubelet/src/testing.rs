//! Test support shared by the kubelet's and the end-to-end tests: host
//! process scans and an async `eventually`.

/// Host processes whose command line (arguments joined by spaces)
/// contains `text`.
pub fn pids_whose_cmdline_contains(text: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(text)
                .then_some(pid)
        })
        .collect()
}

/// Whether a host process's command line contains `marker`.
pub fn process_running(marker: &str) -> bool {
    !pids_whose_cmdline_contains(marker).is_empty()
}

/// Polls `check` every 200 ms until it yields a value; panics naming
/// `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The UIDs of the pods a kubelet under `data_dir` ran: its network
/// namespaces are named by UID, its pod directories `ns_name_uid`.
fn pod_uids(data_dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let names = |dir: &str| -> Vec<String> {
        std::fs::read_dir(data_dir.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let from_pods = names("pods")
        .into_iter()
        .filter_map(|n| n.rsplit('_').next().map(str::to_string));
    names("netns").into_iter().chain(from_pods).collect()
}

/// Deletes a node's CNI bridge and the kubelet's masquerade table for it.
pub fn remove_bridge(bridge: &str) {
    let _ = std::process::Command::new("ip")
        .args(["link", "delete", bridge])
        .stderr(std::process::Stdio::null())
        .status();
    crate::cni::remove_masquerade(bridge);
}

/// Leaves the host clean after a test's kubelet under `data_dir`, whatever
/// happened to the test: kills its pods' processes (by their cgroups) and
/// every process naming the data dir (the private containerd, the shims),
/// unmounts what lies under the data dir, then removes the pod cgroups.
pub fn clean_host(data_dir: &std::path::Path) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let data = data_dir.to_string_lossy().into_owned();
    let uids = pod_uids(data_dir);
    let hierarchy = crate::cgroups::Hierarchy::detect();
    let sigkill = |pid: u32| {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    };
    for uid in &uids {
        for dir in hierarchy.pod_dirs("/ferrokube", uid) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let procs = std::fs::read_to_string(entry.path().join("cgroup.procs"));
                procs
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .for_each(sigkill);
            }
        }
    }
    pids_whose_cmdline_contains(&data)
        .into_iter()
        .for_each(sigkill);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    for target in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        if target.starts_with(&data) {
            let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    // The killed processes leave their cgroups only once reaped.
    std::thread::sleep(std::time::Duration::from_millis(200));
    for uid in &uids {
        hierarchy.remove_pod_now("/ferrokube", uid);
    }
}

/// Stops a child as an operator would: SIGTERM (a clean shutdown, in which
/// `ferrokube up` also stops its kubelet's containerd), up to 30 s to exit,
/// then SIGKILL.
pub fn terminate(mut child: std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
