//! The HTTP face of the API server: Kubernetes' URL layout
//! (`/api/v1/namespaces/{ns}/{resource}/{name}/{subresource}`,
//! `/apis/{group}/{version}/...`) routed to one `dyn Registry` per resource.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::registry::rest::{
    DeleteOptions, FieldValidation, ListOptions, PatchKind, Registry, Subresource, WriteOptions,
    WriteResult,
};

pub mod negotiate;
pub mod proxy;
mod watch;

use negotiate::{MAX_BODY, Output};

/// The routing table: (group, version, plural) → registry.
pub struct Api {
    pub registries: HashMap<(&'static str, &'static str, &'static str), Arc<dyn Registry>>,
    /// Signs the tokens of `serviceaccounts/<name>/token`.
    pub tokens: Arc<crate::serviceaccount::TokenSigner>,
}

pub type AppState = Arc<Api>;

/// The resource routes; discovery, OpenAPI and health are merged in by the
/// server.
pub fn router(api: AppState) -> Router {
    Router::new()
        .route("/api/{*rest}", axum::routing::any(dispatch_core))
        .route("/apis/{*rest}", axum::routing::any(dispatch_groups))
        .with_state(api)
}

/// A parsed resource URL.
struct Target {
    registry: Arc<dyn Registry>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    watch_path: bool,
}

fn json_response(code: u16, value: &Value, warnings: &[String]) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    encoded_response(code, Bytes::from(body), warnings)
}

/// A JSON answer whose body is already encoded.
fn encoded_response(code: u16, body: Bytes, warnings: &[String]) -> Response {
    let mut resp = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}

fn query_map(req: &Request) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

async fn dispatch_core(State(api): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // segs[0] == "api"
    match segs.get(1) {
        Some(&"v1") => dispatch(api, "", "v1", &segs[2..], req).await,
        _ => ApiError::path_not_found(&path).into_response(),
    }
}

async fn dispatch_groups(State(api): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (segs.get(1), segs.get(2)) {
        (Some(g), None) if req.method() == Method::GET => crate::discovery_routes::group(g),
        (Some(g), Some(v)) => {
            let (g, v) = (g.to_string(), v.to_string());
            let rest: Vec<&str> = segs[3..].to_vec();
            dispatch(api, &g, &v, &rest, req).await
        }
        _ => ApiError::path_not_found(&path).into_response(),
    }
}

fn resolve(api: &Api, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let (watch_path, rest) = match rest.first() {
        Some(&"watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let find = |plural: &str| {
        common::resources::find(group, version, plural)
            .and_then(|i| api.registries.get(&(i.group, i.version, i.plural)).cloned())
    };
    let owned = |s: &&str| s.to_string();
    match rest {
        // Namespaced paths, except the namespace object's own subresources.
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            let registry = find(plural)?;
            if !registry.info().namespaced() || tail.len() > 2 {
                return None;
            }
            Some(Target {
                registry,
                namespace: Some(ns.to_string()),
                name: tail.first().map(owned),
                sub: tail.get(1).map(owned),
                watch_path,
            })
        }
        [plural, tail @ ..] if tail.len() <= 2 => {
            let registry = find(plural)?;
            if registry.info().namespaced() && !tail.is_empty() {
                return None;
            }
            Some(Target {
                registry,
                namespace: None,
                name: tail.first().map(owned),
                sub: tail.get(1).map(owned),
                watch_path,
            })
        }
        _ => None,
    }
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "1" || v == "true")
}

fn list_options(q: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
    let label =
        common::selector::LabelSel::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let field =
        common::selector::FieldSel::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = match q.get("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
        _ => 0,
    };
    Ok(ListOptions {
        label,
        field,
        limit,
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: q.get("resourceVersion").cloned(),
        resource_version_match: q
            .get("resourceVersionMatch")
            .filter(|c| !c.is_empty())
            .cloned(),
        send_initial_events: q.get("sendInitialEvents").map(|v| v == "true" || v == "1"),
    })
}

/// The default field manager, from the User-Agent as Kubernetes derives it
/// (`kubectl/v1.32.4 (linux/amd64) ...` → `kubectl`).
fn default_manager(headers: &HeaderMap) -> String {
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    ua.split('/')
        .next()
        .unwrap_or(ua)
        .chars()
        .take(128)
        .collect()
}

fn write_options(
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<WriteOptions, ApiError> {
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn, Strict; got {other:?}"
            )));
        }
    };
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )));
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_manager: q
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .cloned()
            .unwrap_or_else(|| default_manager(headers)),
        field_validation,
        force: truthy(q, "force"),
        body_field_errors: None,
        apply_yaml_duplicates: Vec::new(),
    })
}

fn delete_options(
    q: &HashMap<String, String>,
    body: Option<&Value>,
) -> Result<DeleteOptions, ApiError> {
    let mut o = DeleteOptions::default();
    if let Some(b) = body {
        o.grace_period_seconds = b["gracePeriodSeconds"].as_i64();
        o.propagation_policy = b["propagationPolicy"].as_str().map(str::to_string);
        if b["orphanDependents"].as_bool() == Some(true) {
            o.propagation_policy = Some("Orphan".into());
        }
        o.precondition_uid = b["preconditions"]["uid"].as_str().map(str::to_string);
        o.precondition_resource_version = b["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
        o.dry_run = b["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    }
    if let Some(g) = q.get("gracePeriodSeconds") {
        o.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(p) = q.get("propagationPolicy") {
        o.propagation_policy = Some(p.clone());
    }
    if q.get("orphanDependents").is_some_and(|v| v == "true") {
        o.propagation_policy = Some("Orphan".into());
    }
    if q.get("dryRun").is_some_and(|v| v == "All") {
        o.dry_run = true;
    }
    if let Some(p) = &o.propagation_policy
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    Ok(o)
}

/// Reads a body of at most `MAX_BODY` bytes. A larger one is drained (up
/// to a bound) before the 413 answer, so the client, still sending, reads
/// the Status instead of a reset connection.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                buf.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::too_large());
    }
    Ok(buf.freeze())
}

async fn dispatch(
    api: AppState,
    group: &str,
    version: &str,
    rest: &[&str],
    req: Request,
) -> Response {
    match dispatch_inner(api, group, version, rest, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn dispatch_inner(
    api: AppState,
    group: &str,
    version: &str,
    rest: &[&str],
    req: Request,
) -> Result<Response, ApiError> {
    if rest.is_empty() {
        return Ok(crate::discovery_routes::resource_list(
            group,
            version,
            req.headers(),
        ));
    }
    if proxy::handles(group, rest) {
        let rest = rest.iter().map(|s| s.to_string()).collect();
        return Ok(proxy::serve(api, rest, req).await);
    }
    let path = req.uri().path().to_string();
    let target =
        resolve(&api, group, version, rest).ok_or_else(|| ApiError::path_not_found(&path))?;
    let q = query_map(&req);
    let method = req.method().clone();
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let output = if method == Method::GET {
        negotiate::output(&headers)?
    } else {
        Output::Json
    };
    let body = read_body(body).await?;
    let reg = target.registry.clone();
    let ns = target.namespace.as_deref();
    let info = reg.info();
    match (&target.name, &target.sub) {
        (None, None) => match method {
            Method::GET => {
                let opts = list_options(&q)?;
                reg.check_field_selector(&opts)?;
                if target.watch_path || truthy(&q, "watch") {
                    return watch::serve(reg, ns, opts, &q, output).await;
                }
                let list = reg.list(ns, &opts).await?;
                Ok(list_response(reg.as_ref(), list, output, &q)?)
            }
            Method::POST => {
                let opts = write_options(&q, &headers)?;
                if info.plural == "bindings" {
                    return Err(ApiError::method_not_allowed("use pods/binding"));
                }
                // A JSON body is decoded straight into its kind's type; the
                // general path answers whatever that cannot take.
                if negotiate::is_plain_json(&headers, &body)
                    && let Some(created) = reg.create_json(ns, &body, &opts).await?
                {
                    return Ok(write_response(created));
                }
                let body_kind = (info.group, info.version, info.kind);
                let opts = with_field_errors(opts, body_kind, &headers, &body);
                let obj = negotiate::decode_body(&headers, &body)?;
                Ok(write_response(reg.create(ns, obj, &opts).await?))
            }
            Method::DELETE => {
                let body = (!body.is_empty())
                    .then(|| negotiate::decode_body(&headers, &body))
                    .transpose()?;
                let opts = delete_options(&q, body.as_ref())?;
                let items = reg.delete_collection(ns, &list_options(&q)?, &opts).await?;
                Ok(json_response(
                    200,
                    &json!({
                        "kind": format!("{}List", info.kind),
                        "apiVersion": info.api_version(),
                        "metadata": {},
                        "items": items,
                    }),
                    &[],
                ))
            }
            _ => Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on a collection"
            ))),
        },
        (Some(name), sub) => {
            let sub = match sub.as_deref() {
                None => Subresource::Main,
                Some(s) if info.subresources.contains(&s) => match s {
                    "status" => Subresource::Status,
                    "scale" => Subresource::Scale,
                    "binding" => {
                        if method != Method::POST {
                            return Err(ApiError::method_not_allowed(
                                "binding only supports create",
                            ));
                        }
                        let opts = write_options(&q, &headers)?;
                        let obj = negotiate::decode_body(&headers, &body)?;
                        return Ok(write_response(reg.bind(ns, name, obj, &opts).await?));
                    }
                    "token" => {
                        if method != Method::POST {
                            return Err(ApiError::method_not_allowed("token only supports create"));
                        }
                        let obj = negotiate::decode_body(&headers, &body)?;
                        let answer = crate::serviceaccount::create_token(
                            &api.registries,
                            &api.tokens,
                            ns.unwrap_or("default"),
                            name,
                            obj,
                        )
                        .await?;
                        return Ok(json_response(201, &answer, &[]));
                    }
                    _ => return Err(ApiError::path_not_found(&path)),
                },
                Some(_) => return Err(ApiError::path_not_found(&path)),
            };
            match method {
                Method::GET => {
                    if sub == Subresource::Scale {
                        return Ok(json_response(200, &reg.get_scale(ns, name).await?, &[]));
                    }
                    let obj = reg
                        .get(ns, name, q.get("resourceVersion").map(String::as_str))
                        .await?;
                    if output == Output::Table {
                        let raw = Bytes::from(serde_json::to_vec(&obj).unwrap_or_default());
                        let mut table = reg.to_table(&[raw], include_object(&q), true)?;
                        table["metadata"]["resourceVersion"] =
                            obj["metadata"]["resourceVersion"].clone();
                        return Ok(table_response(&table));
                    }
                    Ok(json_response(200, &obj, &[]))
                }
                Method::PUT => {
                    let body_kind = match sub {
                        Subresource::Scale => crate::registry::store::SCALE,
                        _ => (info.group, info.version, info.kind),
                    };
                    let opts =
                        with_field_errors(write_options(&q, &headers)?, body_kind, &headers, &body);
                    let obj = negotiate::decode_body(&headers, &body)?;
                    Ok(write_response(reg.update(ns, name, obj, sub, &opts).await?))
                }
                Method::PATCH => {
                    let ct = negotiate::content_type(&headers);
                    let kind = PatchKind::from_content_type(&ct)
                        .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
                    let opts = with_patch_duplicates(write_options(&q, &headers)?, kind, &body);
                    if kind == PatchKind::Apply && !q.contains_key("fieldManager") {
                        return Err(ApiError::unprocessable(
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                        ));
                    }
                    if kind != PatchKind::Apply && q.contains_key("force") {
                        return Err(ApiError::unprocessable(
                            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
                        ));
                    }
                    let patch = negotiate::decode_bytes(&body, kind == PatchKind::Apply)?;
                    Ok(write_response(
                        reg.patch(ns, name, kind, patch, sub, &opts).await?,
                    ))
                }
                Method::DELETE if sub == Subresource::Main => {
                    let body = (!body.is_empty())
                        .then(|| negotiate::decode_body(&headers, &body))
                        .transpose()?;
                    let opts = delete_options(&q, body.as_ref())?;
                    Ok(write_response(reg.delete(ns, name, &opts).await?))
                }
                _ => Err(ApiError::method_not_allowed(format!(
                    "{method} is not supported here"
                ))),
            }
        }
        (None, Some(_)) => Err(ApiError::path_not_found(&path)),
    }
}

/// Duplicate keys survive only in the raw JSON: for `fieldValidation`, a
/// JSON body's unknown and duplicate fields are found in one pass over its
/// bytes, as Kubernetes' decoder finds them. A body that does not parse is
/// left to the decoder, which reports why.
fn with_field_errors(
    mut opts: WriteOptions,
    (group, version, kind): (&str, &str, &str),
    headers: &HeaderMap,
    body: &Bytes,
) -> WriteOptions {
    if opts.field_validation != FieldValidation::Ignore
        && negotiate::content_type(headers).ends_with("json")
    {
        opts.body_field_errors =
            crate::openapi::validate::strict_errors(group, version, kind, body)
                .ok()
                .map(|errors| errors.iter().map(ToString::to_string).collect());
    }
    opts
}

/// A PATCH's duplicate keys, from the raw patch (`json patch ` before each
/// for a JSON patch, as kube-apiserver words them); the patched object's
/// unknown fields are the store's to find. An apply body's are its YAML's
/// repeated keys, which Kubernetes checks after applying it.
fn with_patch_duplicates(mut opts: WriteOptions, kind: PatchKind, body: &Bytes) -> WriteOptions {
    use crate::openapi::validate::{self, StrictError, StrictErrorKind};
    if opts.field_validation == FieldValidation::Ignore {
        return opts;
    }
    if kind == PatchKind::Apply {
        opts.apply_yaml_duplicates = validate::yaml_duplicate_keys(body);
        return opts;
    }
    let prefix = if kind == PatchKind::Json {
        "json patch "
    } else {
        ""
    };
    let errors = validate::duplicate_fields(body).into_iter().map(|path| {
        let error = StrictError {
            kind: StrictErrorKind::Duplicate,
            path,
        };
        format!("{prefix}{error}")
    });
    opts.body_field_errors = Some(errors.collect());
    opts
}

fn include_object(q: &HashMap<String, String>) -> &str {
    q.get("includeObject")
        .map(String::as_str)
        .unwrap_or("Metadata")
}

fn write_response(r: WriteResult) -> Response {
    match r.encoded {
        Some(body) => encoded_response(r.code, body, &r.warnings),
        None => json_response(r.code, &r.object, &r.warnings),
    }
}

fn table_response(table: &Value) -> Response {
    let body = serde_json::to_vec(table).unwrap_or_default();
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, negotiate::TABLE_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// Assembles a list from pre-serialized items without re-encoding them.
fn list_response(
    reg: &dyn Registry,
    list: crate::registry::rest::ListResult,
    output: Output,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let info = reg.info();
    let mut meta = json!({"resourceVersion": list.resource_version.to_string()});
    if let Some(c) = &list.continue_token {
        meta["continue"] = json!(c);
    }
    if output == Output::Table {
        let mut table = reg.to_table(&list.items, include_object(q), true)?;
        table["metadata"] = meta;
        return Ok(table_response(&table));
    }
    let head = format!(
        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
        info.kind,
        info.api_version(),
        meta
    );
    let size = head.len() + list.items.iter().map(|i| i.len() + 1).sum::<usize>() + 2;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(head.as_bytes());
    for (i, item) in list.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    Ok((
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}
