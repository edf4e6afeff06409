//! Decoding `application/vnd.kubernetes.protobuf` request bodies into the
//! JSON the rest of the server speaks. client-go's typed clients (and so
//! kubectl's `create configmap|secret|deployment|...`) send protobuf and
//! have no JSON fallback; responses stay JSON, which they accept.
//!
//! The wire form (apimachinery `runtime/serializer/protobuf`): the magic
//! `k8s\0`, then a `runtime.Unknown` {1: TypeMeta{apiVersion, kind}, 2: the
//! object's own message, 3: contentEncoding, 4: contentType}. Objects are
//! decoded by walking the generated schema ([`schema_gen`], from
//! `scripts/gen-proto-schema.py`), so no kind needs code of its own.

mod decode;
pub mod schema;
mod schema_gen;
mod special;
mod wire;

use serde_json::{Map, Value};

use wire::{Reader, WireValue};

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type client-go sends.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be decoded; always the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body does not start with the Kubernetes protobuf prefix \"k8s\\x00\"")]
    NoMagic,
    #[error("the protobuf body is truncated at byte {offset}")]
    Truncated { offset: usize },
    #[error("malformed varint at byte {offset}")]
    BadVarint { offset: usize },
    #[error("invalid field number at byte {offset}")]
    BadFieldNumber { offset: usize },
    #[error("unsupported protobuf wire type {wire} at byte {offset}")]
    WireType { wire: u8, offset: usize },
    #[error("field {tag} of {message} has the wrong wire type {got}")]
    WrongWireType {
        message: &'static str,
        tag: u32,
        got: u8,
    },
    #[error("field {tag} of {message} is not valid UTF-8")]
    Utf8 { message: &'static str, tag: u32 },
    #[error("field {tag} of {message} is not a finite number")]
    NotFinite { message: &'static str, tag: u32 },
    #[error("the embedded JSON of a {message} is invalid: {source}")]
    EmbeddedJson {
        message: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("IntOrString type {0} is neither 0 (int) nor 1 (string)")]
    IntOrStringType(u64),
    #[error("time {seconds}s since the epoch is out of range")]
    TimeOutOfRange { seconds: i64 },
    #[error("the protobuf message nests too deeply")]
    TooDeep,
    #[error("no protobuf schema for {0}")]
    UnknownMessage(&'static str),
    #[error("no kind {kind:?} is registered for version {api_version:?}")]
    UnknownKind { api_version: String, kind: String },
    #[error("the protobuf envelope is missing apiVersion or kind")]
    MissingTypeMeta,
    #[error("unsupported content encoding {0:?} in the protobuf envelope")]
    ContentEncoding(String),
    #[error("unsupported content type {0:?} in the protobuf envelope")]
    ContentType(String),
}

/// Decodes a Kubernetes protobuf body into the object's JSON form, with
/// `apiVersion` and `kind` from the envelope.
pub fn decode_body(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = bytes.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let unknown = Unknown::parse(envelope)?;
    if unknown.api_version.is_empty() || unknown.kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    if !unknown.content_encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(unknown.content_encoding));
    }
    let mut object = match unknown.content_type.as_str() {
        "" | MEDIA_TYPE => {
            let name = message_name(&unknown.api_version, &unknown.kind).ok_or_else(|| {
                ProtobufError::UnknownKind {
                    api_version: unknown.api_version.clone(),
                    kind: unknown.kind.clone(),
                }
            })?;
            decode::message(name, unknown.raw)?
        }
        "application/json" => match serde_json::from_slice(unknown.raw) {
            Ok(Value::Object(map)) => map,
            Ok(_) => Map::new(),
            Err(source) => {
                return Err(ProtobufError::EmbeddedJson {
                    message: "runtime.Unknown",
                    source,
                });
            }
        },
        other => return Err(ProtobufError::ContentType(other.to_owned())),
    };
    object.insert("apiVersion".into(), Value::String(unknown.api_version));
    object.insert("kind".into(), Value::String(unknown.kind));
    Ok(Value::Object(object))
}

/// The schema name of a kind: `apps/v1` `Deployment` is
/// `io.k8s.api.apps.v1.Deployment`; meta types (`DeleteOptions`) are
/// registered in every group version, as in Kubernetes.
fn message_name(api_version: &str, kind: &str) -> Option<&'static str> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let package = match group {
        "" => "core",
        g => g.strip_suffix(".k8s.io").unwrap_or(g),
    };
    [
        format!("io.k8s.api.{package}.{version}.{kind}"),
        format!("io.k8s.apimachinery.pkg.apis.meta.v1.{kind}"),
    ]
    .iter()
    .find_map(|name| schema::message(name))
    .map(|m| m.name)
}

/// `runtime.Unknown`, the envelope.
#[derive(Default)]
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl<'a> Unknown<'a> {
    fn parse(buf: &'a [u8]) -> Result<Unknown<'a>, ProtobufError> {
        let mut out = Unknown::default();
        let mut r = Reader::new(buf);
        while let Some((tag, value)) = r.field()? {
            let WireValue::Bytes(b) = value else {
                return Err(ProtobufError::WrongWireType {
                    message: "runtime.Unknown",
                    tag,
                    got: value.wire_type(),
                });
            };
            match tag {
                1 => {
                    let mut tm = Reader::new(b);
                    while let Some((tag, value)) = tm.field()? {
                        let slot = match tag {
                            1 => &mut out.api_version,
                            2 => &mut out.kind,
                            _ => continue,
                        };
                        *slot = envelope_string("runtime.TypeMeta", tag, value)?;
                    }
                }
                2 => out.raw = b,
                3 => out.content_encoding = envelope_string("runtime.Unknown", 3, value)?,
                4 => out.content_type = envelope_string("runtime.Unknown", 4, value)?,
                _ => {}
            }
        }
        Ok(out)
    }
}

fn envelope_string(
    message: &'static str,
    tag: u32,
    value: WireValue<'_>,
) -> Result<String, ProtobufError> {
    match value {
        WireValue::Bytes(b) => std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| ProtobufError::Utf8 { message, tag }),
        other => Err(ProtobufError::WrongWireType {
            message,
            tag,
            got: other.wire_type(),
        }),
    }
}

#[cfg(test)]
mod tests;
