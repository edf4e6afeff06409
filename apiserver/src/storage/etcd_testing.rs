//! A real, throw-away etcd server for tests and benchmarks: `/usr/bin/etcd`
//! on free loopback ports with its data in a fresh temporary directory,
//! killed and cleaned up on drop. Used by the storage conformance suite, the
//! end-to-end tests and the benchmarks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd gets to answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts with fresh ports, in case another process took a port between
/// our probe and etcd's bind.
const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum EtcdProcessError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("etcd exited during startup ({status}); its log: {log}")]
    Exited { status: String, log: String },
    #[error("etcd did not become healthy within {0:?}")]
    Timeout(Duration),
}

/// A running etcd; `endpoint` is its client URL (`http://127.0.0.1:port`).
#[derive(Debug)]
pub struct EtcdProcess {
    pub endpoint: String,
    child: Child,
    data_dir: PathBuf,
}

impl EtcdProcess {
    /// Starts `/usr/bin/etcd` (or `$FERROKUBE_ETCD_BIN`) and waits until it
    /// is healthy.
    pub fn start() -> Result<EtcdProcess, EtcdProcessError> {
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            match Self::start_once() {
                Ok(process) => return Ok(process),
                Err(error @ EtcdProcessError::Exited { .. }) => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(EtcdProcessError::Timeout(START_TIMEOUT)))
    }

    fn start_once() -> Result<EtcdProcess, EtcdProcessError> {
        let binary = std::env::var("FERROKUBE_ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into());
        let data_dir = std::env::temp_dir().join(format!(
            "ferrokube-etcd-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&data_dir).map_err(|source| EtcdProcessError::Io {
            action: "creating",
            path: data_dir.clone(),
            source,
        })?;
        let log_path = data_dir.join("etcd.log");
        let log = std::fs::File::create(&log_path).map_err(|source| EtcdProcessError::Io {
            action: "creating",
            path: log_path.clone(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| EtcdProcessError::Io {
            action: "duplicating",
            path: log_path.clone(),
            source,
        })?;
        let client = format!("http://127.0.0.1:{}", free_port()?);
        let peer = format!("http://127.0.0.1:{}", free_port()?);
        let child = Command::new(&binary)
            .arg("--name=ferrokube-test")
            .arg(format!("--data-dir={}", data_dir.join("data").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=ferrokube-test={peer}"))
            .arg("--initial-cluster-state=new")
            // Idle watches then hear the revision every few seconds, as
            // embedded-store watches do.
            .arg("--experimental-watch-progress-notify-interval=5s")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| EtcdProcessError::Io {
                action: "starting",
                path: PathBuf::from(&binary),
                source,
            })?;
        let mut process = EtcdProcess {
            endpoint: client,
            child,
            data_dir,
        };
        process.wait_healthy(&log_path)?;
        Ok(process)
    }

    fn wait_healthy(&mut self, log_path: &Path) -> Result<(), EtcdProcessError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr: SocketAddr = self
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .map_err(|_| EtcdProcessError::Timeout(START_TIMEOUT))?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(EtcdProcessError::Exited {
                    status: status.to_string(),
                    log: std::fs::read_to_string(log_path).unwrap_or_default(),
                });
            }
            if healthy(addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(EtcdProcessError::Timeout(START_TIMEOUT))
    }
}

/// etcd's `/health` endpoint answers `{"health":"true"}` once it has a leader.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

fn free_port() -> Result<u16, EtcdProcessError> {
    let io = |source| EtcdProcessError::Io {
        action: "binding",
        path: PathBuf::from("127.0.0.1:0"),
        source,
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    Ok(listener.local_addr().map_err(io)?.port())
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        // Already exited is fine: we only want it gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}
