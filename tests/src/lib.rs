//! The end-to-end harness: a real `ferrokube up` on a free loopback port,
//! over the embedded store or over a real etcd, driven by the real
//! `kubectl`. Every test runs once per [`Backend`] through [`both_backends!`].

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apiserver::storage::EtcdProcess;

/// How long `ferrokube up` gets to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Fresh ports to try, in case another process took ours between the probe
/// and the server's bind.
const START_ATTEMPTS: usize = 3;

/// The storage the API server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Etcd,
}

/// A running API server with its data directory; everything it started is
/// killed on drop.
pub struct Cluster {
    pub backend: Backend,
    data_dir: tempfile::TempDir,
    addr: SocketAddr,
    child: Option<Child>,
    etcd: Option<EtcdProcess>,
    extra_args: Vec<String>,
    /// Runs the in-process kubelet (see [`Cluster::start_with_kubelet`]).
    kubelet: bool,
}

impl Cluster {
    /// Starts `ferrokube up` (and, for [`Backend::Etcd`], an etcd for it) and
    /// waits until it is ready.
    pub fn start(backend: Backend) -> Cluster {
        Cluster::start_with_args(backend, &[])
    }

    /// Like [`Cluster::start`], with extra `ferrokube up` flags (kept for
    /// restarts).
    pub fn start_with_args(backend: Backend, extra_args: &[&str]) -> Cluster {
        let etcd = match backend {
            Backend::Embedded => None,
            Backend::Etcd => Some(EtcdProcess::start().expect("etcd starts for the test")),
        };
        let data_dir = tempfile::Builder::new()
            .prefix("ferrokube-e2e-")
            .tempdir()
            .expect("a temporary data dir");
        let mut cluster = Cluster {
            backend,
            data_dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            etcd,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            kubelet: false,
        };
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            cluster.addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            match cluster.spawn_and_wait() {
                Ok(()) => return cluster,
                Err(e) => last_error = e,
            }
        }
        panic!("ferrokube up did not become ready: {last_error}");
    }

    /// A cluster whose `ferrokube up` also runs its kubelet (a private
    /// containerd under the data dir, the busybox image imported as
    /// `busybox`), for tests that need real containers. `extra_args` must
    /// make every host-global name unique (`--node-name`, `--cni-bridge`,
    /// `--cluster-cidr`, `--service-cluster-ip-range`, the proxy's chain
    /// prefix). Stop it with [`Cluster::terminate`] so the kubelet stops
    /// its containerd.
    pub fn start_with_kubelet(backend: Backend, extra_args: &[&str]) -> Cluster {
        let etcd = match backend {
            Backend::Embedded => None,
            Backend::Etcd => Some(EtcdProcess::start().expect("etcd starts for the test")),
        };
        let data_dir = tempfile::Builder::new()
            .prefix("ferrokube-e2e-")
            .tempdir()
            .expect("a temporary data dir");
        let images = data_dir.path().join("kubelet").join("images");
        std::fs::create_dir_all(&images).expect("images dir");
        kubelet::busybox_image::write_busybox_image(
            Path::new("/bin/busybox"),
            "docker.io/library/busybox:latest",
            &images.join("busybox.tar"),
        )
        .expect("the busybox image is built");
        let mut cluster = Cluster {
            backend,
            data_dir,
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            child: None,
            etcd,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            kubelet: true,
        };
        if let Err(e) = cluster.spawn_and_wait() {
            panic!("ferrokube up did not become ready: {e}");
        }
        cluster
    }

    /// Stops `ferrokube up` with SIGTERM (a clean shutdown: the kubelet
    /// stops its containerd) and waits for it.
    pub fn terminate(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The kubeconfig `ferrokube up` wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.path().join("kubeconfig")
    }

    /// A scratch directory that lives as long as the cluster.
    pub fn dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's log so far (stdout and stderr of every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("ferrokube.log")).unwrap_or_default()
    }

    /// `kubectl ARGS -o json`, parsed; `None` while kubectl fails (the
    /// object is not there yet).
    pub fn kubectl_json(&self, args: &[&str]) -> Option<serde_json::Value> {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        let out = self.kubectl(&full);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Runs the real kubectl against this server and waits for it.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, None)
    }

    /// Runs kubectl with `stdin` fed to it (for `-f -`).
    pub fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = self.kubectl_command(args);
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("kubectl is on PATH");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("kubectl stdin is piped");
            pipe.write_all(input.as_bytes())
                .expect("kubectl reads its stdin");
        }
        child.wait_with_output().expect("kubectl runs")
    }

    /// Runs kubectl, asserts it succeeded, and returns its stdout.
    #[track_caller]
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert_success(args, &output);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Like [`Cluster::kubectl_ok`], with `stdin` fed to kubectl.
    #[track_caller]
    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        let output = self.kubectl_with_stdin(args, Some(stdin));
        assert_success(args, &output);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs kubectl, asserts it failed, and returns its stderr.
    #[track_caller]
    pub fn kubectl_err(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.kubectl_with_stdin(args, stdin);
        assert!(
            !output.status.success(),
            "kubectl {} should have failed; stdout:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// A kubectl command for this server, not yet started: for watches that
    /// run in the background.
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(kubectl_binary());
        command
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            // Each cluster gets its own discovery cache: ports are reused
            // between runs and the cache would outlive the server.
            .arg("--cache-dir")
            .arg(self.data_dir.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG");
        command
    }

    /// Starts `kubectl get … -w -o json --output-watch-events` in the
    /// background; `args` are the ones after `get`.
    pub fn watch(&self, args: &[&str]) -> KubectlWatch {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-w", "-o", "json", "--output-watch-events"]);
        let mut child = self
            .kubectl_command(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get -w starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, events) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let stream = serde_json::Deserializer::from_reader(BufReader::new(stdout));
            for event in stream.into_iter::<serde_json::Value>() {
                let Ok(event) = event else { break };
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        KubectlWatch {
            child,
            events,
            reader: Some(reader),
        }
    }

    /// SIGKILLs the API server (etcd, if any, keeps running).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the API server again on the same port and data (after
    /// [`Cluster::kill9`], or kills it first).
    pub fn restart(&mut self) {
        self.kill9();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                // The old socket may linger for a moment after SIGKILL.
                Err(e) if Instant::now() < deadline && e.contains("cannot listen") => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("ferrokube did not restart: {e}"),
            }
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self.data_dir.path().join("ferrokube.log");
        let (log, log_err) = appended_log(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let start_of_run = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut command = Command::new(ferrokube_binary());
        command
            .arg("up")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .arg("--listen")
            .arg(self.addr.to_string());
        // Most tests are about the API and the control plane; the kubelet
        // (and its containerd) has tests of its own.
        if !self.kubelet {
            command.arg("--disable-kubelet");
        } else {
            // The Node advertises the port the kubelet API got.
            command.args(["--kubelet-port", "0"]);
        }
        // Concurrent clusters must not fight over fixed ports. DNS listens
        // on every address: pods reach it at the node address the kube-dns
        // endpoints name.
        command
            .arg("--dns-listen")
            .arg("0.0.0.0:0")
            .arg("--ingress-listen")
            .arg("127.0.0.1:0");
        if let Some(etcd) = &self.etcd {
            command.arg("--etcd-servers").arg(&etcd.endpoint);
        }
        command.args(&self.extra_args);
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", ferrokube_binary().display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let this_run = log.get(start_of_run as usize..).unwrap_or(&log);
                return Err(format!("ferrokube exited ({status}); its log:\n{this_run}"));
            }
            if ready(self.addr) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.kill9();
        Err(format!(
            "no /readyz within {READY_TIMEOUT:?}; log:\n{}",
            self.log()
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.kubelet {
            self.terminate();
        } else {
            self.kill9();
        }
        // `etcd` and `data_dir` clean themselves up when dropped.
    }
}

/// A `kubectl get -w` running in the background; killed on drop.
pub struct KubectlWatch {
    child: Child,
    events: mpsc::Receiver<serde_json::Value>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl KubectlWatch {
    /// The next `{"type": …, "object": …}` event kubectl printed.
    #[track_caller]
    pub fn next_event(&self, timeout: Duration) -> serde_json::Value {
        self.events
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no watch event within {timeout:?}: {e}"))
    }

    /// The events that arrive within `wait` (for asserting that none do).
    pub fn drain(&self, wait: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + wait;
        let mut events = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(event) => events.push(event),
                Err(_) => break,
            }
        }
        events
    }
}

impl Drop for KubectlWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[track_caller]
fn assert_success(args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "kubectl {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `GET /readyz` answers `ok` once the API server serves.
fn ready(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

fn kubectl_binary() -> PathBuf {
    std::env::var_os("KUBECTL").map_or_else(|| PathBuf::from("kubectl"), PathBuf::from)
}

/// SIGTERM (a clean shutdown), up to 30 s to exit, then SIGKILL.
pub use kubelet::testing::terminate;

/// The `ferrokube` binary: `$FERROKUBE_BIN`, else the one cargo built next
/// to this test executable (`target/debug/deps/e2e-… → target/debug/`),
/// else built now with `cargo build --bin ferrokube`.
pub fn ferrokube_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("FERROKUBE_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            let candidate = profile_dir.join("ferrokube");
            if candidate.is_file() {
                return candidate;
            }
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ sits in the workspace");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--bin", "ferrokube"])
            .current_dir(workspace)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --bin ferrokube failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace.join("target"), PathBuf::from);
        target.join("debug").join("ferrokube")
    })
}

/// A path under the repository's `manifests/`.
pub fn manifest(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lines of a kubectl table, each split on runs of two or more spaces
/// (the column separator kubectl's printer uses, single spaces stay inside
/// cells like `NOMINATED NODE`).
pub fn table(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split("  ")
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// Defines `mod $name { fn embedded(); fn etcd(); }`, each calling the
/// synchronous `$body(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn embedded() {
                    super::$name($crate::Backend::Embedded);
                }
                #[test]
                fn etcd() {
                    super::$name($crate::Backend::Etcd);
                }
            }
        )+
    };
}

/// Like [`both_backends!`] for `async fn $body(Backend)` on a multi-threaded
/// tokio runtime.
#[macro_export]
macro_rules! both_backends_async {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn embedded() {
                    super::$name($crate::Backend::Embedded).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn etcd() {
                    super::$name($crate::Backend::Etcd).await;
                }
            }
        )+
    };
}

/// A process's log file opened for appending, twice: its standard output
/// and its standard error.
pub fn appended_log(path: &Path) -> std::io::Result<(std::fs::File, std::fs::File)> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let err = out.try_clone()?;
    Ok((out, err))
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn table_splits_columns_on_double_spaces_and_keeps_spaced_headers() {
        let out = "NAME   READY   NOMINATED NODE\nweb    0/1     <none>\n";
        assert_eq!(
            table(out),
            vec![
                vec!["NAME", "READY", "NOMINATED NODE"],
                vec!["web", "0/1", "<none>"]
            ]
        );
    }
}
