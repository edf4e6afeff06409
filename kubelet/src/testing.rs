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
