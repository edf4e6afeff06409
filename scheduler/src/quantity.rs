//! Resource quantities (`100m`, `1.5Gi`, `2e3`) as the scheduler counts
//! them: CPU in millicores and everything else in whole units, both
//! rounded up like apimachinery's `MilliValue()` and `Value()`.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The exact value of a quantity in nano-units, or `None` when malformed.
pub fn parse_nanos(s: &str) -> Option<i128> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (negative, digits) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // Value as mantissa * 10^exp10 * 2^exp2.
    let mut mantissa: i128 = 0;
    let mut exp10: i32 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    exp10 -= i32::try_from(frac_part.len()).ok()?;
    let mut exp2 = 0u32;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))?;
            exp10 += exp.parse::<i32>().ok()?;
        }
    }
    // Into nano-units: multiply by 10^9 first so fractions survive.
    exp10 += 9;
    let mut value = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    if exp10 >= 0 {
        value = value.checked_mul(10i128.checked_pow(u32::try_from(exp10).ok()?)?)?;
    } else {
        let div = 10i128.checked_pow(u32::try_from(-exp10).ok()?)?;
        // Below a nano-unit apimachinery rounds up as well.
        value = (value + div - 1) / div;
    }
    Some(if negative { -value } else { value })
}

fn ceil_div(v: i128, d: i128) -> i64 {
    let q = v.div_euclid(d) + i128::from(v.rem_euclid(d) != 0);
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

/// `MilliValue()`: millicores for CPU; malformed quantities count as 0,
/// the API server having validated them already.
pub fn milli_value(q: &Quantity) -> i64 {
    parse_nanos(&q.0).map_or(0, |n| ceil_div(n, 1_000_000))
}

/// `Value()`: whole units (bytes, pods, devices), rounded up.
pub fn value(q: &Quantity) -> i64 {
    parse_nanos(&q.0).map_or(0, |n| ceil_div(n, 1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_to_the_units_kubernetes_counts() {
        let cases: &[(&str, i64, i64)] = &[
            ("100m", 100, 1),
            ("1", 1000, 1),
            ("1.5", 1500, 2),
            ("2Gi", 2 * 1024 * 1024 * 1024 * 1000, 2 * 1024 * 1024 * 1024),
            ("1k", 1_000_000, 1000),
            ("1e3", 1_000_000, 1000),
            ("500M", 500_000_000_000, 500_000_000),
            ("0", 0, 0),
            ("1n", 1, 1),
        ];
        for (text, milli, whole) in cases {
            let q = Quantity(text.to_string());
            assert_eq!(milli_value(&q), *milli, "{text} milli");
            assert_eq!(value(&q), *whole, "{text} value");
        }
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for bad in ["", "abc", "1Qi", "1..2", "--1"] {
            assert_eq!(parse_nanos(bad), None, "{bad}");
        }
    }
}
