//! A private containerd, as k3s runs one: when no `--containerd-socket` is
//! given, the kubelet writes `DATA_DIR/containerd/config.toml` (root, state,
//! socket all under the data dir, the CRI plugin off since we speak the
//! containerd API ourselves), starts `containerd` on it, waits for the
//! socket, and stops it (SIGTERM, then SIGKILL) when dropped or shut down.
//! A kubelet that was SIGKILLed leaves its containerd running (holding the
//! metadata database's lock, so a second daemon on the same root would
//! hang): the next start stops that one first. The shims, and so the
//! containers, outlive both; the new daemon reconnects to them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("containerd exited before its socket {socket} appeared ({status})")]
    Exited {
        socket: PathBuf,
        status: std::process::ExitStatus,
    },
    #[error("containerd socket {socket} did not appear within {timeout:?}")]
    Timeout { socket: PathBuf, timeout: Duration },
}

/// Where a private containerd keeps its files.
#[derive(Debug, Clone)]
pub struct DaemonPaths {
    pub dir: PathBuf,
}

impl DaemonPaths {
    pub fn new(data_dir: &Path) -> DaemonPaths {
        DaemonPaths {
            dir: data_dir.join("containerd"),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }
    /// The `runc --root` for our containers, so they never mix with the
    /// host's runc state.
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }
}

/// The config file text (containerd 1.6 config version 2).
pub fn config_toml(paths: &DaemonPaths) -> String {
    let d = paths.dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = "{d}/debug.sock"
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
    )
}

/// A running private containerd.
pub struct Daemon {
    child: Child,
    pub paths: DaemonPaths,
}

impl Daemon {
    /// Writes the config and starts `binary` (normally `containerd`).
    pub async fn start(binary: &str, data_dir: &Path) -> Result<Daemon, DaemonError> {
        let paths = DaemonPaths::new(data_dir);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DaemonError::Io { path, source }
        };
        std::fs::create_dir_all(&paths.dir).map_err(io(&paths.dir))?;
        std::fs::create_dir_all(paths.runc_root()).map_err(io(&paths.runc_root()))?;
        std::fs::write(paths.config(), config_toml(&paths)).map_err(io(&paths.config()))?;
        stop_stale(&paths.config()).await;
        let socket = paths.socket();
        // A socket file left by a crashed daemon would fool the wait below.
        match std::fs::remove_file(&socket) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&socket)(e)),
        }
        let log_path = paths.dir.join("containerd.log");
        let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
        let log_err = log.try_clone().map_err(io(&log_path))?;
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(paths.config())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| DaemonError::Spawn {
                binary: binary.into(),
                source,
            })?;
        let timeout = Duration::from_secs(20);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(DaemonError::Exited { socket, status });
            }
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DaemonError::Timeout { socket, timeout });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(socket = %socket.display(), "private containerd started");
        Ok(Daemon { child, paths })
    }

    /// SIGTERM, up to 10 s to exit, then SIGKILL. Containers keep running
    /// in their shims, so a restarted kubelet re-adopts them.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // ESRCH: already gone, which is what we want.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// Whether `argv` (NUL-separated, as `/proc/<pid>/cmdline`) runs a
/// daemon on `config`: `--config <config>` among its arguments.
pub fn runs_config(cmdline: &[u8], config: &Path) -> bool {
    let config = config.as_os_str().as_encoded_bytes();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.windows(2)
        .any(|pair| pair[0] == b"--config" && pair[1] == config)
}

/// Live (not zombie) processes whose command line runs on `config`.
fn daemons_on(config: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            (runs_config(&cmdline, config) && !has_exited(pid)).then_some(pid)
        })
        .collect()
}

/// Gone, or a zombie: exited (its locks released) but awaiting a reaper
/// that may never come (PID 1 of a container need not reap).
fn has_exited(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state == 'Z')
        })
        .unwrap_or(true)
}

/// Stops a daemon a previous kubelet left on `config`: SIGTERM, up to
/// 10 s, then SIGKILL.
async fn stop_stale(config: &Path) {
    let stale = daemons_on(config);
    if stale.is_empty() {
        return;
    }
    tracing::info!(pids = ?stale, "stopping the containerd a previous kubelet left running");
    for pid in &stale {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let exited = |limit: Duration| {
        let stale = &stale;
        async move {
            let deadline = tokio::time::Instant::now() + limit;
            while tokio::time::Instant::now() < deadline {
                if stale.iter().all(|pid| has_exited(*pid)) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    };
    if exited(Duration::from_secs(10)).await {
        return;
    }
    for pid in &stale {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    if !exited(Duration::from_secs(5)).await {
        tracing::warn!(pids = ?stale, "a stale containerd survived SIGKILL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_everything_under_the_data_dir() {
        let paths = DaemonPaths::new(Path::new("/var/lib/fk"));
        let text = config_toml(&paths);
        assert!(text.contains("root = \"/var/lib/fk/containerd/root\""));
        assert!(text.contains("state = \"/var/lib/fk/containerd/state\""));
        assert!(text.contains("address = \"/var/lib/fk/containerd/containerd.sock\""));
        assert!(text.contains("io.containerd.grpc.v1.cri"));
        assert_eq!(
            paths.socket(),
            Path::new("/var/lib/fk/containerd/containerd.sock")
        );
    }

    #[test]
    fn a_stale_daemon_is_recognised_by_its_config_argument_only() {
        let config = Path::new("/var/lib/fk/containerd/config.toml");
        assert!(runs_config(
            b"containerd\0--config\0/var/lib/fk/containerd/config.toml\0",
            config
        ));
        assert!(!runs_config(
            b"containerd\0--config\0/var/lib/other/containerd/config.toml\0",
            config
        ));
        // Another process merely naming the file is not the daemon.
        assert!(!runs_config(
            b"cat\0/var/lib/fk/containerd/config.toml\0",
            config
        ));
    }
}
