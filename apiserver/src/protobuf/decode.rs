//! Schema-driven decoding of one protobuf message into Kubernetes' JSON
//! form: JSON names and zero-value rules from the Go structs, maps as
//! objects, `bytes` as base64, the special types of [`super::special`].

use base64::Engine;
use serde_json::{Map, Number, Value};

use super::ProtobufError;
use super::schema::{self, Card, Field, Message, Ty};
use super::special::{self, Special};
use super::wire::{Reader, WireValue};

/// Deeper than any Kubernetes type nests; bounds recursion on hostile input.
const MAX_DEPTH: usize = 64;

/// Decodes `buf` as the message `name` into a JSON object.
pub fn message(name: &'static str, buf: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let schema = schema::message(name).ok_or(ProtobufError::UnknownMessage(name))?;
    let mut out = Map::new();
    decode_into(schema, buf, 0, &mut out)?;
    Ok(out)
}

fn decode_into(
    schema: &'static Message,
    buf: &[u8],
    depth: usize,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep);
    }
    let mut r = Reader::new(buf);
    while let Some((tag, value)) = r.field()? {
        // Like Go's generated unmarshallers, skip fields this schema does
        // not know: a newer client may send a field added after our table.
        let Some(field) = schema.field(tag) else {
            continue;
        };
        match field.card {
            Card::One if field.inline => {
                let (WireValue::Bytes(b), Ty::Msg(name)) = (value, field.ty) else {
                    return Err(wrong_wire(schema, field, value));
                };
                let inner = schema::message(name).ok_or(ProtobufError::UnknownMessage(name))?;
                decode_into(inner, b, depth + 1, out)?;
            }
            Card::One => match single(schema, field, value, depth)? {
                Some(v) => {
                    out.insert(field.json.to_owned(), v);
                }
                None => {
                    out.remove(field.json);
                }
            },
            Card::Many => {
                let mut new = Vec::new();
                match (field.ty, value) {
                    // Packed repeated scalars (proto3 style); gogo writes
                    // them unpacked, but a reader must take both.
                    (Ty::I32 | Ty::I64 | Ty::Bool | Ty::F64, WireValue::Bytes(b)) => {
                        let mut packed = Reader::new(b);
                        while !packed.is_empty() {
                            let v = match field.ty {
                                Ty::F64 => WireValue::Fixed64(packed.fixed64()?),
                                _ => WireValue::Varint(packed.varint()?),
                            };
                            new.push(scalar(schema, field, v)?);
                        }
                    }
                    _ => new.push(element(schema, field, value, depth)?),
                }
                match out.entry(field.json).or_insert(Value::Null) {
                    Value::Array(items) => items.extend(new),
                    slot => *slot = Value::Array(new),
                }
            }
            Card::Map => {
                let WireValue::Bytes(entry) = value else {
                    return Err(wrong_wire(schema, field, value));
                };
                let (key, v) = map_entry(schema, field, entry, depth)?;
                match out.entry(field.json).or_insert(Value::Null) {
                    Value::Object(map) => {
                        map.insert(key, v);
                    }
                    slot => *slot = Value::Object(Map::from_iter([(key, v)])),
                }
            }
        }
    }
    Ok(())
}

/// A singular field's JSON value, or `None` when kubectl's JSON would have
/// left it out.
fn single(
    schema: &'static Message,
    field: &'static Field,
    value: WireValue<'_>,
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    if let Ty::Msg(name) = field.ty {
        let WireValue::Bytes(b) = value else {
            return Err(wrong_wire(schema, field, value));
        };
        return Ok(match special::decode(name, b) {
            Some(result) => match result? {
                Special::Value(v) => Some(v),
                Special::Zero(v) => field.keep_zero.then_some(v),
                Special::Absent => None,
            },
            None => Some(nested(name, b, depth)?),
        });
    }
    let v = scalar(schema, field, value)?;
    Ok((field.keep_zero || !is_zero(&v)).then_some(v))
}

/// A repeated field's element or a map's value: zeros are kept.
fn element(
    schema: &'static Message,
    field: &'static Field,
    value: WireValue<'_>,
    depth: usize,
) -> Result<Value, ProtobufError> {
    let Ty::Msg(name) = field.ty else {
        return scalar(schema, field, value);
    };
    let WireValue::Bytes(b) = value else {
        return Err(wrong_wire(schema, field, value));
    };
    match special::decode(name, b) {
        Some(result) => Ok(match result? {
            Special::Value(v) | Special::Zero(v) => v,
            Special::Absent => Value::Null,
        }),
        None => nested(name, b, depth),
    }
}

fn nested(name: &'static str, buf: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let inner = schema::message(name).ok_or(ProtobufError::UnknownMessage(name))?;
    let mut map = Map::new();
    decode_into(inner, buf, depth + 1, &mut map)?;
    Ok(Value::Object(map))
}

/// A map entry `{1: key, 2: value}`; a missing value is the zero value.
fn map_entry(
    schema: &'static Message,
    field: &'static Field,
    entry: &[u8],
    depth: usize,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = None;
    let mut r = Reader::new(entry);
    while let Some((tag, v)) = r.field()? {
        match (tag, v) {
            (1, WireValue::Bytes(b)) => key = utf8(schema, field, b)?.to_owned(),
            (1, other) => return Err(wrong_wire(schema, field, other)),
            (2, v) => value = Some(element(schema, field, v, depth)?),
            _ => {}
        }
    }
    let value = match value {
        Some(v) => v,
        None => match field.ty {
            Ty::Str | Ty::Bytes => Value::String(String::new()),
            Ty::Bool => Value::Bool(false),
            Ty::I32 | Ty::I64 | Ty::F64 => Value::from(0),
            Ty::Msg(_) => element(schema, field, WireValue::Bytes(&[]), depth)?,
        },
    };
    Ok((key, value))
}

fn scalar(
    schema: &'static Message,
    field: &'static Field,
    value: WireValue<'_>,
) -> Result<Value, ProtobufError> {
    Ok(match (field.ty, value) {
        (Ty::Str, WireValue::Bytes(b)) => Value::String(utf8(schema, field, b)?.to_owned()),
        (Ty::Bytes, WireValue::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Ty::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        // int32 travels sign-extended to 64 bits; truncating restores it.
        (Ty::I32, WireValue::Varint(v)) => Value::from(v as i32),
        (Ty::I64, WireValue::Varint(v)) => Value::from(v as i64),
        (Ty::F64, WireValue::Fixed64(bits)) => Number::from_f64(f64::from_bits(bits))
            .map(Value::Number)
            .ok_or(ProtobufError::NotFinite {
                message: schema.name,
                tag: field.tag,
            })?,
        _ => return Err(wrong_wire(schema, field, value)),
    })
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

fn utf8<'a>(
    schema: &'static Message,
    field: &'static Field,
    b: &'a [u8],
) -> Result<&'a str, ProtobufError> {
    std::str::from_utf8(b).map_err(|_| ProtobufError::Utf8 {
        message: schema.name,
        tag: field.tag,
    })
}

fn wrong_wire(
    schema: &'static Message,
    field: &'static Field,
    value: WireValue<'_>,
) -> ProtobufError {
    ProtobufError::WrongWireType {
        message: schema.name,
        tag: field.tag,
        got: value.wire_type(),
    }
}
