//! A container's log file with size-based rotation, as the kubelet's
//! container log manager does it: when the file would pass `max_size`,
//! `N.log` is renamed to `N.log.<YYYYmmdd-HHMMSS>` and a fresh `N.log`
//! begins; only the newest `max_files - 1` rotated files are kept.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::LogError;
use super::cri::{self, Stream};

/// Rotation limits (`--container-log-max-size`, `--container-log-max-files`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    pub max_files: usize,
}

impl Default for Rotation {
    /// Kubernetes' defaults: 10 MiB, 5 files.
    fn default() -> Rotation {
        Rotation {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
    buf: Vec<u8>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LogWriter {
    /// Opens (appending to) `path`; a re-adopted container keeps its file.
    pub fn open(path: PathBuf, rotation: Rotation) -> Result<LogWriter, LogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let size = file.metadata().map_err(io_err(&path))?.len();
        Ok(LogWriter {
            path,
            file,
            size,
            rotation,
            buf: Vec::new(),
        })
    }

    /// Writes one record, rotating first if it would overflow the file.
    pub fn write(
        &mut self,
        time: Timestamp,
        stream: Stream,
        full: bool,
        content: &[u8],
    ) -> Result<(), LogError> {
        self.buf.clear();
        cri::encode(&mut self.buf, time, stream, full, content);
        if self.size > 0 && self.size + self.buf.len() as u64 > self.rotation.max_size {
            self.rotate(time)?;
        }
        self.file.write_all(&self.buf).map_err(io_err(&self.path))?;
        self.size += self.buf.len() as u64;
        Ok(())
    }

    fn rotate(&mut self, now: Timestamp) -> Result<(), LogError> {
        let stamp = now
            .to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y%m%d-%H%M%S")
            .to_string();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut rotated = self.path.with_file_name(format!("{name}.{stamp}"));
        let mut n = 1;
        while rotated.exists() {
            rotated = self.path.with_file_name(format!("{name}.{stamp}.{n}"));
            n += 1;
        }
        std::fs::rename(&self.path, &rotated).map_err(io_err(&self.path))?;
        let mut old = rotated_files(&self.path);
        let keep = self.rotation.max_files.saturating_sub(1);
        if old.len() > keep {
            let excess = old.len() - keep;
            for f in old.drain(..excess) {
                if let Err(e) = std::fs::remove_file(&f) {
                    tracing::warn!(path = %f.display(), error = %e, "cannot remove rotated log");
                }
            }
        }
        let fresh = LogWriter::open(self.path.clone(), self.rotation)?;
        self.file = fresh.file;
        self.size = 0;
        Ok(())
    }
}

/// `N.log.*` beside `path`, oldest first (the stamps sort by time).
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let Some(dir) = path.parent() else {
        return Vec::new();
    };
    let prefix = format!(
        "{}.",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let mut files: Vec<(Option<std::time::SystemTime>, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| (e.metadata().and_then(|m| m.modified()).ok(), e.path()))
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_files_rotate_by_size_and_keep_only_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let rotation = Rotation {
            max_size: 200,
            max_files: 3,
        };
        let mut w = LogWriter::open(path.clone(), rotation).expect("open");
        let line = [b'a'; 50];
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        for i in 0..40 {
            let t = t0 + jiff::SignedDuration::from_secs(i);
            w.write(t, Stream::Stdout, true, &line).expect("write");
        }
        let current = std::fs::metadata(&path).expect("current").len();
        assert!(
            current > 0 && current <= 200,
            "current file is {current} bytes"
        );
        let rotated = rotated_files(&path);
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        for f in &rotated {
            let len = std::fs::metadata(f).expect("rotated").len();
            assert!(len <= 200, "{} is {len} bytes", f.display());
            assert!(
                f.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("0.log.20260101-0000"))
            );
        }
        // Every record in the kept files is whole and parses.
        for f in rotated.iter().chain([&path]) {
            let data = std::fs::read(f).expect("read");
            for l in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let r = cri::parse(l).expect("record");
                assert_eq!(r.content, &line[..]);
            }
        }
    }

    #[test]
    fn reopening_appends_to_the_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.log");
        let t = Timestamp::UNIX_EPOCH;
        LogWriter::open(path.clone(), Rotation::default())
            .and_then(|mut w| w.write(t, Stream::Stdout, true, b"one"))
            .expect("first");
        LogWriter::open(path.clone(), Rotation::default())
            .and_then(|mut w| w.write(t, Stream::Stderr, true, b"two"))
            .expect("second");
        let data = std::fs::read(&path).expect("read");
        assert_eq!(cri::plain_text(&data), b"one\ntwo\n");
    }
}
