//! The ingress controller against a real in-process API server, with real
//! HTTP backends. Kubernetes refuses loopback endpoint addresses, so the
//! backends listen on a test-private address of a veth pair this test
//! creates on the host (unique names and address per run, removed at the
//! end; traffic to it never leaves the machine).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

/// A veth pair holding one /32 address; deleted on drop.
struct Dummy {
    name: String,
    ip: Ipv4Addr,
}

fn ip_cmd(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {} (this test needs root)",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Dummy {
    fn create() -> Dummy {
        let seed = std::process::id() ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        let name = format!("fkig{:08x}", seed);
        let ip = Ipv4Addr::new(10, 253, (seed >> 8) as u8, (seed % 253 + 1) as u8);
        let peer = format!("{name}p");
        ip_cmd(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        let dummy = Dummy { name, ip };
        ip_cmd(&["addr", "add", &format!("{ip}/32"), "dev", &dummy.name]);
        ip_cmd(&["link", "set", &dummy.name, "up"]);
        ip_cmd(&["link", "set", &peer, "up"]);
        dummy
    }
}

impl Drop for Dummy {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.name]).status();
    }
}

/// An HTTP backend answering `<name> <path> <host>`.
async fn backend(ip: Ipv4Addr, name: &'static str) -> u16 {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind backend");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| async move {
                    let host = req
                        .headers()
                        .get("host")
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let body = format!("{name} {} {host}", req.uri().path());
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

async fn get(ingress: SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
    let stream = TcpStream::connect(ingress).await.expect("connect ingress");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    send_on(&mut send, host, path).await
}

async fn send_on(
    send: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    host: &str,
    path: &str,
) -> (StatusCode, String) {
    let req = Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn until(ingress: SocketAddr, host: &str, path: &str, want: impl Fn(&(StatusCode, String)) -> bool) -> (StatusCode, String) {
    for _ in 0..200 {
        let got = get(ingress, host, path).await;
        if want(&got) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    get(ingress, host, path).await
}

async fn service(client: &Client, name: &str) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "web"}]},
    }))
    .expect("service");
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .expect("create service");
}

async fn slice(client: &Client, svc: &str, suffix: &str, ip: Ipv4Addr, port: u16) {
    let s: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-{suffix}"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    }))
    .expect("slice");
    Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &s)
        .await
        .expect("create slice");
}

fn path(p: &str, svc: &str) -> serde_json::Value {
    json!({"path": p, "pathType": "Prefix",
           "backend": {"service": {"name": svc, "port": {"name": "http"}}}})
}

#[tokio::test]
async fn ingress_routes_hosts_and_paths_to_service_endpoints_and_reloads_in_place() {
    let dummy = Dummy::create();
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("test server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let (a1, a2, b) = (
        backend(dummy.ip, "a1").await,
        backend(dummy.ip, "a2").await,
        backend(dummy.ip, "b").await,
    );
    for name in ["a", "b", "c"] {
        service(&client, name).await;
    }
    // Two slices for `a` (a named targetPort may differ per pod).
    slice(&client, "a", "1", dummy.ip, a1).await;
    slice(&client, "a", "2", dummy.ip, a2).await;
    slice(&client, "b", "1", dummy.ip, b).await;
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "shop"},
        "spec": {"rules": [{"host": "shop.example", "http": {"paths": [
            path("/a", "a"), path("/b", "b"), path("/c", "c")]}}]},
    }))
    .expect("ingress");
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "default");
    ingresses
        .create(&PostParams::default(), &ing)
        .await
        .expect("create ingress");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let node_ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));
    let mut config = ingress::Config::new(addr);
    config.node_ip = Some(node_ip);
    let (generation, _) = tokio::sync::watch::channel(0);
    tokio::spawn(ingress::run_on(listener, config, client.clone(), generation, std::future::pending()));

    // The default IngressClass is registered, and the Ingress (no class
    // named) is ours through it.
    let first = until(addr, "shop.example", "/a/x", |r| r.0 == StatusCode::OK).await;
    assert_eq!(first.0, StatusCode::OK, "{first:?}");
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..4 {
        let (status, body) = get(addr, "shop.example:8080", "/a/x").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.ends_with(" /a/x shop.example:8080"), "{body}");
        seen.push(body.split(' ').next().unwrap_or("").to_string());
    }
    seen.sort();
    assert_eq!(seen, ["a1", "a1", "a2", "a2"], "round-robin over both endpoints");
    assert_eq!(get(addr, "shop.example", "/b").await.1, "b /b shop.example");
    assert_eq!(get(addr, "other.example", "/a").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(addr, "shop.example", "/abc").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(addr, "shop.example", "/c").await.0,
        StatusCode::SERVICE_UNAVAILABLE,
        "a Service without endpoints"
    );

    // A keep-alive connection stays up across a route change.
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let conn = tokio::spawn(conn);
    assert_eq!(send_on(&mut send, "shop.example", "/b").await.1, "b /b shop.example");
    let patch = json!({"spec": {"rules": [{"host": "shop.example", "http": {"paths": [
        path("/a", "a"), path("/b", "a")]}}]}});
    ingresses
        .patch("shop", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch ingress");
    let mut switched = None;
    for _ in 0..200 {
        let (status, body) = send_on(&mut send, "shop.example", "/b").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if !body.starts_with("b ") {
            switched = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let body = switched.expect("the new route applies on the open connection");
    assert!(body.starts_with('a'), "{body}");
    assert!(!conn.is_finished(), "the connection is still open");
    assert_eq!(
        get(addr, "shop.example", "/c").await.0,
        StatusCode::NOT_FOUND,
        "a removed path"
    );

    // Status: the node address.
    let mut status_ip = None;
    for _ in 0..100 {
        let ing = ingresses.get("shop").await.expect("get ingress");
        status_ip = ing
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|l| l.first().and_then(|i| i.ip.clone()));
        if status_ip.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_ip.as_deref(), Some("10.0.0.5"));

    // kubectl prints Kubernetes' columns.
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    // Async: the API server runs on this test's runtime.
    let out = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .args(["get", "ingress", "shop"])
        .output()
        .await
        .expect("run kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]);
    assert_eq!(lines[1][..5], ["shop", "<none>", "shop.example", "10.0.0.5", "80"]);
    let out = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .args(["get", "ingressclass"])
        .output()
        .await
        .expect("run kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]);
    assert_eq!(lines[1][..3], ["ferrokube", ingress::CONTROLLER, "<none>"]);
    drop(dummy);
}
