//! The kubelet API end to end with the real kubectl: an in-process API
//! server, a kubelet on a private containerd running busybox pods, and
//! `kubectl logs` (`-f`, `--tail`, `--previous`), `exec` (exit codes,
//! piped stdin, an interactive TTY through `script`), `attach` and
//! `port-forward` going API server → kubelet → container.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

const NODE: &str = "stream-node";
const TIMEOUT: Duration = Duration::from_secs(60);

fn pod(name: &str, script: &str, restart_policy: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(NODE.into()),
            restart_policy: Some(restart_policy.into()),
            termination_grace_period_seconds: Some(1),
            containers: vec![Container {
                name: "main".into(),
                image: Some("busybox".into()),
                command: Some(vec!["sh".into(), "-c".into(), script.into()]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// Kills what the kubelet left behind (containerd, shims, containers),
/// unmounts its namespaces and removes its bridge, even when the test
/// fails.
struct HostCleanup {
    data_dir: PathBuf,
    bridge: String,
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        kubelet::testing::clean_host(&self.data_dir);
        kubelet::testing::remove_bridge(&self.bridge);
    }
}

struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut c = Command::new(bin);
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        c
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl finishes")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    kubelet::testing::eventually(what, TIMEOUT, check).await
}

/// Reads lines from a child's stdout until one satisfies `want`.
fn read_until(reader: &mut impl BufRead, want: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        let done = want(line.trim_end());
        lines.push(line.trim_end().to_string());
        if done {
            return lines;
        }
    }
    panic!("the wanted line never came; got {lines:?}");
}

/// The counter's last logged number, read from its log file directly
/// (the kubelet API is down while this is called).
fn kubectl_last_line(data_dir: &Path) -> u64 {
    let pods = std::fs::read_dir(data_dir.join("pods")).expect("pods dir");
    let dir = pods
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("default_counter_")
        })
        .expect("counter pod dir");
    let log = std::fs::read(dir.path().join("main/0.log")).expect("counter log");
    let text = kubelet::logs::cri::plain_text(&log);
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(line_number)
        .max()
        .expect("a counter line")
}

fn line_number(line: &str) -> Option<u64> {
    line.strip_prefix("line ")?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_exec_attach_and_port_forward_reach_real_containers() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("kubelet=info")),
        )
        .with_test_writer()
        .try_init();
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("test server");
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    // The pod network is host-global: a bridge and CIDR of this run's own.
    let pid = std::process::id();
    let bridge = format!("fkst{}", pid % 10_000);
    let _cleanup = HostCleanup {
        data_dir: data_dir.clone(),
        bridge: bridge.clone(),
    };
    std::fs::create_dir_all(data_dir.join("images")).expect("images dir");
    kubelet::busybox_image::write_busybox_image(
        Path::new("/bin/busybox"),
        "docker.io/library/busybox:latest",
        &data_dir.join("images/busybox.tar"),
    )
    .expect("build busybox image");
    let mut config =
        kubelet::KubeletConfig::new(server.kubeconfig.clone(), NODE.into(), data_dir.clone());
    // The API server reaches this kubelet on loopback, at a free port.
    config.node_ip = Some("127.0.0.1".parse().expect("ip"));
    // Second octets 140–189 are this test's (see tests/support).
    config.pod_cidr = Some(format!("10.{}.1.0/24", 140 + pid % 50));
    config.bridge = bridge;
    config.server_addr = "127.0.0.1:0".parse().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let kubelet = tokio::spawn(kubelet::run(config.clone(), async {
        let _ = stopped.await;
    }));

    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let nodes: Api<Node> = Api::all(client.clone());
    let port = eventually("the node to advertise its kubelet port", || async {
        let node = nodes.get_opt(NODE).await.expect("get node")?;
        let port = node.status?.daemon_endpoints?.kubelet_endpoint?.port;
        (port > 0).then_some(port)
    })
    .await;
    assert_ne!(port, 10250, "tests use a free port");

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for p in [
        pod(
            "counter",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done",
            "Always",
        ),
        pod("crasher", "echo crash output; exit 1", "Always"),
        {
            let mut p = pod("reader", "while read l; do echo got:$l; done", "Always");
            if let Some(c) = p.spec.as_mut().and_then(|s| s.containers.first_mut()) {
                c.stdin = Some(true);
            }
            p
        },
        pod(
            "web",
            "echo hello-from-pod > /tmp/index.html; exec httpd -f -p 8080 -h /tmp",
            "Always",
        ),
    ] {
        pods.create(&PostParams::default(), &p)
            .await
            .expect("create pod");
    }
    for name in ["counter", "web", "reader"] {
        eventually(&format!("{name} to run"), || async {
            let p = pods.get_opt(name).await.expect("get")?;
            (p.status?.phase.as_deref() == Some("Running")).then_some(())
        })
        .await;
    }
    let kubectl = Kubectl {
        kubeconfig: server.kubeconfig.clone(),
    };

    // logs, --tail and errors.
    let logs = eventually("counter output", || async {
        let out = kubectl.ok(&["logs", "counter"]);
        (out.lines().count() >= 3).then_some(out)
    })
    .await;
    assert!(logs.starts_with("line 0\nline 1\n"), "{logs}");
    let tail = kubectl.ok(&["logs", "counter", "--tail=2"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| line_number(l).is_some()), "{tail}");
    let stamped = kubectl.ok(&["logs", "counter", "--tail=1", "--timestamps"]);
    let (stamp, rest) = stamped.trim_end().split_once(' ').expect("timestamp");
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamped}");
    assert!(line_number(rest).is_some(), "{stamped}");
    let bad = kubectl.run(&["logs", "counter", "-c", "nope"], None);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("container nope is not valid for pod counter"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let missing = kubectl.run(&["logs", "missing"], None);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("pods \"missing\" not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // logs -f follows lines written after it started.
    let last_seen = logs.lines().filter_map(line_number).max().unwrap_or(0);
    let mut follow = kubectl
        .command(&["logs", "-f", "counter"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("logs -f");
    let mut out = BufReader::new(follow.stdout.take().expect("stdout"));
    let followed = tokio::task::spawn_blocking(move || {
        read_until(&mut out, |l| {
            line_number(l).is_some_and(|n| n > last_seen + 5)
        })
    })
    .await
    .expect("follow");
    assert!(followed.len() > 5);
    let _ = follow.kill();
    let _ = follow.wait();

    // --previous shows the crashed attempt.
    eventually("crasher to restart", || async {
        let p = pods.get_opt("crasher").await.expect("get")?;
        let restarts = p.status?.container_statuses?.first()?.restart_count;
        (restarts >= 1).then_some(())
    })
    .await;
    let previous = kubectl.ok(&["logs", "crasher", "--previous"]);
    assert_eq!(previous, "crash output\n");

    // exec: output, stderr and exit code.
    let out = kubectl.run(
        &[
            "exec",
            "counter",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        kubectl.ok(&["exec", "counter", "--", "hostname"]),
        "counter\n"
    );
    // exec -i with piped stdin, ended by the v5 close signal.
    let piped = kubectl.run(
        &["exec", "-i", "counter", "--", "tr", "a-z", "A-Z"],
        Some("piped data\n"),
    );
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "PIPED DATA\n");

    // The same over SPDY, kubectl's fallback (and older kubectls' only way).
    let mut spdy = kubectl
        .command(&[
            "exec",
            "-i",
            "counter",
            "--",
            "sh",
            "-c",
            "tr a-z A-Z; exit 4",
        ])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exec over SPDY");
    // Taking stdin and dropping it after the write closes it.
    spdy.stdin
        .take()
        .expect("stdin")
        .write_all(b"over spdy\n")
        .expect("stdin");
    let spdy = spdy.wait_with_output().expect("exec over SPDY ends");
    assert_eq!(String::from_utf8_lossy(&spdy.stdout), "OVER SPDY\n");
    assert_eq!(
        spdy.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&spdy.stderr)
    );

    // An interactive TTY shell, kubectl on a pty of script(1).
    let kubeconfig = server.kubeconfig.display().to_string();
    let kubectl_bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let tty = tokio::task::spawn_blocking(move || {
        let inner = format!("{kubectl_bin} --kubeconfig {kubeconfig} exec -it counter -- sh");
        let mut child = Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script runs");
        let mut stdin = child.stdin.take().expect("stdin");
        std::thread::sleep(Duration::from_secs(2));
        stdin
            .write_all(b"tty; echo answer=$((6*7))\n")
            .expect("type");
        std::thread::sleep(Duration::from_secs(1));
        stdin.write_all(b"exit 0\n").expect("type");
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read");
        (child.wait().expect("wait"), out)
    })
    .await
    .expect("tty session");
    assert!(tty.1.contains("answer=42"), "{}", tty.1);
    assert!(tty.1.contains("/dev/pts/"), "{}", tty.1);
    assert!(tty.0.success(), "{}", tty.1);

    // attach streams the container's live output.
    let mut attach = kubectl
        .command(&["attach", "counter"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("attach");
    let mut out = BufReader::new(attach.stdout.take().expect("stdout"));
    let attached =
        tokio::task::spawn_blocking(move || read_until(&mut out, |l| line_number(l).is_some()))
            .await
            .expect("attach output");
    assert!(!attached.is_empty());
    let _ = attach.kill();
    let _ = attach.wait();

    // attach -i writes to the container's stdin.
    let mut attach = kubectl
        .command(&["attach", "-i", "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("attach -i");
    let mut input = attach.stdin.take().expect("stdin");
    let mut out = BufReader::new(attach.stdout.take().expect("stdout"));
    let echoed = tokio::task::spawn_blocking(move || {
        // kubectl may start reading its stdin before the stream is up.
        std::thread::sleep(Duration::from_secs(1));
        input.write_all(b"hello\n").expect("write");
        let lines = read_until(&mut out, |l| l == "got:hello");
        drop(input);
        lines
    })
    .await
    .expect("attach -i output");
    assert_eq!(echoed.last().map(String::as_str), Some("got:hello"));
    let _ = attach.kill();
    let _ = attach.wait();

    // port-forward reaches httpd inside the pod's network namespace, both
    // through the WebSocket tunnel (kubectl's default) and plain SPDY.
    for websockets in ["true", "false"] {
        let mut forward = kubectl
            .command(&["port-forward", "pod/web", ":8080"])
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("port-forward");
        let mut out = BufReader::new(forward.stdout.take().expect("stdout"));
        // Keep reading its stdout: kubectl dies of SIGPIPE on a closed one.
        let (announced, out) = tokio::task::spawn_blocking(move || {
            let lines = read_until(&mut out, |l| l.starts_with("Forwarding from 127.0.0.1:"));
            (lines, out)
        })
        .await
        .expect("port-forward output");
        let _drain = std::thread::spawn(move || {
            let mut out = out;
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        let local: u16 = announced
            .last()
            .and_then(|l| l.strip_prefix("Forwarding from 127.0.0.1:"))
            .and_then(|l| l.split(' ').next())
            .and_then(|p| p.parse().ok())
            .expect("local port");
        for _ in 0..2 {
            let response = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", local))?;
                s.set_read_timeout(Some(TIMEOUT))?;
                s.write_all(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")?;
                let mut response = String::new();
                s.read_to_string(&mut response)?;
                Ok(response)
            })
            .await
            .expect("http");
            let body = match response {
                Ok(body) => body,
                Err(e) => {
                    let _ = forward.kill();
                    let mut stderr = String::new();
                    if let Some(mut err) = forward.stderr.take() {
                        let _ = err.read_to_string(&mut stderr);
                    }
                    panic!("port-forward failed: {e}; kubectl said: {stderr}");
                }
            };
            assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
            assert!(body.ends_with("hello-from-pod\n"), "{body}");
        }
        let _ = forward.kill();
        let _ = forward.wait();
    }

    // The node proxy reaches the kubelet API too.
    let healthz = kubectl.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/healthz"),
    ]);
    assert_eq!(healthz, "ok");
    let summary = kubectl.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/stats/summary"),
    ]);
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("summary json");
    assert_eq!(summary["node"]["nodeName"], NODE);
    assert!(
        summary["pods"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["podRef"]["name"] == "counter"),
        "{summary}"
    );

    // A restarted kubelet re-attaches to the running container's output:
    // what it wrote meanwhile and afterwards still reaches the log.
    let _ = stop.send(());
    let _ = kubelet.await;
    let before = kubectl_last_line(&config.data_dir);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let kubelet = tokio::spawn(kubelet::run(config.clone(), async {
        let _ = stopped.await;
    }));
    let after = eventually("logs to go on after the restart", || async {
        let out = kubectl.run(&["logs", "counter", "--tail=1"], None);
        let n = line_number(String::from_utf8_lossy(&out.stdout).trim())?;
        (n > before + 5).then_some(n)
    })
    .await;
    let all = kubectl.ok(&["logs", "counter"]);
    let numbers: Vec<u64> = all.lines().filter_map(line_number).collect();
    assert_eq!(
        numbers,
        (0..numbers.len() as u64).collect::<Vec<_>>(),
        "no line lost or repeated across the restart (up to {after})"
    );

    for name in ["counter", "crasher", "web", "reader"] {
        let _ = pods.delete(name, &DeleteParams::default()).await;
    }
    for name in ["counter", "crasher", "web", "reader"] {
        eventually(&format!("{name} to be gone"), || async {
            pods.get_opt(name)
                .await
                .expect("get")
                .is_none()
                .then_some(())
        })
        .await;
    }
    let _ = stop.send(());
    let _ = kubelet.await;
}
