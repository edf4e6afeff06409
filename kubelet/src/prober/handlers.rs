//! The actions behind probes and lifecycle hooks, run against one
//! container attempt: `exec` (a process in the container through
//! containerd; exit 0 is success, the output is the message), `httpGet`
//! (to the pod IP unless `host` is set; 200–399 is success, redirects
//! followed; `kube-probe/<version>` user agent, `httpHeaders` honoured),
//! `tcpSocket` (a connection is success) and the hooks' `sleep`. HTTPS
//! skips certificate verification, as Kubernetes' prober does. Ports may
//! be numbers or names of the container's ports. Failure texts follow
//! Kubernetes' probers so events read the same.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerPort, ExecAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Outcome, Prober};
use crate::runtime::{ExecOutcome, Runtime};

/// The User-Agent Kubernetes' HTTP prober sends.
pub const USER_AGENT: &str = "kube-probe/1.33";

/// One container attempt, as probes and hooks reach it.
#[derive(Clone)]
pub struct ProbeTarget {
    pub runtime: Runtime,
    pub container_id: String,
    pub pod_ip: Option<String>,
    pub ports: Vec<ContainerPort>,
    /// Where exec output is collected while the process runs.
    pub scratch_dir: PathBuf,
    pub http: Option<reqwest::Client>,
}

/// A client for probes: no proxy, no keep-alive, HTTPS without
/// certificate verification (all as Kubernetes' prober). `None` if TLS
/// cannot be set up: HTTP probes then report the error.
pub fn http_client() -> Option<reqwest::Client> {
    let built = super::tls::insecure_client_config()
        .map_err(|e| e.to_string())
        .and_then(|config| {
            reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .use_preconfigured_tls(config)
                .build()
                .map_err(|e| e.to_string())
        });
    match built {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::error!(%error, "cannot build the probe HTTP client");
            None
        }
    }
}

/// What to do, whichever API type said so.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Exec(Vec<String>),
    Http(HTTPGetAction),
    Tcp(TCPSocketAction),
    Sleep(Duration),
    Unsupported(&'static str),
}

impl Action {
    pub fn of_probe(probe: &Probe) -> Action {
        pick(
            probe.exec.as_ref(),
            probe.http_get.as_ref(),
            probe.tcp_socket.as_ref(),
            None,
        )
        .unwrap_or(Action::Unsupported(if probe.grpc.is_some() {
            "grpc probes are not supported"
        } else {
            "the probe has no handler"
        }))
    }

    pub fn of_hook(hook: &LifecycleHandler) -> Action {
        pick(
            hook.exec.as_ref(),
            hook.http_get.as_ref(),
            hook.tcp_socket.as_ref(),
            hook.sleep
                .as_ref()
                .map(|s| Duration::from_secs(s.seconds.max(0) as u64)),
        )
        .unwrap_or(Action::Unsupported("the hook has no handler"))
    }

    /// Runs the action once, bounded by `timeout` if given.
    pub async fn run(&self, target: &ProbeTarget, timeout: Option<Duration>) -> Outcome {
        match self {
            Action::Exec(argv) => exec(target, argv, timeout).await,
            Action::Http(get) => match &target.http {
                Some(http) => http_get(http, &Net::of(target), get, timeout).await,
                None => Outcome::Error("no HTTP client".into()),
            },
            Action::Tcp(tcp) => tcp_connect(&Net::of(target), tcp, timeout).await,
            Action::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Outcome::Success
            }
            Action::Unsupported(why) => Outcome::Error((*why).into()),
        }
    }
}

fn pick(
    exec: Option<&ExecAction>,
    http: Option<&HTTPGetAction>,
    tcp: Option<&TCPSocketAction>,
    sleep: Option<Duration>,
) -> Option<Action> {
    if let Some(e) = exec {
        return Some(Action::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(h) = http {
        return Some(Action::Http(h.clone()));
    }
    if let Some(t) = tcp {
        return Some(Action::Tcp(t.clone()));
    }
    sleep.map(Action::Sleep)
}

/// A probe bound to its container attempt.
pub struct ContainerProber {
    pub action: Action,
    pub timeout: Duration,
    pub target: ProbeTarget,
}

impl Prober for ContainerProber {
    async fn probe(&self) -> Outcome {
        self.action.run(&self.target, Some(self.timeout)).await
    }
}

async fn exec(target: &ProbeTarget, argv: &[String], timeout: Option<Duration>) -> Outcome {
    match target
        .runtime
        .exec_sync(&target.container_id, argv, timeout, &target.scratch_dir)
        .await
    {
        Ok(ExecOutcome::Exited { code: 0, .. }) => Outcome::Success,
        Ok(ExecOutcome::Exited { code, output }) => {
            tracing::debug!(container = %target.container_id, code, ?argv, %output, "exec probe failed");
            Outcome::Failure(output)
        }
        Ok(ExecOutcome::TimedOut) => {
            Outcome::Failure(format!("command {:?} timed out", argv.join(" ")))
        }
        Err(e) => Outcome::Error(e.to_string()),
    }
}

/// A port number, or the number of the container port of that name.
pub fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("couldn't find port: {name}"))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// Where network probes go: the pod's address and the container's ports.
pub struct Net<'a> {
    pub pod_ip: Option<&'a str>,
    pub ports: &'a [ContainerPort],
}

impl<'a> Net<'a> {
    fn of(target: &'a ProbeTarget) -> Net<'a> {
        Net {
            pod_ip: target.pod_ip.as_deref(),
            ports: &target.ports,
        }
    }

    /// The port and host (the pod IP unless the action names one).
    fn address(&self, port: &IntOrString, host: Option<&String>) -> Result<(String, u16), String> {
        let port = resolve_port(port, self.ports)?;
        let host = match host.filter(|h| !h.is_empty()) {
            Some(h) => h.clone(),
            None => self
                .pod_ip
                .map(str::to_string)
                .ok_or_else(|| "the pod has no IP".to_string())?,
        };
        Ok((host, port))
    }
}

/// `host:port`, bracketing IPv6 literals.
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The URL Kubernetes' HTTP prober builds (`path` gets a leading `/`).
pub fn probe_url(get: &HTTPGetAction, host: &str, port: u16) -> String {
    let scheme = get.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
    let path = get.path.as_deref().unwrap_or("");
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("{scheme}://{}{slash}{path}", join_host_port(host, port))
}

/// An error with its causes, the way Go's wrapped errors read.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub async fn http_get(
    http: &reqwest::Client,
    net: &Net<'_>,
    get: &HTTPGetAction,
    timeout: Option<Duration>,
) -> Outcome {
    let (host, port) = match net.address(&get.port, get.host.as_ref()) {
        Ok(a) => a,
        Err(e) => return Outcome::Error(e),
    };
    let url = probe_url(get, &host, port);
    let mut request = http.get(&url);
    if let Some(t) = timeout {
        request = request.timeout(t);
    }
    let headers = get.http_headers.clone().unwrap_or_default();
    let has = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    if !has("user-agent") {
        request = request.header("User-Agent", USER_AGENT);
    }
    if !has("accept") {
        request = request.header("Accept", "*/*");
    }
    for h in &headers {
        request = request.header(h.name.as_str(), h.value.as_str());
    }
    match request.send().await {
        Ok(response) => {
            let code = response.status().as_u16();
            if (200..400).contains(&code) {
                Outcome::Success
            } else {
                Outcome::Failure(format!("HTTP probe failed with statuscode: {code}"))
            }
        }
        Err(e) if e.is_timeout() => Outcome::Failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Err(e) => Outcome::Failure(format!("Get {url:?}: {}", chain(&e))),
    }
}

pub async fn tcp_connect(
    net: &Net<'_>,
    tcp: &TCPSocketAction,
    timeout: Option<Duration>,
) -> Outcome {
    let (host, port) = match net.address(&tcp.port, tcp.host.as_ref()) {
        Ok(a) => a,
        Err(e) => return Outcome::Error(e),
    };
    let address = join_host_port(&host, port);
    let connect = tokio::net::TcpStream::connect(&address);
    let result = match timeout {
        Some(t) => match tokio::time::timeout(t, connect).await {
            Ok(r) => r,
            Err(_) => return Outcome::Failure(format!("dial tcp {address}: i/o timeout")),
        },
        None => connect.await,
    };
    match result {
        Ok(_) => Outcome::Success,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Outcome::Failure(format!("dial tcp {address}: connect: connection refused"))
        }
        Err(e) => Outcome::Failure(format!("dial tcp {address}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port_named(name: &str, number: i32) -> ContainerPort {
        ContainerPort {
            name: Some(name.into()),
            container_port: number,
            ..ContainerPort::default()
        }
    }

    #[test]
    fn ports_resolve_by_number_or_name() {
        let ports = [port_named("http", 8080), port_named("metrics", 9090)];
        let cases = [
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("9000".into()), Ok(9000)),
            (
                IntOrString::String("nope".into()),
                Err("couldn't find port: nope".to_string()),
            ),
            (
                IntOrString::Int(70000),
                Err("invalid port number: 70000".to_string()),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(resolve_port(&p, &ports), want, "{p:?}");
        }
    }

    #[test]
    fn urls_follow_the_http_prober() {
        let get = |path: Option<&str>, scheme: Option<&str>| HTTPGetAction {
            path: path.map(str::to_string),
            scheme: scheme.map(str::to_string),
            ..HTTPGetAction::default()
        };
        assert_eq!(
            probe_url(&get(Some("/healthz"), None), "10.1.0.5", 8080),
            "http://10.1.0.5:8080/healthz"
        );
        assert_eq!(
            probe_url(&get(Some("ready"), Some("HTTPS")), "10.1.0.5", 443),
            "https://10.1.0.5:443/ready"
        );
        assert_eq!(probe_url(&get(None, None), "::1", 80), "http://[::1]:80/");
    }

    #[test]
    fn the_first_handler_set_is_the_action() {
        let probe: Probe = serde_json::from_value(serde_json::json!({
            "exec": {"command": ["cat", "/tmp/ok"]}
        }))
        .expect("probe");
        assert_eq!(
            Action::of_probe(&probe),
            Action::Exec(vec!["cat".into(), "/tmp/ok".into()])
        );
        let hook: LifecycleHandler =
            serde_json::from_value(serde_json::json!({"sleep": {"seconds": 3}})).expect("hook");
        assert_eq!(
            Action::of_hook(&hook),
            Action::Sleep(Duration::from_secs(3))
        );
        let grpc: Probe =
            serde_json::from_value(serde_json::json!({"grpc": {"port": 9000}})).expect("probe");
        assert!(matches!(Action::of_probe(&grpc), Action::Unsupported(_)));
    }

    #[tokio::test]
    async fn tcp_and_http_reach_a_listener_and_report_refusals() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let len = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..len]).to_ascii_lowercase();
                let good = head.starts_with("get /healthz ")
                    && head.contains("user-agent: kube-probe/")
                    && head.contains("x-test: yes");
                let code = if good && n == 0 { 200 } else { 503 };
                n += 1;
                let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        let ports = [port_named("web", i32::from(port))];
        let net = Net {
            pod_ip: Some("127.0.0.1"),
            ports: &ports,
        };
        let get: HTTPGetAction = serde_json::from_value(serde_json::json!({
            "path": "/healthz", "port": "web",
            "httpHeaders": [{"name": "X-Test", "value": "yes"}],
        }))
        .expect("get");
        let http = http_client().expect("an HTTP client");
        let timeout = Some(Duration::from_secs(5));
        assert_eq!(http_get(&http, &net, &get, timeout).await, Outcome::Success);
        assert_eq!(
            http_get(&http, &net, &get, timeout).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
        let tcp = TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        };
        assert_eq!(tcp_connect(&net, &tcp, timeout).await, Outcome::Success);

        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed_port = closed.local_addr().expect("addr").port();
        drop(closed);
        let tcp = TCPSocketAction {
            port: IntOrString::Int(i32::from(closed_port)),
            host: None,
        };
        assert_eq!(
            tcp_connect(&net, &tcp, timeout).await,
            Outcome::Failure(format!(
                "dial tcp 127.0.0.1:{closed_port}: connect: connection refused"
            ))
        );
        let refused = HTTPGetAction {
            port: IntOrString::Int(i32::from(closed_port)),
            ..HTTPGetAction::default()
        };
        let Outcome::Failure(text) = http_get(&http, &net, &refused, timeout).await else {
            panic!("a refused connection is a failure");
        };
        assert!(
            text.starts_with(&format!("Get \"http://127.0.0.1:{closed_port}/\": ")),
            "{text}"
        );
    }

    /// A TLS server with a self-signed certificate (made by the openssl CLI).
    async fn tls_server(dir: &std::path::Path) -> u16 {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=probe-test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl");
        assert!(made.success(), "openssl made a certificate");
        let certs = vec![CertificateDer::from_pem_file(&cert).expect("cert")];
        let key = PrivateKeyDer::from_pem_file(&key).expect("key");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        port
    }

    #[tokio::test]
    async fn https_probes_do_not_verify_the_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = tls_server(dir.path()).await;
        let net = Net {
            pod_ip: Some("127.0.0.1"),
            ports: &[],
        };
        let get = HTTPGetAction {
            scheme: Some("HTTPS".into()),
            port: IntOrString::Int(i32::from(port)),
            ..HTTPGetAction::default()
        };
        let http = http_client().expect("an HTTP client");
        assert_eq!(
            http_get(&http, &net, &get, Some(Duration::from_secs(5))).await,
            Outcome::Success
        );
    }
}
