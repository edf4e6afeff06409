//! Cell formatting shared by the table printers: apimachinery's
//! `duration.HumanDuration` / `ShortHumanDuration`, the `<none>` and
//! `<unknown>` placeholders, label maps and selectors in their string form,
//! and lists shortened to `a,b,c + N more...`, as `printers.go` writes them.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};

/// Printed for an empty list, map or optional value.
pub const NONE: &str = "<none>";
/// Printed for a missing timestamp or an unknown type.
pub const UNKNOWN: &str = "<unknown>";
/// Printed by the discovery printers for an empty list or unset pointer.
pub const UNSET: &str = "<unset>";

/// apimachinery's `duration.HumanDuration`: about two significant figures
/// (`45s`, `2m30s`, `10m`, `3h5m`, `2d3h`, `400d`, `3y20d`, `9y`).
pub fn human_duration(d: SignedDuration) -> String {
    // Up to two seconds into the future count as "now": clocks of the
    // server and the writer of the timestamp may disagree slightly.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// apimachinery's `duration.ShortHumanDuration`: one unit only
/// (`59s`, `59m`, `23h`, `364d`, `2y`).
pub fn short_human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 24 {
        return format!("{hours}h");
    }
    if hours < 24 * 365 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: the human duration from `ts` to `now`, or
/// `<unknown>` when the timestamp is missing.
pub fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) => human_duration(now.duration_since(ts)),
        None => UNKNOWN.to_string(),
    }
}

/// [`since`] for an optional `metav1.Time` (the AGE column).
pub fn age(ts: Option<&Time>, now: Timestamp) -> String {
    since(ts.map(|t| t.0), now)
}

/// The string of an optional field, empty when unset (Go's zero value).
pub fn opt(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or_default()
}

/// Joins with `,`, or `<none>` when there is nothing to join.
pub fn join_or_none<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let joined = items
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(",");
    if joined.is_empty() {
        NONE.to_string()
    } else {
        joined
    }
}

/// The first `max` items joined with `,`, followed by ` + N more...` when
/// there were more; empty when there are no items.
pub fn join_truncated<I>(items: I, max: usize) -> String
where
    I: IntoIterator<Item = String>,
{
    let mut shown = Vec::with_capacity(max);
    let mut count = 0usize;
    for item in items {
        if shown.len() < max {
            shown.push(item);
        }
        count += 1;
    }
    let joined = shown.join(",");
    if count > max {
        format!("{joined} + {} more...", count - max)
    } else {
        joined
    }
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
pub fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    join_or_none(
        labels
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}")),
    )
}

/// Why a `LabelSelector` has no string form (`LabelSelectorAsSelector`
/// failed); printers show `<error>` or `<invalid>` for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorFormatError {
    #[error("{0:?} is not a valid label selector operator")]
    Operator(String),
    #[error("for 'in', 'notin' operators, values set can't be empty")]
    EmptyValues,
    #[error("values set must be empty for exists and does not exist")]
    UnexpectedValues,
}

/// `LabelSelectorAsSelector(sel).String()`: requirements sorted by key,
/// `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`. `None` (select nothing)
/// and an empty selector (select everything) both print as "".
///
/// Key and value syntax is not re-checked here: the object was validated
/// when it was written.
pub fn label_selector_string(sel: Option<&LabelSelector>) -> Result<String, SelectorFormatError> {
    let Some(sel) = sel else {
        return Ok(String::new());
    };
    let mut reqs: Vec<(&str, String)> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push((k, format!("{k}={v}")));
    }
    for e in sel.match_expressions.iter().flatten() {
        let mut values: Vec<&str> = e.values.iter().flatten().map(String::as_str).collect();
        values.sort_unstable();
        let key = e.key.as_str();
        let s = match e.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    return Err(SelectorFormatError::EmptyValues);
                }
                let op = if e.operator == "In" { "in" } else { "notin" };
                format!("{key} {op} ({})", values.join(","))
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    return Err(SelectorFormatError::UnexpectedValues);
                }
                if e.operator == "Exists" {
                    key.to_string()
                } else {
                    format!("!{key}")
                }
            }
            op => return Err(SelectorFormatError::Operator(op.to_string())),
        };
        reqs.push((key, s));
    }
    reqs.sort_by(|a, b| a.0.cmp(b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(","))
}

/// `metav1.FormatLabelSelector`: the selector string, `<none>` when it
/// is empty, `<error>` when it cannot be converted.
pub fn format_label_selector(sel: Option<&LabelSelector>) -> String {
    match label_selector_string(sel) {
        Ok(s) if s.is_empty() => NONE.to_string(),
        Ok(s) => s,
        Err(_) => "<error>".to_string(),
    }
}

/// `layoutContainerCells`: container names and images, each joined by `,`.
pub fn container_cells(containers: &[Container]) -> (String, String) {
    let names = containers
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let images = containers
        .iter()
        .map(|c| opt(&c.image))
        .collect::<Vec<_>>()
        .join(",");
    (names, images)
}

/// `printBool`: Go's `True` / `False` spelling used in string cells.
pub fn print_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    #[test]
    fn human_duration_matches_apimachinery_table() {
        let cases: &[(SignedDuration, &str)] = &[
            (SignedDuration::from_millis(-2500), "<invalid>"),
            (secs(-2), "<invalid>"),
            (SignedDuration::from_millis(-1500), "0s"),
            (secs(-1), "0s"),
            (SignedDuration::from_millis(-500), "0s"),
            (secs(0), "0s"),
            (SignedDuration::from_millis(1999), "1s"),
            (secs(5), "5s"),
            (secs(119), "119s"),
            (secs(120), "2m"),
            (secs(150), "2m30s"),
            (secs(599), "9m59s"),
            (secs(600), "10m"),
            (secs(179 * 60 + 59), "179m"),
            (secs(3 * 3600), "3h"),
            (secs(3 * 3600 + 5 * 60), "3h5m"),
            (secs(8 * 3600 - 1), "7h59m"),
            (secs(8 * 3600), "8h"),
            (secs(47 * 3600 + 59 * 60), "47h"),
            (secs(48 * 3600), "2d"),
            (secs(51 * 3600), "2d3h"),
            (secs(8 * 86400 - 1), "7d23h"),
            (secs(8 * 86400), "8d"),
            (secs(400 * 86400), "400d"),
            (secs(2 * 365 * 86400 - 1), "729d"),
            (secs(2 * 365 * 86400), "2y"),
            (secs(3 * 365 * 86400 + 20 * 86400), "3y20d"),
            (secs(8 * 365 * 86400 - 1), "7y364d"),
            (secs(8 * 365 * 86400), "8y"),
            (secs(9 * 365 * 86400 + 100 * 86400), "9y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "human_duration({d:?})");
        }
    }

    #[test]
    fn short_human_duration_keeps_one_unit() {
        let cases: &[(SignedDuration, &str)] = &[
            (secs(-3), "<invalid>"),
            (secs(-1), "0s"),
            (secs(59), "59s"),
            (secs(60), "1m"),
            (secs(3599), "59m"),
            (secs(3600), "1h"),
            (secs(86399), "23h"),
            (secs(86400), "1d"),
            (secs(364 * 86400), "364d"),
            (secs(365 * 86400), "1y"),
            (secs(800 * 86400), "2y"),
        ];
        for (d, want) in cases {
            assert_eq!(
                short_human_duration(*d),
                *want,
                "short_human_duration({d:?})"
            );
        }
    }

    #[test]
    fn age_is_unknown_without_a_timestamp() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().expect("timestamp");
        assert_eq!(age(None, now), "<unknown>");
        let created = Time("2024-05-01T11:57:30Z".parse().expect("timestamp"));
        assert_eq!(age(Some(&created), now), "2m30s");
        let future = Time("2024-05-01T12:00:10Z".parse().expect("timestamp"));
        assert_eq!(age(Some(&future), now), "<invalid>");
    }

    #[test]
    fn join_truncated_shows_three_then_counts_the_rest() {
        let items = |n: usize| (1..=n).map(|i| format!("a{i}"));
        assert_eq!(join_truncated(items(0), 3), "");
        assert_eq!(join_truncated(items(2), 3), "a1,a2");
        assert_eq!(join_truncated(items(3), 3), "a1,a2,a3");
        assert_eq!(join_truncated(items(5), 3), "a1,a2,a3 + 2 more...");
    }

    #[test]
    fn join_or_none_prints_none_for_nothing() {
        assert_eq!(join_or_none(Vec::<String>::new()), "<none>");
        assert_eq!(join_or_none(["a", "b"]), "a,b");
    }

    #[test]
    fn format_labels_sorts_by_key() {
        let labels: BTreeMap<String, String> = [("tier", "web"), ("app", "x")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(format_labels(Some(&labels)), "app=x,tier=web");
        assert_eq!(format_labels(None), "<none>");
        assert_eq!(format_labels(Some(&BTreeMap::new())), "<none>");
    }

    #[test]
    fn label_selectors_format_like_apimachinery() {
        let sel = |v: serde_json::Value| -> LabelSelector {
            serde_json::from_value(v).expect("label selector")
        };
        let cases = [
            (json!({}), "<none>"),
            (json!({"matchLabels": {"app": "web"}}), "app=web"),
            (
                json!({
                    "matchLabels": {"tier": "fe", "app": "web"},
                    "matchExpressions": [
                        {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                        {"key": "zone", "operator": "NotIn", "values": ["b"]},
                        {"key": "canary", "operator": "DoesNotExist"},
                        {"key": "gpu", "operator": "Exists"},
                    ],
                }),
                "app=web,!canary,env in (dev,prod),gpu,tier=fe,zone notin (b)",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
                "<error>",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                "<error>",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "<error>",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                format_label_selector(Some(&sel(input.clone()))),
                want,
                "{input}"
            );
        }
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(label_selector_string(None), Ok(String::new()));
    }

    #[test]
    fn container_cells_join_names_and_images() {
        let containers: Vec<Container> = serde_json::from_value(json!([
            {"name": "app", "image": "nginx:1.27"},
            {"name": "sidecar", "image": "busybox"},
        ]))
        .expect("containers");
        assert_eq!(
            container_cells(&containers),
            ("app,sidecar".to_string(), "nginx:1.27,busybox".to_string())
        );
        assert_eq!(container_cells(&[]), (String::new(), String::new()));
    }
}
