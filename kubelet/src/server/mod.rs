//! The kubelet API (port 10250 by default): `/healthz`, `/pods`,
//! `/containerLogs/{ns}/{pod}/{container}`, `/exec`, `/attach`,
//! `/portForward/{ns}/{pod}` and `/stats/summary`. The API server proxies
//! `pods/log`, `pods/exec`, `pods/attach`, `pods/portforward` and
//! `nodes/proxy` here. Containers are found through containerd's labels
//! (pod UID and container name), so the server keeps no state of its own.
//! Errors are plain text with an HTTP code, as the kubelet answers; the
//! API server wraps them into `Status` objects.

pub mod channel;
pub mod exec;
pub mod portforward;
pub mod spdy;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use crate::containers::{self, Found, FoundState};
use crate::logs::reader::{self, LogOptions};
use crate::worker::NodeContext;
use exec::StreamOptions;

/// The WebSocket subprotocol that tunnels SPDY port-forwarding.
pub const PORT_FORWARD_WS: &str = "SPDY/3.1+portforward.k8s.io";
const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// An error answer: an HTTP code and a plain-text message.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.1,
        )
            .into_response()
    }
}

fn bad_request(message: impl Into<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, message.into())
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Binds the kubelet API's address (before the Node is registered, so
/// the Node can advertise the port actually bound).
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Serves on `listener` until the returned task is aborted.
pub fn spawn(
    listener: tokio::net::TcpListener,
    ctx: Arc<NodeContext>,
) -> tokio::task::JoinHandle<()> {
    let app = router(ctx);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "kubelet API server failed");
        }
    })
}

pub fn router(ctx: Arc<NodeContext>) -> Router {
    use axum::routing::{any, get};
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(pods))
        .route("/stats/summary", get(stats::summary))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", any(exec_handler))
        .route("/attach/{ns}/{pod}/{container}", any(attach_handler))
        .route("/portForward/{ns}/{pod}", any(port_forward))
        .with_state(ctx)
}

async fn pods(State(ctx): State<Arc<NodeContext>>) -> Result<Response, Failure> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let params =
        kube::api::ListParams::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let list = api.list(&params).await.map_err(internal)?;
    let body = serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": list.items,
    });
    Ok(axum::Json(body).into_response())
}

async fn get_pod(ctx: &NodeContext, ns: &str, name: &str) -> Result<Pod, Failure> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    match api.get_opt(name).await.map_err(internal)? {
        Some(pod) => Ok(pod),
        None => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("pod \"{name}\" in namespace \"{ns}\" does not exist"),
        )),
    }
}

/// A pod's container as containerd has it: its attempts, newest last.
struct Located {
    pod: Pod,
    uid: String,
    attempts: Vec<Found>,
}

async fn locate(
    ctx: &NodeContext,
    ns: &str,
    name: &str,
    container: &str,
) -> Result<Located, Failure> {
    let pod = get_pod(ctx, ns, name).await?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let declared = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .any(|c| c.name == container);
    if !declared {
        return Err(bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let attempts = containers::find(&ctx.runtime, &uid)
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|f| f.name == container)
        .collect();
    Ok(Located { pod, uid, attempts })
}

/// The running attempt's containerd ID, or the kubelet's error for a
/// container that is not running.
fn running(l: &Located, container: &str) -> Result<String, Failure> {
    match l.attempts.last() {
        Some(f) if f.state == FoundState::Running => Ok(f.id.clone()),
        _ => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("container not found (\"{container}\")"),
        )),
    }
}

fn pod_dir(ctx: &NodeContext, ns: &str, name: &str, uid: &str) -> PathBuf {
    ctx.data_dir.join("pods").join(format!("{ns}_{name}_{uid}"))
}

async fn container_logs(
    State(ctx): State<Arc<NodeContext>>,
    Path((ns, name, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let q = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let opts = LogOptions::from_query(&q, jiff::Timestamp::now()).map_err(bad_request)?;
    let l = locate(&ctx, &ns, &name, &container).await?;
    let chosen = if opts.previous {
        l.attempts
            .iter()
            .rev()
            .nth(1)
            .filter(|f| matches!(f.state, FoundState::Exited(_)))
            .ok_or_else(|| {
                bad_request(format!(
                    "previous terminated container \"{container}\" in pod \"{name}\" not found"
                ))
            })?
    } else {
        l.attempts.last().ok_or_else(|| {
            let reason = l
                .pod
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
                .find(|s| s.name == container)
                .and_then(|s| s.state.as_ref()?.waiting.as_ref()?.reason.clone())
                .unwrap_or_else(|| "ContainerCreating".into());
            bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
            ))
        })?
    };
    let path = crate::logs::log_path(
        &pod_dir(&ctx, &ns, &name, &l.uid).join(&container),
        chosen.attempt,
    );
    let id = chosen.id.clone();
    let follow_running = chosen.state == FoundState::Running && !opts.previous;
    let rt = ctx.runtime.clone();
    let rx = reader::serve(path, opts, move || {
        let rt = rt.clone();
        let id = id.clone();
        async move {
            follow_running
                && matches!(
                    rt.task_state(&id).await,
                    Ok(Some(crate::runtime::TaskState::Running { .. }))
                )
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response())
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn websocket(req: Request) -> Result<WebSocketUpgrade, Failure> {
    let (mut parts, _) = req.into_parts();
    WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|e| bad_request(e.body_text()))
}

async fn exec_handler(
    State(ctx): State<Arc<NodeContext>>,
    Path((ns, name, container)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, Failure> {
    let opts = StreamOptions::from_query(req.uri().query());
    if opts.command.is_empty() {
        return Err(bad_request("you must specify at least 1 command"));
    }
    let l = locate(&ctx, &ns, &name, &container).await?;
    let id = running(&l, &container)?;
    if !wants_websocket(req.headers()) {
        return Err(bad_request(
            "exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)",
        ));
    }
    let ws = websocket(req).await?;
    Ok(ws
        .protocols(channel::PROTOCOLS)
        .on_upgrade(move |socket| exec::run_exec(ctx, socket, id, opts)))
}

async fn attach_handler(
    State(ctx): State<Arc<NodeContext>>,
    Path((ns, name, container)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response, Failure> {
    let opts = StreamOptions::from_query(req.uri().query());
    let l = locate(&ctx, &ns, &name, &container).await?;
    let id = running(&l, &container)?;
    let spec = l
        .pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .find(|c| c.name == container);
    let stdin_once = spec.and_then(|c| c.stdin_once).unwrap_or(false);
    if !wants_websocket(req.headers()) {
        return Err(bad_request(
            "attach needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)",
        ));
    }
    let ws = websocket(req).await?;
    Ok(ws
        .protocols(channel::PROTOCOLS)
        .on_upgrade(move |socket| exec::run_attach(ctx, socket, id, opts, stdin_once)))
}

async fn port_forward(
    State(ctx): State<Arc<NodeContext>>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Result<Response, Failure> {
    let pod = get_pod(&ctx, &ns, &name).await?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let netns = (!host_network).then(|| ctx.data_dir.join("netns").join(&uid));
    let describe = format!("{name}_{ns}, uid {uid}");
    let connect = move |port: u16| portforward::connect_in(netns.clone(), port);
    let (in_tx, in_rx) = tokio::sync::mpsc::channel(32);
    let (out_tx, out_rx) = tokio::sync::mpsc::channel(32);
    if wants_websocket(req.headers()) {
        let ws = websocket(req).await?;
        return Ok(ws
            .protocols([PORT_FORWARD_WS])
            .on_upgrade(move |socket| async move {
                tokio::spawn(portforward::serve(in_rx, out_tx, describe, connect));
                tunnel_websocket(socket, in_tx, out_rx).await;
            }));
    }
    let spdy = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
    if !spdy {
        return Err(bad_request(
            "port-forward needs an upgrade: WebSocket (SPDY/3.1+portforward.k8s.io) or SPDY/3.1",
        ));
    }
    let offered = req
        .headers()
        .get_all("X-Stream-Protocol-Version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == PORT_FORWARD_PROTOCOL));
    if !offered {
        return Err(bad_request(format!(
            "unable to upgrade: unable to negotiate protocol: client supports none of [{PORT_FORWARD_PROTOCOL}]"
        )));
    }
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "SPDY upgrade failed");
                return;
            }
        };
        tokio::spawn(portforward::serve(in_rx, out_tx, describe, connect));
        tunnel_io(hyper_util::rt::TokioIo::new(upgraded), in_tx, out_rx).await;
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", PORT_FORWARD_PROTOCOL)
        .body(Body::empty())
        .unwrap_or_default())
}

/// SPDY bytes in WebSocket binary messages, both ways.
async fn tunnel_websocket(
    socket: axum::extract::ws::WebSocket,
    input: tokio::sync::mpsc::Sender<bytes::Bytes>,
    mut output: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) {
    use axum::extract::ws::Message;
    use futures::{SinkExt, StreamExt};
    let (mut sink, mut stream) = socket.split();
    let reading = async {
        while let Some(Ok(m)) = stream.next().await {
            match m {
                Message::Binary(b) => {
                    if input.send(b).await.is_err() {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    let writing = async {
        while let Some(b) = output.recv().await {
            if sink.send(Message::Binary(b)).await.is_err() {
                break;
            }
        }
        let _ = sink
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
}

/// SPDY bytes on a raw upgraded connection.
async fn tunnel_io<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    io: T,
    input: tokio::sync::mpsc::Sender<bytes::Bytes>,
    mut output: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut rd, mut wr) = tokio::io::split(io);
    let reading = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if input
                        .send(bytes::Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writing = async {
        while let Some(b) = output.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
}
