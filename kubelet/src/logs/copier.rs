//! The per-container log copier. containerd's shim writes a container's
//! stdout and stderr into FIFOs the kubelet makes under
//! `DATA_DIR/io/<container-id>/`; one task per container reads them,
//! writes CRI-format records to the rotating log file, and fans the raw
//! bytes out to `attach` sessions. The shim keeps its own read end open,
//! so a dead kubelet only stalls the container once the pipe fills, and a
//! restarted kubelet re-attaches ([`Registry::resume`]) and drains it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use jiff::Timestamp;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{broadcast, mpsc};

use super::LogError;
use super::cri::{LineSplitter, Stream};
use super::writer::{LogWriter, Rotation};
use crate::runtime::TaskIo;

/// A container's FIFOs.
#[derive(Debug, Clone)]
pub struct Fifos {
    pub dir: PathBuf,
    pub stdin: Option<PathBuf>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Fifos {
    fn paths(dir: PathBuf, stdin: bool) -> Fifos {
        Fifos {
            stdin: stdin.then(|| dir.join("stdin")),
            stdout: dir.join("stdout"),
            stderr: dir.join("stderr"),
            dir,
        }
    }

    /// Makes the FIFOs (an existing one is reused).
    pub fn create(dir: PathBuf, stdin: bool) -> Result<Fifos, LogError> {
        std::fs::create_dir_all(&dir).map_err(|source| LogError::Io {
            path: dir.clone(),
            source,
        })?;
        let fifos = Fifos::paths(dir, stdin);
        for path in [
            Some(&fifos.stdout),
            Some(&fifos.stderr),
            fifos.stdin.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
                Ok(()) | Err(nix::Error::EEXIST) => {}
                Err(e) => {
                    return Err(LogError::Io {
                        path: path.clone(),
                        source: e.into(),
                    });
                }
            }
        }
        Ok(fifos)
    }

    pub fn task_io(&self, terminal: bool) -> TaskIo {
        let s = |p: &Path| p.display().to_string();
        TaskIo {
            stdin: self.stdin.as_deref().map(s).unwrap_or_default(),
            stdout: s(&self.stdout),
            // A terminal merges both streams into stdout.
            stderr: if terminal {
                String::new()
            } else {
                s(&self.stderr)
            },
            terminal,
        }
    }

    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.dir.display(), error = %e, "cannot remove container FIFOs");
        }
    }
}

/// Read ends of stdout/stderr, opened before the shim opens its write
/// ends; `keepalive` write ends stop the reads from seeing end-of-file
/// until the shim has connected (drop it once the task exists).
pub struct Readers {
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
    pub keepalive: Vec<pipe::Sender>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Readers {
    pub fn open(fifos: &Fifos, keepalive: bool) -> Result<Readers, LogError> {
        let stdout = pipe::OpenOptions::new()
            .open_receiver(&fifos.stdout)
            .map_err(io_err(&fifos.stdout))?;
        let stderr = pipe::OpenOptions::new()
            .open_receiver(&fifos.stderr)
            .map_err(io_err(&fifos.stderr))?;
        let mut senders = Vec::new();
        if keepalive {
            for p in [&fifos.stdout, &fifos.stderr] {
                senders.push(pipe::OpenOptions::new().open_sender(p).map_err(io_err(p))?);
            }
        }
        Ok(Readers {
            stdout,
            stderr,
            keepalive: senders,
        })
    }
}

/// Reads both pipes until each reaches end-of-file, sending chunks.
pub fn pump(readers: Readers) -> (mpsc::Receiver<(Stream, Bytes)>, Vec<pipe::Sender>) {
    let (tx, rx) = mpsc::channel(64);
    for (stream, mut r) in [
        (Stream::Stdout, readers.stdout),
        (Stream::Stderr, readers.stderr),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx
                            .send((stream, Bytes::copy_from_slice(&buf[..n])))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "container output pipe failed");
                        break;
                    }
                }
            }
        });
    }
    (rx, readers.keepalive)
}

struct Live {
    output: broadcast::Sender<(Stream, Bytes)>,
    stdin: Option<PathBuf>,
    /// Holds the container's stdin open between attach sessions.
    stdin_keepalive: Option<pipe::Sender>,
}

/// The copiers of this kubelet's containers, by containerd ID.
pub struct Registry {
    root: PathBuf,
    rotation: Rotation,
    live: Mutex<HashMap<String, Live>>,
}

/// What `attach` gets: the container's live output and its stdin FIFO.
pub struct Attachment {
    pub output: broadcast::Receiver<(Stream, Bytes)>,
    pub stdin: Option<PathBuf>,
}

impl Registry {
    /// FIFOs go under `root` (`DATA_DIR/io`).
    pub fn new(root: PathBuf, rotation: Rotation) -> Registry {
        Registry {
            root,
            rotation,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before the task is created: makes the FIFOs, starts the copier, and
    /// returns the task's I/O plus the keepalive to drop once it is created.
    pub fn start(
        self: &Arc<Self>,
        id: &str,
        log: PathBuf,
        stdin: bool,
    ) -> Result<(TaskIo, Vec<pipe::Sender>), LogError> {
        let fifos = Fifos::create(self.root.join(id), stdin)?;
        let readers = Readers::open(&fifos, true)?;
        let stdin_keepalive = match &fifos.stdin {
            Some(p) => Some(
                pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(p)
                    .map_err(io_err(p))?,
            ),
            None => None,
        };
        let writer = LogWriter::open(log, self.rotation)?;
        let io = fifos.task_io(false);
        let keepalive = self.spawn(id, fifos, readers, writer, stdin_keepalive);
        Ok((io, keepalive))
    }

    /// After a kubelet restart: re-attaches to a container's FIFOs, if it
    /// has them; the returned handle ends once its output is drained.
    pub fn resume(self: &Arc<Self>, id: &str, log: PathBuf) -> Option<tokio::task::JoinHandle<()>> {
        let dir = self.root.join(id);
        if !dir.join("stdout").exists() || self.lock().contains_key(id) {
            return None;
        }
        let stdin = dir.join("stdin").exists();
        let opened = Fifos::create(dir, stdin).and_then(|fifos| {
            let readers = Readers::open(&fifos, false)?;
            let writer = LogWriter::open(log, self.rotation)?;
            Ok((fifos, readers, writer))
        });
        match opened {
            Ok((fifos, readers, writer)) => {
                let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
                self.spawn_with(id, fifos, readers, writer, None, Some(done_tx));
                Some(tokio::spawn(async move {
                    let _ = done_rx.await;
                }))
            }
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "cannot re-attach container output");
                None
            }
        }
    }

    fn spawn(
        self: &Arc<Self>,
        id: &str,
        fifos: Fifos,
        readers: Readers,
        writer: LogWriter,
        stdin_keepalive: Option<pipe::Sender>,
    ) -> Vec<pipe::Sender> {
        self.spawn_with(id, fifos, readers, writer, stdin_keepalive, None)
    }

    fn spawn_with(
        self: &Arc<Self>,
        id: &str,
        fifos: Fifos,
        readers: Readers,
        mut writer: LogWriter,
        stdin_keepalive: Option<pipe::Sender>,
        done: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Vec<pipe::Sender> {
        let (output, _) = broadcast::channel(256);
        self.lock().insert(
            id.to_string(),
            Live {
                output: output.clone(),
                stdin: fifos.stdin.clone(),
                stdin_keepalive,
            },
        );
        let (mut chunks, keepalive) = pump(readers);
        let registry = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut out = LineSplitter::default();
            let mut err = LineSplitter::default();
            let mut failed = false;
            let mut write = |writer: &mut LogWriter, stream, full, content: &[u8]| {
                if let Err(e) = writer.write(Timestamp::now(), stream, full, content)
                    && !failed
                {
                    tracing::warn!(container = %id, error = %e, "cannot write container log");
                    failed = true;
                }
            };
            while let Some((stream, data)) = chunks.recv().await {
                let splitter = match stream {
                    Stream::Stdout => &mut out,
                    Stream::Stderr => &mut err,
                };
                splitter.push(&data, |full, content| {
                    write(&mut writer, stream, full, content)
                });
                let _ = output.send((stream, data));
            }
            out.finish(|full, content| write(&mut writer, Stream::Stdout, full, content));
            err.finish(|full, content| write(&mut writer, Stream::Stderr, full, content));
            registry.lock().remove(&id);
            fifos.remove();
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
        keepalive
    }

    /// Live output and stdin of a running container started by this kubelet.
    pub fn attach(&self, id: &str) -> Option<Attachment> {
        let live = self.lock();
        let l = live.get(id)?;
        Some(Attachment {
            output: l.output.subscribe(),
            stdin: l.stdin.clone(),
        })
    }

    /// `stdinOnce`: the first attach session's end closes the container's stdin.
    pub fn close_stdin(&self, id: &str) {
        if let Some(l) = self.lock().get_mut(id) {
            l.stdin_keepalive = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn copier_writes_both_streams_as_cri_records_until_the_writers_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Arc::new(Registry::new(dir.path().join("io"), Rotation::default()));
        let log = dir.path().join("0.log");
        let (io, keepalive) = registry.start("c1", log.clone(), false).expect("start");
        let mut attached = registry.attach("c1").expect("live").output;
        // Stand-ins for the shim's write ends.
        let mut out = pipe::OpenOptions::new()
            .open_sender(&io.stdout)
            .expect("stdout");
        let mut err = pipe::OpenOptions::new()
            .open_sender(&io.stderr)
            .expect("stderr");
        drop(keepalive);
        out.write_all(b"hello\nwor").await.expect("write");
        assert_eq!(
            attached.recv().await.expect("chunk"),
            (Stream::Stdout, Bytes::from_static(b"hello\nwor"))
        );
        err.write_all(b"oops\n").await.expect("write");
        out.write_all(b"ld").await.expect("write");
        drop(out);
        drop(err);
        // The copier removes its FIFOs when both streams end.
        for _ in 0..200 {
            if !dir.path().join("io/c1").exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(registry.attach("c1").is_none());
        let data = std::fs::read(&log).expect("log");
        let text = String::from_utf8_lossy(&data);
        assert!(text.contains(" stdout F hello\n"), "{text}");
        assert!(text.contains(" stderr F oops\n"), "{text}");
        assert!(text.contains(" stdout F world\n"), "{text}");
    }
}
