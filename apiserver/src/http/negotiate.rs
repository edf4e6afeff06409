//! Content negotiation and request decoding: which representation the
//! client accepts (JSON, or the meta.k8s.io Table kubectl asks for) and how
//! a body in JSON, YAML or Kubernetes protobuf becomes a JSON value.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use crate::error::ApiError;

/// Largest request body, as kube-apiserver's `MaxRequestBodyBytes`.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// What the response should look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Table,
}

/// Reads the Accept header: the Table form when any alternative asks for
/// it (kubectl lists `as=Table` first, then plain JSON as a fallback).
pub fn output(headers: &HeaderMap) -> Result<Output, ApiError> {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    let mut json_ok = false;
    for alt in accept.split(',') {
        let mut parts = alt.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        match media {
            "application/json" | "*/*" | "application/*" => {
                if param("as") == Some("Table") && param("g") == Some("meta.k8s.io") {
                    return Ok(Output::Table);
                }
                if param("as").is_none() {
                    json_ok = true;
                }
            }
            "application/yaml"
            | "application/vnd.kubernetes.protobuf"
            | "application/vnd.kubernetes.protobuf;stream=watch" => {}
            _ => {}
        }
    }
    if json_ok {
        Ok(Output::Json)
    } else {
        Err(ApiError::not_acceptable(format!(
            "only the following media types are accepted: application/json, {TABLE_CONTENT_TYPE} (got {accept:?})"
        )))
    }
}

/// The `Content-Type` media type without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a request body, in JSON, YAML or Kubernetes protobuf, into a
/// JSON value.
pub fn decode_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::too_large());
    }
    let ct = content_type(headers);
    if ct == crate::protobuf::MEDIA_TYPE {
        // The envelope's apiVersion/kind are checked against the URL by the
        // store, as for JSON bodies.
        return crate::protobuf::decode_body(body)
            .map_err(|e| ApiError::bad_request(format!("failed to decode protobuf body: {e}")));
    }
    let yaml = ct.ends_with("yaml");
    if !yaml && !ct.ends_with("json") && !ct.is_empty() {
        return Err(ApiError::unsupported_media_type(&ct));
    }
    decode_bytes(body, yaml)
}

/// Whether [`decode_body`] would read `body` as JSON: a JSON content type
/// (not protobuf, not YAML) and a size within the limit.
pub fn is_plain_json(headers: &HeaderMap, body: &Bytes) -> bool {
    body.len() <= MAX_BODY && content_type(headers).ends_with("json")
}

/// JSON first (YAML is a superset, but JSON errors read better for JSON).
pub fn decode_bytes(body: &[u8], yaml: bool) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if yaml => serde_yaml_ng::from_slice::<Value>(body).map_err(|e| {
            ApiError::bad_request(format!(
                "error converting YAML to JSON: yaml: {e} (as JSON: {json_err})"
            ))
        }),
        Err(e) => Err(ApiError::bad_request(format!(
            "couldn't get version/kind; json parse error: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, v.parse().expect("header"));
        h
    }

    #[test]
    fn kubectl_table_accept_header_selects_tables() {
        let h = accept(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(output(&h).expect("ok"), Output::Table);
        assert_eq!(
            output(&accept("application/json")).expect("ok"),
            Output::Json
        );
        assert_eq!(output(&HeaderMap::new()).expect("ok"), Output::Json);
        assert_eq!(
            output(&accept("application/vnd.kubernetes.protobuf, */*")).expect("ok"),
            Output::Json
        );
        assert_eq!(
            output(&accept("application/vnd.kubernetes.protobuf")).map_err(|e| e.code),
            Err(406)
        );
    }

    #[test]
    fn protobuf_bodies_decode_and_bad_ones_are_400() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            "application/vnd.kubernetes.protobuf"
                .parse()
                .expect("header"),
        );
        // k8s\0, Unknown{typeMeta{"v1","Namespace"}, raw{metadata{name "x"}}}
        let body = Bytes::from_static(
            b"k8s\0\x0a\x0f\x0a\x02v1\x12\x09Namespace\x12\x05\x0a\x03\x0a\x01x",
        );
        let v = decode_body(&h, &body).expect("protobuf");
        assert_eq!(v["kind"], "Namespace");
        assert_eq!(v["metadata"]["name"], "x");
        let e = decode_body(&h, &Bytes::from_static(b"{}")).expect_err("not protobuf");
        assert_eq!(e.code, 400);
    }

    #[test]
    fn bodies_decode_from_json_and_yaml_and_bad_ones_are_400() {
        assert_eq!(decode_bytes(b"{\"a\":1}", false).expect("json")["a"], 1);
        assert_eq!(
            decode_bytes(b"a: 1\nb: [x]", true).expect("yaml")["b"][0],
            "x"
        );
        let e = decode_bytes(b"{\"a\":", false).expect_err("truncated");
        assert_eq!(e.code, 400);
        assert!(e.message.contains("json parse error"), "{}", e.message);
        let deep = "[".repeat(10_000);
        assert_eq!(
            decode_bytes(deep.as_bytes(), false).expect_err("deep").code,
            400
        );
    }
}
