//! The API server's way to the kubelets: `pods/log`, `pods/exec`,
//! `pods/attach`, `pods/portforward` and `nodes/{name}/proxy/{path}` are
//! forwarded to the kubelet of the pod's node, found from `spec.nodeName`
//! and the Node's `InternalIP` and `daemonEndpoints.kubeletEndpoint.port`.
//! Plain responses stream back as they come (`logs -f`); a connection
//! upgrade (WebSocket or SPDY for exec, attach, port-forward) is answered
//! with the kubelet's `101` and then both byte streams are spliced.
//! Kubelet errors become `Status` objects, as kube-apiserver's
//! location streamer does.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::AppState;
use crate::error::ApiError;

/// Largest kubelet error body read into a `Status` message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Whether `rest` (after `/api/v1/`) is a path this module serves.
pub fn handles(group: &str, rest: &[&str]) -> bool {
    group.is_empty()
        && matches!(
            rest,
            [
                "namespaces",
                _,
                "pods",
                _,
                "log" | "exec" | "attach" | "portforward"
            ] | ["nodes", _, "proxy", ..]
        )
}

pub async fn serve(api: AppState, rest: Vec<String>, req: Request) -> Response {
    match serve_inner(api, rest, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn get(
    api: &AppState,
    plural: &'static str,
    ns: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    let registry = api
        .registries
        .get(&("", "v1", plural))
        .ok_or_else(|| ApiError::internal(format!("no {plural} registry")))?;
    registry.get(ns, name, None).await
}

/// `http://ip:port` of a node's kubelet.
async fn kubelet_of(api: &AppState, node: &str) -> Result<String, ApiError> {
    let node_obj = get(api, "nodes", None, node).await?;
    let status = &node_obj["status"];
    let ip = status["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .ok_or_else(|| ApiError::bad_request(format!("node {node} has no InternalIP address")))?;
    // DaemonEndpoint's one field is spelled `Port` in the Kubernetes API.
    let port = status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::bad_request(format!("node {node} has no kubelet endpoint")))?;
    Ok(match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        _ => format!("{ip}:{port}"),
    })
}

/// The container a pod subresource targets, checked as Kubernetes does.
fn container_of(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    match asked {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if names.len() == 1 => Ok(names[0].to_string()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// The query without `container` (the kubelet has it in the path).
fn query_without_container(query: Option<&str>) -> String {
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "container")
        .collect();
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

async fn serve_inner(api: AppState, rest: Vec<String>, req: Request) -> Result<Response, ApiError> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let query = req.uri().query().map(str::to_string);
    let (node, path, wrap_errors) = match rest.as_slice() {
        ["namespaces", ns, "pods", name, sub] => {
            let allowed = match *sub {
                "log" => req.method() == Method::GET,
                _ => matches!(*req.method(), Method::GET | Method::POST),
            };
            if !allowed {
                return Err(ApiError::method_not_allowed(format!(
                    "{} is not supported on pods/{sub}",
                    req.method()
                )));
            }
            let pod = get(&api, "pods", Some(ns), name).await?;
            let node = pod["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let q: HashMap<String, String> =
                form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
                    .into_owned()
                    .collect();
            let path = match *sub {
                "portforward" => format!("/portForward/{ns}/{name}"),
                _ => {
                    let container =
                        container_of(&pod, name, q.get("container").map(String::as_str))?;
                    let kind = match *sub {
                        "log" => "containerLogs",
                        "exec" => "exec",
                        _ => "attach",
                    };
                    format!("/{kind}/{ns}/{name}/{container}")
                }
            };
            if node.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "pod {name} does not have a host assigned"
                )));
            }
            let q = query_without_container(query.as_deref());
            let path = if q.is_empty() {
                path
            } else {
                format!("{path}?{q}")
            };
            (node, path, true)
        }
        ["nodes", name, "proxy", tail @ ..] => {
            let mut path = format!("/{}", tail.join("/"));
            if let Some(q) = query.as_deref().filter(|q| !q.is_empty()) {
                path = format!("{path}?{q}");
            }
            (name.to_string(), path, false)
        }
        _ => return Err(ApiError::path_not_found(req.uri().path())),
    };
    let authority = kubelet_of(&api, &node).await?;
    forward(req, &authority, &path, wrap_errors).await
}

fn unreachable(authority: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::upstream(
        503,
        format!("error trying to reach the kubelet at {authority}: {e}"),
    )
}

async fn forward(
    mut req: Request,
    authority: &str,
    path: &str,
    wrap_errors: bool,
) -> Result<Response, ApiError> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| unreachable(authority, e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(authority, e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended");
        }
    });
    let upgrading = req.headers().contains_key(header::UPGRADE);
    let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut out = http::Request::builder().method(parts.method).uri(path);
    for (k, v) in &parts.headers {
        if k != header::HOST {
            out = out.header(k, v);
        }
    }
    out = out.header(
        header::HOST,
        HeaderValue::from_str(authority).unwrap_or(HeaderValue::from_static("kubelet")),
    );
    let body = if upgrading { Body::empty() } else { body };
    let out = out
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = sender
        .send_request(out)
        .await
        .map_err(|e| unreachable(authority, e))?;
    let status = resp.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ApiError::internal("kubelet switched protocols unasked"));
        };
        let kubelet_upgrade = hyper::upgrade::on(&mut resp);
        let mut answer = Response::builder().status(status);
        for (k, v) in resp.headers() {
            answer = answer.header(k, v);
        }
        tokio::spawn(async move {
            match tokio::try_join!(client_upgrade, kubelet_upgrade) {
                Ok((client, kubelet)) => {
                    let mut client = TokioIo::new(client);
                    let mut kubelet = TokioIo::new(kubelet);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await;
                }
                Err(e) => tracing::debug!(error = %e, "upgrade to the kubelet failed"),
            }
        });
        return answer
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if wrap_errors && !status.is_success() && !is_json {
        let body = http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&body).trim().to_string();
        return Err(ApiError::upstream(status.as_u16(), message));
    }
    let mut answer = Response::builder().status(status);
    for (k, v) in resp.headers() {
        if k != header::CONNECTION && k != header::TRANSFER_ENCODING {
            answer = answer.header(k, v);
        }
    }
    answer
        .body(Body::new(resp.into_body()))
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proxied_paths_are_recognised() {
        assert!(handles("", &["namespaces", "d", "pods", "p", "log"]));
        assert!(handles(
            "",
            &["namespaces", "d", "pods", "p", "portforward"]
        ));
        assert!(handles("", &["nodes", "n", "proxy", "stats", "summary"]));
        assert!(handles("", &["nodes", "n", "proxy"]));
        assert!(!handles("", &["namespaces", "d", "pods", "p", "status"]));
        assert!(!handles("apps", &["namespaces", "d", "pods", "p", "log"]));
    }

    #[test]
    fn containers_are_chosen_as_kubernetes_does() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(container_of(&pod, "p", Some("b")).expect("b"), "b");
        assert_eq!(
            container_of(&pod, "p", Some("c"))
                .expect_err("rejected")
                .message,
            "container c is not valid for pod p"
        );
        assert_eq!(
            container_of(&pod, "p", None).expect_err("rejected").message,
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container_of(&one, "p", None).expect("only"), "only");
    }

    #[test]
    fn the_container_moves_from_the_query_to_the_path() {
        assert_eq!(
            query_without_container(Some("container=c&command=sh&command=-c&tty=true")),
            "command=sh&command=-c&tty=true"
        );
    }
}
