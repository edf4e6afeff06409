//! The HTTP side: accepts connections (HTTP/1.1, keep-alive), looks each
//! request up in the current [`Table`] and relays it to a backend endpoint.
//! The table is read per request from an `ArcSwap`, so a reload applies to
//! the next request of an open connection and never drops one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::routes::{Decision, Table};

pub type SharedTable = Arc<ArcSwap<Table>>;
type Body = BoxBody<Bytes, hyper::Error>;
type Upstream = Client<HttpConnector, Incoming>;

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The request's host without the port (`[::1]:80` → `::1`).
fn request_host(req: &Request<Incoming>) -> String {
    let raw = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    raw.split(':').next().unwrap_or("").to_string()
}

async fn handle(
    mut req: Request<Incoming>,
    table: SharedTable,
    upstream: Upstream,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let host = request_host(&req);
    let decision = table.load().route(&host, req.uri().path());
    let backend = match decision {
        Decision::NoRoute => return Ok(text(StatusCode::NOT_FOUND, "404 page not found\n")),
        Decision::Backend(b) => b,
    };
    let Some(addr) = backend.pick() else {
        tracing::debug!(namespace = %backend.namespace, service = %backend.service,
                        "no ready endpoint");
        return Ok(text(StatusCode::SERVICE_UNAVAILABLE, "no available server\n"));
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let Ok(uri) = format!("http://{addr}{path}").parse::<Uri>() else {
        return Ok(text(StatusCode::BAD_REQUEST, "bad request target\n"));
    };
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_11;
    let headers = req.headers_mut();
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    // The Host header is kept: backends see the name the client asked for.
    let forwarded = [
        ("x-forwarded-for", peer.ip().to_string()),
        ("x-forwarded-host", host.clone()),
        ("x-forwarded-proto", "http".to_string()),
        ("x-real-ip", peer.ip().to_string()),
    ];
    for (name, value) in forwarded {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    match upstream.request(req).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(*name);
            }
            Ok(Response::from_parts(parts, body.boxed()))
        }
        Err(e) => {
            tracing::info!(%addr, service = %backend.service, error = %e, "backend failed");
            Ok(text(StatusCode::BAD_GATEWAY, "bad gateway\n"))
        }
    }
}

/// Serves HTTP on `listener` until `shutdown` resolves; open connections
/// finish their current request.
pub async fn serve(
    listener: TcpListener,
    table: SharedTable,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    connector.set_nodelay(true);
    let upstream: Upstream = Client::builder(TokioExecutor::new()).build(connector);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let table = table.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, table.clone(), upstream.clone(), peer));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
