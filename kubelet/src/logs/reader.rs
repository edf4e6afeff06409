//! Serving a container's log file as `kubectl logs` asks for it: the
//! options of `/containerLogs` (`tailLines`, `sinceSeconds`/`sinceTime`,
//! `timestamps`, `limitBytes`, `follow`) applied to the CRI records of the
//! current file, then, when following, new records as they arrive (a
//! rotation is noticed by the file shrinking or being replaced) until the
//! container is no longer running.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::cri::{self, Record};

const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<u64>,
    pub timestamps: bool,
    pub since: Option<Timestamp>,
    pub limit_bytes: Option<u64>,
    pub previous: bool,
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

impl LogOptions {
    /// Parses the query; the error names the bad parameter, as
    /// Kubernetes' `PodLogOptions` validation does.
    pub fn from_query(q: &HashMap<String, String>, now: Timestamp) -> Result<LogOptions, String> {
        let number = |k: &str| -> Result<Option<i64>, String> {
            q.get(k)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("{k}: Invalid value: \"{v}\": must be an integer"))
                })
                .transpose()
        };
        let positive = |k: &str, v: Option<i64>| -> Result<Option<u64>, String> {
            match v {
                Some(n) if n < 0 => Err(format!(
                    "{k}: Invalid value: {n}: must be greater than or equal to 0"
                )),
                Some(n) => Ok(Some(n as u64)),
                None => Ok(None),
            }
        };
        let tail_lines = positive("tailLines", number("tailLines")?)?;
        let limit_bytes = match number("limitBytes")? {
            Some(n) if n < 1 => {
                return Err(format!(
                    "limitBytes: Invalid value: {n}: must be greater than 0"
                ));
            }
            n => n.map(|n| n as u64),
        };
        let since = match (number("sinceSeconds")?, q.get("sinceTime")) {
            (Some(_), Some(_)) => {
                return Err("sinceSeconds: Forbidden: at most one of sinceTime or sinceSeconds may be specified".into());
            }
            (Some(s), None) if s < 1 => {
                return Err(format!(
                    "sinceSeconds: Invalid value: {s}: must be greater than 0"
                ));
            }
            (Some(s), None) => Some(now - jiff::SignedDuration::from_secs(s)),
            (None, Some(t)) => {
                Some(t.parse::<Timestamp>().map_err(|_| {
                    format!("sinceTime: Invalid value: \"{t}\": not an RFC 3339 time")
                })?)
            }
            (None, None) => None,
        };
        Ok(LogOptions {
            follow: flag(q, "follow"),
            tail_lines,
            timestamps: flag(q, "timestamps"),
            since,
            limit_bytes,
            previous: flag(q, "previous"),
        })
    }
}

/// Renders records to output bytes, keeping `limitBytes`.
struct Renderer {
    timestamps: bool,
    since: Option<Timestamp>,
    left: Option<u64>,
}

impl Renderer {
    /// Appends `r` to `out`; false once the byte limit is reached.
    fn render(&mut self, r: &Record<'_>, out: &mut Vec<u8>) -> bool {
        if self.since.is_some_and(|s| r.time < s) {
            return true;
        }
        let start = out.len();
        if self.timestamps {
            out.extend_from_slice(r.time.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(r.content);
        if r.full {
            out.push(b'\n');
        }
        if let Some(left) = self.left.as_mut() {
            let wrote = (out.len() - start) as u64;
            if wrote >= *left {
                out.truncate(start + *left as usize);
                *left = 0;
                return false;
            }
            *left -= wrote;
        }
        true
    }
}

/// The byte offset from which the last `n` lines of `data` start.
fn tail_offset(data: &[u8], n: u64) -> usize {
    if n == 0 {
        return data.len();
    }
    let mut lines = 0;
    // Records of one line: P… then F; count F records from the end.
    let mut pos = data.len();
    let mut iter = data[..data.len().saturating_sub(1)]
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n');
    loop {
        let (line_start, line) = match iter.next() {
            Some((i, _)) => (i + 1, &data[i + 1..pos]),
            None => (0, &data[..pos]),
        };
        if cri::parse(line.strip_suffix(b"\n").unwrap_or(line)).is_some_and(|r| r.full) {
            lines += 1;
            if lines > n {
                return pos;
            }
        }
        pos = line_start;
        if line_start == 0 {
            return 0;
        }
    }
}

/// Streams the log at `path`; `running` says whether the container may
/// still write (following ends when it is false and the file is drained).
pub fn serve<F, Fut>(
    path: PathBuf,
    opts: LogOptions,
    running: F,
) -> mpsc::Receiver<Result<Bytes, std::io::Error>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut r = Renderer {
            timestamps: opts.timestamps,
            since: opts.since,
            left: opts.limit_bytes,
        };
        let mut data = match tokio::fs::read(&path).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut ino = tokio::fs::metadata(&path).await.map(|m| m.ino()).ok();
        // Only whole lines count; a half-written last one waits.
        let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut offset = complete as u64;
        data.truncate(complete);
        let start = opts.tail_lines.map_or(0, |n| tail_offset(&data, n));
        if !emit(&mut r, &data[start..], &tx).await || !opts.follow {
            return;
        }
        let mut last_chance = false;
        loop {
            tokio::time::sleep(POLL).await;
            let meta = tokio::fs::metadata(&path).await.ok();
            if meta.as_ref().map(|m| m.ino()) != ino
                || meta.as_ref().is_some_and(|m| m.len() < offset)
            {
                ino = meta.as_ref().map(|m| m.ino());
                offset = 0;
            }
            let new = read_from(&path, offset).await;
            let complete = new.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if complete > 0 {
                offset += complete as u64;
                if !emit(&mut r, &new[..complete], &tx).await {
                    return;
                }
                continue;
            }
            if tx.is_closed() || last_chance {
                return;
            }
            // The copier drains the pipes just after the exit: read once more.
            last_chance = !running().await;
        }
    });
    rx
}

async fn read_from(path: &PathBuf, offset: u64) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let Ok(mut f) = tokio::fs::File::open(path).await else {
        return Vec::new();
    };
    if f.seek(std::io::SeekFrom::Start(offset)).await.is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf).await;
    buf
}

/// Sends the rendered records of `data`; false when done (limit or gone).
async fn emit(
    r: &mut Renderer,
    data: &[u8],
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> bool {
    let mut out = Vec::new();
    let mut more = true;
    for line in data.split(|b| *b == b'\n') {
        if let Some(rec) = cri::parse(line)
            && !r.render(&rec, &mut out)
        {
            more = false;
            break;
        }
    }
    if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
        return false;
    }
    more
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::cri::Stream;

    fn file(lines: &[(&str, Stream, bool, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (t, s, full, c) in lines {
            cri::encode(&mut out, t.parse().expect("time"), *s, *full, c.as_bytes());
        }
        out
    }

    async fn collect(mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> String {
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk.expect("chunk"));
        }
        String::from_utf8(out).expect("utf8")
    }

    fn sample() -> Vec<u8> {
        file(&[
            ("2026-01-01T00:00:01Z", Stream::Stdout, true, "one"),
            ("2026-01-01T00:00:02Z", Stream::Stderr, false, "tw"),
            ("2026-01-01T00:00:02Z", Stream::Stderr, true, "o"),
            ("2026-01-01T00:00:03Z", Stream::Stdout, true, "three"),
        ])
    }

    async fn read(data: &[u8], opts: LogOptions) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, data).expect("write");
        collect(serve(path, opts, || async { false })).await
    }

    #[tokio::test]
    async fn options_select_tail_since_limit_and_timestamps() {
        let data = sample();
        assert_eq!(
            read(&data, LogOptions::default()).await,
            "one\ntwo\nthree\n"
        );
        let tail = |n| LogOptions {
            tail_lines: Some(n),
            ..LogOptions::default()
        };
        assert_eq!(read(&data, tail(2)).await, "two\nthree\n");
        assert_eq!(read(&data, tail(1)).await, "three\n");
        assert_eq!(read(&data, tail(0)).await, "");
        assert_eq!(read(&data, tail(10)).await, "one\ntwo\nthree\n");
        let since = LogOptions {
            since: Some("2026-01-01T00:00:02Z".parse().expect("time")),
            ..LogOptions::default()
        };
        assert_eq!(read(&data, since).await, "two\nthree\n");
        let limit = LogOptions {
            limit_bytes: Some(6),
            ..LogOptions::default()
        };
        assert_eq!(read(&data, limit).await, "one\ntw");
        let stamps = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..LogOptions::default()
        };
        assert_eq!(read(&data, stamps).await, "2026-01-01T00:00:03Z three\n");
    }

    #[test]
    fn bad_query_values_are_named() {
        let now = Timestamp::UNIX_EPOCH;
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(
            LogOptions::from_query(&q("tailLines", "x"), now)
                .expect_err("rejected")
                .starts_with("tailLines:")
        );
        assert!(LogOptions::from_query(&q("limitBytes", "0"), now).is_err());
        assert!(LogOptions::from_query(&q("sinceSeconds", "0"), now).is_err());
        let o = LogOptions::from_query(&q("sinceSeconds", "10"), now).expect("ok");
        assert_eq!(o.since, Some(now - jiff::SignedDuration::from_secs(10)));
        assert!(
            LogOptions::from_query(&q("follow", "true"), now)
                .expect("ok")
                .follow
        );
    }

    #[tokio::test]
    async fn following_picks_up_new_lines_until_the_container_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, sample()).expect("write");
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let opts = LogOptions {
            follow: true,
            tail_lines: Some(1),
            ..LogOptions::default()
        };
        let mut rx = serve(path.clone(), opts, move || {
            let flag = flag.clone();
            async move { flag.load(std::sync::atomic::Ordering::SeqCst) }
        });
        let first = rx.recv().await.expect("first").expect("ok");
        assert_eq!(&first[..], b"three\n");
        let mut w = crate::logs::writer::LogWriter::open(path, Default::default()).expect("open");
        w.write(Timestamp::now(), Stream::Stdout, true, b"four")
            .expect("write");
        let next = rx.recv().await.expect("next").expect("ok");
        assert_eq!(&next[..], b"four\n");
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(rx.recv().await.is_none(), "follow ends after the container");
    }
}
