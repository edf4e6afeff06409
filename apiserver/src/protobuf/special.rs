//! Types whose protobuf form differs from their JSON form: Kubernetes
//! marshals them by hand in both encodings (`resource.Quantity`,
//! `intstr.IntOrString`, `meta/v1.Time`, `MicroTime`, `Duration`,
//! `runtime.RawExtension`, `meta/v1.FieldsV1`).

use serde_json::Value;

use super::ProtobufError;
use super::wire::{Reader, WireValue};

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Duration";
const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";
const FIELDS_V1: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1";

/// A decoded special value: `Zero` when it is the type's zero value, which
/// the caller drops unless the Go field is a pointer.
pub enum Special {
    Value(Value),
    Zero(Value),
    /// Zero values that Go's JSON writes as `null` (Time, RawExtension):
    /// always omitted.
    Absent,
}

/// The fields of a small message, last value wins as in protobuf.
#[derive(Default)]
struct Fields<'a> {
    varints: [Option<u64>; 4],
    bytes: [Option<&'a [u8]>; 4],
}

fn fields<'a>(name: &'static str, buf: &'a [u8]) -> Result<Fields<'a>, ProtobufError> {
    let mut out = Fields::default();
    let mut r = Reader::new(buf);
    while let Some((tag, value)) = r.field()? {
        let Some(i) = usize::try_from(tag).ok().filter(|i| *i < 4) else {
            continue;
        };
        match value {
            WireValue::Varint(v) => out.varints[i] = Some(v),
            WireValue::Bytes(b) => out.bytes[i] = Some(b),
            other => {
                return Err(ProtobufError::WrongWireType {
                    message: name,
                    tag,
                    got: other.wire_type(),
                });
            }
        }
    }
    Ok(out)
}

fn utf8<'a>(message: &'static str, tag: u32, b: &'a [u8]) -> Result<&'a str, ProtobufError> {
    std::str::from_utf8(b).map_err(|_| ProtobufError::Utf8 { message, tag })
}

/// Decodes `buf` as the special type `name`, or `None` when `name` is an
/// ordinary message.
pub fn decode(name: &'static str, buf: &[u8]) -> Option<Result<Special, ProtobufError>> {
    let result = match name {
        QUANTITY => quantity(buf),
        INT_OR_STRING => int_or_string(buf),
        TIME => time(name, buf, false),
        MICRO_TIME => time(name, buf, true),
        DURATION => duration(buf),
        RAW_EXTENSION | FIELDS_V1 => raw_json(name, buf),
        _ => return None,
    };
    Some(result)
}

fn quantity(buf: &[u8]) -> Result<Special, ProtobufError> {
    let f = fields(QUANTITY, buf)?;
    let s = utf8(QUANTITY, 1, f.bytes[1].unwrap_or_default())?;
    Ok(if s.is_empty() {
        Special::Absent
    } else {
        Special::Value(Value::String(s.to_owned()))
    })
}

fn int_or_string(buf: &[u8]) -> Result<Special, ProtobufError> {
    let f = fields(INT_OR_STRING, buf)?;
    Ok(match f.varints[1].unwrap_or(0) {
        0 => {
            // int32 on the wire is sign-extended to 64 bits.
            let n = f.varints[2].unwrap_or(0) as i32;
            if n == 0 {
                Special::Zero(Value::from(0))
            } else {
                Special::Value(Value::from(n))
            }
        }
        1 => Special::Value(Value::String(
            utf8(INT_OR_STRING, 3, f.bytes[3].unwrap_or_default())?.to_owned(),
        )),
        other => return Err(ProtobufError::IntOrStringType(other)),
    })
}

fn time(name: &'static str, buf: &[u8], micro: bool) -> Result<Special, ProtobufError> {
    let f = fields(name, buf)?;
    let seconds = f.varints[1].unwrap_or(0) as i64;
    let nanos = f.varints[2].unwrap_or(0) as i32;
    // Go marshals the zero time.Time as an empty message.
    if seconds == 0 && nanos == 0 {
        return Ok(Special::Absent);
    }
    let ts = jiff::Timestamp::new(seconds, if micro { nanos } else { 0 })
        .map_err(|_| ProtobufError::TimeOutOfRange { seconds })?;
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(Special::Value(Value::String(if micro {
        // metav1.RFC3339Micro: always six digits.
        format!("{base}.{:06}Z", ts.subsec_microsecond())
    } else {
        format!("{base}Z")
    })))
}

fn duration(buf: &[u8]) -> Result<Special, ProtobufError> {
    let f = fields(DURATION, buf)?;
    let ns = f.varints[1].unwrap_or(0) as i64;
    let s = Value::String(go_duration(ns));
    Ok(if ns == 0 {
        Special::Zero(s)
    } else {
        Special::Value(s)
    })
}

fn raw_json(name: &'static str, buf: &[u8]) -> Result<Special, ProtobufError> {
    let f = fields(name, buf)?;
    match f.bytes[1] {
        None | Some([]) => Ok(Special::Absent),
        Some(raw) => serde_json::from_slice(raw)
            .map(Special::Value)
            .map_err(|source| ProtobufError::EmbeddedJson {
                message: name,
                source,
            }),
    }
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1m0s`, `1.5ms`, `0s`.
pub fn go_duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    if u == 0 {
        return "0s".to_owned();
    }
    if u < 1_000_000_000 {
        let (unit, div, digits) = match u {
            0..1_000 => ("ns", 1, 0),
            1_000..1_000_000 => ("µs", 1_000, 3),
            _ => ("ms", 1_000_000, 6),
        };
        return format!("{sign}{}{unit}", with_fraction(u / div, u % div, digits));
    }
    let secs = u / 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = sign.to_owned();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&with_fraction(s, u % 1_000_000_000, 9));
    out.push('s');
    out
}

/// `whole.fraction` with the fraction's trailing zeros (and a bare dot) cut.
fn with_fraction(whole: u64, fraction: u64, digits: usize) -> String {
    if fraction == 0 || digits == 0 {
        return whole.to_string();
    }
    let frac = format!("{fraction:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        for (ns, want) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (2_000_000, "2ms"),
            (1_000_000_000, "1s"),
            (60_000_000_000, "1m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-90_000_000_000, "-1m30s"),
        ] {
            assert_eq!(go_duration(ns), want, "{ns}");
        }
    }
}
