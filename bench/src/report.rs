//! Figures, their aims, and the table they are printed in.

use std::fmt::Write;
use std::time::Duration;

/// One measured figure and, when there is one, the aim it is held to.
pub struct Row {
    pub backend: String,
    pub metric: String,
    pub value: String,
    pub aim: String,
    /// `Some(true)` when the aim is met, `None` without an aim.
    pub met: Option<bool>,
}

impl Row {
    pub fn info(backend: &str, metric: &str, value: String) -> Row {
        Row {
            backend: backend.into(),
            metric: metric.into(),
            value,
            aim: String::new(),
            met: None,
        }
    }

    pub fn aim(backend: &str, metric: &str, value: String, aim: String, met: bool) -> Row {
        Row {
            backend: backend.into(),
            metric: metric.into(),
            value,
            aim,
            met: Some(met),
        }
    }
}

/// Renders rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let headers = ["BACKEND", "METRIC", "VALUE", "AIM", "MET"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            [
                r.backend.clone(),
                r.metric.clone(),
                r.value.clone(),
                r.aim.clone(),
                met.to_owned(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let _ = write!(text, "{cell:<width$}   ", width = widths[i]);
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&headers.map(str::to_owned));
    for row in &cells {
        line(row);
    }
    out
}

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The `q`-quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&sorted, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&sorted, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn table_aligns_columns_and_marks_missed_aims() {
        let rows = [
            Row::aim(
                "embedded",
                "list",
                "120.0 ms".into(),
                "< 100 ms".into(),
                false,
            ),
            Row::info("etcd", "creates", "9000/s".into()),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "BACKEND    METRIC    VALUE      AIM        MET");
        assert_eq!(lines[1], "embedded   list      120.0 ms   < 100 ms   NO");
        assert_eq!(lines[2], "etcd       creates   9000/s");
    }
}
