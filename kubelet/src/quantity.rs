//! Just enough of Kubernetes' resource.Quantity to turn `limits` into
//! cgroup numbers: memory in bytes, cpu in millicores (rounded up, as the
//! kubelet's `MilliValue` does).

/// `64Mi` → 67108864, `1G` → 10^9, `128974848`, `129e6`, `500m` (of a byte) → 1.
pub fn memory_bytes(text: &str) -> Option<i64> {
    let scaled = scaled(text)?;
    Some(scaled.ceil() as i64)
}

/// `500m` → 500, `2` → 2000, `0.1` → 100.
pub fn cpu_millis(text: &str) -> Option<i64> {
    let scaled = scaled(text)?;
    Some((scaled * 1000.0).ceil() as i64)
}

fn scaled(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    let value = number * factor;
    (value.is_finite() && value >= 0.0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities_convert_to_bytes() {
        for (text, want) in [
            ("64Mi", Some(64 << 20)),
            ("1Gi", Some(1 << 30)),
            ("1G", Some(1_000_000_000)),
            ("128974848", Some(128974848)),
            ("129e6", Some(129_000_000)),
            ("1.5Ki", Some(1536)),
            ("12x", None),
            ("", None),
        ] {
            assert_eq!(memory_bytes(text), want, "{text}");
        }
    }

    #[test]
    fn cpu_quantities_convert_to_millicores() {
        for (text, want) in [
            ("500m", Some(500)),
            ("2", Some(2000)),
            ("0.1", Some(100)),
            ("1k", Some(1_000_000)),
            ("-", None),
        ] {
            assert_eq!(cpu_millis(text), want, "{text}");
        }
    }
}
