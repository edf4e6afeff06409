//! Just enough of apimachinery's `resource.Quantity` to compare resource
//! requests with limits and compute a pod's QoS class: parse the canonical
//! syntax (`100m`, `1.5Gi`, `1e3`) into an exact count of nano-units.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The message of apimachinery's `ErrFormatWrong`.
pub const QUANTITY_FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A quantity's value in units of 10^-9, saturating at the bounds of `i128`.
pub fn parse_nanos(q: &Quantity) -> Option<i128> {
    parse_str(q.0.trim())
}

fn parse_str(s: &str) -> Option<i128> {
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    // The mantissa as an integer with `frac_part.len()` decimal places.
    let mut mantissa: i128 = 0;
    for d in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .saturating_mul(10)
            .saturating_add(i128::from(d - b'0'));
    }
    let scale = i64::try_from(frac_part.len()).unwrap_or(i64::MAX);
    let (binary, decimal_exp): (u32, i32) = match suffix {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (0, exp.parse::<i32>().ok()?)
        }
    };
    let mut value = mantissa.saturating_mul(1i128 << binary);
    let exp10 = i64::from(decimal_exp)
        .saturating_add(9)
        .saturating_sub(scale);
    if exp10 >= 0 {
        for _ in 0..exp10.min(40) {
            value = value.saturating_mul(10);
        }
    } else {
        // Kubernetes rounds sub-nano precision up.
        let div = u32::try_from(exp10.unsigned_abs())
            .ok()
            .and_then(|e| 10i128.checked_pow(e))
            .unwrap_or(i128::MAX);
        value = value / div + i128::from(value % div != 0);
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes_and_exponents_exactly() {
        let cases = [
            ("1", Some(1_000_000_000)),
            ("100m", Some(100_000_000)),
            ("0.1", Some(100_000_000)),
            ("1Ki", Some(1024 * 1_000_000_000)),
            ("1.5Gi", Some(1_610_612_736 * 1_000_000_000)),
            ("1e3", Some(1_000 * 1_000_000_000)),
            ("2k", Some(2_000 * 1_000_000_000)),
            ("-1", Some(-1_000_000_000)),
            ("1n", Some(1)),
            ("abc", None),
            ("1Qi", None),
            ("", None),
            ("1e-2147483648", Some(1)),
            ("1e2147483647", Some(i128::MAX)),
        ];
        for (s, want) in cases {
            assert_eq!(parse_str(s), want, "{s}");
        }
    }
}
