//! The discovery routes, with kube-apiserver's content negotiation on `/api`
//! and `/apis`.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::aggregated::{
    AggregatedVersion, aggregated_groups, aggregated_legacy, wants_aggregated,
};
use super::{api_group, api_group_list, api_versions, resource_list, version_info};

/// Routes for `/version`, `/api`, `/apis`, `/api/v1`, `/apis/<group>` and
/// `/apis/<group>/<version>`, to be merged into the API server's router.
/// `/api` and `/apis` negotiate aggregated discovery from `Accept`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/version",
            get(|| async { json_response(None, &version_info()) }),
        )
        .route("/api", get(serve_api))
        .route("/apis", get(serve_apis))
        .route(
            "/api/{version}",
            get(|Path(v): Path<String>| async move { found(resource_list("", &v)) }),
        )
        .route(
            "/apis/{group}",
            get(|Path(g): Path<String>| async move { found(api_group(&g)) }),
        )
        .route(
            "/apis/{group}/{version}",
            get(|Path((g, v)): Path<(String, String)>| async move { found(resource_list(&g, &v)) }),
        )
}

fn json_response(aggregated: Option<AggregatedVersion>, body: &Value) -> Response {
    let content_type =
        aggregated.map_or_else(|| "application/json".to_string(), |v| v.content_type());
    let mut resp = (StatusCode::OK, body.to_string()).into_response();
    let headers = resp.headers_mut();
    if let Ok(ct) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    // The body depends on Accept; caches must key on it.
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

fn found(body: Option<Value>) -> Response {
    match body {
        Some(body) => json_response(None, &body),
        None => {
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server could not find the requested resource",
                "reason": "NotFound", "details": {}, "code": 404,
            });
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "application/json")],
                status.to_string(),
            )
                .into_response()
        }
    }
}

fn accept(headers: &HeaderMap) -> &str {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn serve_api(headers: HeaderMap) -> Response {
    match wants_aggregated(accept(&headers)) {
        Some(v) => json_response(Some(v), &aggregated_legacy(v)),
        None => {
            // kube-apiserver reports its advertise address; the address the
            // client used is the closest we have.
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("127.0.0.1:6443");
            json_response(None, &api_versions(host))
        }
    }
}

async fn serve_apis(headers: HeaderMap) -> Response {
    match wants_aggregated(accept(&headers)) {
        Some(v) => json_response(Some(v), &aggregated_groups(v)),
        None => json_response(None, &api_group_list()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    async fn get_with_accept(path: &str, accept: &str) -> Response {
        use tower::ServiceExt;
        let req = axum::http::Request::get(path)
            .header(header::ACCEPT, accept)
            .body(axum::body::Body::empty())
            .expect("request");
        router::<()>().oneshot(req).await.expect("infallible")
    }

    #[tokio::test]
    async fn routes_echo_the_negotiated_content_type_and_404_unknown_groups() {
        let cases = [
            (
                "/api",
                KUBECTL_ACCEPT,
                StatusCode::OK,
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            ),
            (
                "/apis",
                KUBECTL_ACCEPT,
                StatusCode::OK,
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            ),
            (
                "/apis",
                "application/json",
                StatusCode::OK,
                "application/json",
            ),
            (
                "/api/v1",
                KUBECTL_ACCEPT,
                StatusCode::OK,
                "application/json",
            ),
            (
                "/apis/apps/v1",
                "application/json",
                StatusCode::OK,
                "application/json",
            ),
            (
                "/apis/apps",
                "application/json",
                StatusCode::OK,
                "application/json",
            ),
            (
                "/version",
                "application/json",
                StatusCode::OK,
                "application/json",
            ),
            (
                "/apis/nope/v1",
                "application/json",
                StatusCode::NOT_FOUND,
                "application/json",
            ),
            (
                "/api/v2",
                "application/json",
                StatusCode::NOT_FOUND,
                "application/json",
            ),
        ];
        for (path, accept, code, content_type) in cases {
            let resp = get_with_accept(path, accept).await;
            assert_eq!(resp.status(), code, "{path}");
            assert_eq!(resp.headers()[header::CONTENT_TYPE], content_type, "{path}");
        }
    }
}
