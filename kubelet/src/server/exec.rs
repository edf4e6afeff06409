//! `/exec` and `/attach` sessions, over the `channel.k8s.io` WebSocket
//! protocols or SPDY ([`super::remotecommand`]). Exec runs an extra process through containerd's task Exec
//! with its own FIFOs (a terminal when `tty=true`: stdout then carries
//! both streams); attach joins the container's live output from its log
//! copier and writes to its stdin FIFO. The error channel ends the session
//! with a `Status` (the exit code for exec).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use bytes::Bytes;

use super::channel::{self, Incoming};
use crate::logs::copier::{Fifos, Readers, pump};
use crate::logs::cri::Stream;
use crate::worker::NodeContext;

/// What the client asked for (`stdin`, `stdout`, `stderr`, `tty`, `command`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub command: Vec<String>,
}

impl StreamOptions {
    pub fn from_query(query: Option<&str>) -> StreamOptions {
        let mut o = StreamOptions::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let on = v == "true" || v == "1";
            match &*k {
                "stdin" | "input" => o.stdin = on,
                "stdout" | "output" => o.stdout = on,
                "stderr" | "error" => o.stderr = on,
                "tty" => o.tty = on,
                "command" => o.command.push(v.into_owned()),
                _ => {}
            }
        }
        o
    }
}

/// What a client sends, whatever the transport.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Stdin(Bytes),
    Resize { width: u16, height: u16 },
    CloseStdin,
}

/// What the session sends back: output on a channel, then the final
/// `Status` on the error channel (which ends the session).
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Data(u8, Bytes),
    Status(serde_json::Value),
}

/// A client connection as exec and attach see it.
pub struct Session {
    pub events: mpsc::Receiver<Event>,
    pub out: mpsc::Sender<Out>,
}

/// A normal closure: client-go reads anything else (even a close frame
/// with no code) as a broken error stream.
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    }))
}

/// The `channel.k8s.io` WebSocket framing of a session.
pub fn websocket_session(ws: WebSocket) -> Session {
    let (mut sink, mut incoming) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(32);
    let (ev_tx, ev_rx) = mpsc::channel::<Event>(32);
    tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            let (frame, last) = match o {
                Out::Data(ch, data) => (channel::frame(ch, &data), false),
                Out::Status(status) => {
                    let body = serde_json::to_vec(&status).unwrap_or_default();
                    (channel::frame(channel::ERROR, &body), true)
                }
            };
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
            if last {
                break;
            }
        }
        let _ = sink.send(normal_close()).await;
    });
    tokio::spawn(async move {
        while let Some(Ok(message)) = incoming.next().await {
            let data = match message {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            let event = match channel::decode(&data) {
                Incoming::Stdin(bytes) => Event::Stdin(Bytes::copy_from_slice(bytes)),
                Incoming::Resize { width, height } => Event::Resize { width, height },
                Incoming::CloseStdin => Event::CloseStdin,
                Incoming::Ignored => continue,
            };
            if ev_tx.send(event).await.is_err() {
                break;
            }
        }
    });
    Session {
        events: ev_rx,
        out: out_tx,
    }
}

fn exec_id() -> String {
    format!("exec-{}", jiff::Timestamp::now().as_nanosecond())
}

/// Runs `opts.command` in container `id` and streams it over `session`.
pub async fn run_exec(ctx: Arc<NodeContext>, session: Session, id: String, opts: StreamOptions) {
    let Session { mut events, out } = session;
    let exec = exec_id();
    let fifos = match Fifos::create(
        ctx.data_dir.join("io").join(format!("{id}-{exec}")),
        opts.stdin,
    ) {
        Ok(f) => f,
        Err(e) => {
            let _ = out
                .send(Out::Status(channel::failure(&e.to_string())))
                .await;
            return;
        }
    };
    let prepared = async {
        let readers = Readers::open(&fifos, true).map_err(|e| e.to_string())?;
        let stdin = match &fifos.stdin {
            Some(p) => Some(
                pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(p)
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let mut process = ctx
            .runtime
            .container_process(&id)
            .await
            .map_err(|e| e.to_string())?;
        process.set_args(Some(opts.command.clone()));
        process.set_terminal(Some(opts.tty));
        ctx.runtime
            .exec(&id, &exec, &process, &fifos.task_io(opts.tty))
            .await
            .map_err(|e| format!("error executing command in container: {e}"))?;
        Ok::<_, String>((readers, stdin))
    }
    .await;
    let (readers, stdin) = match prepared {
        Ok(p) => p,
        Err(message) => {
            let _ = ctx.runtime.delete_exec(&id, &exec).await;
            fifos.remove();
            let _ = out.send(Out::Status(channel::failure(&message))).await;
            return;
        }
    };
    let (mut chunks, keepalive) = pump(readers);
    drop(keepalive);
    let forward_out = out.clone();
    let (stdout, stderr) = (opts.stdout, opts.stderr);
    let output = tokio::spawn(async move {
        while let Some((stream, data)) = chunks.recv().await {
            let (wanted, ch) = match stream {
                Stream::Stdout => (stdout, channel::STDOUT),
                Stream::Stderr => (stderr, channel::STDERR),
            };
            if wanted && forward_out.send(Out::Data(ch, data)).await.is_err() {
                break;
            }
        }
    });
    let rt = ctx.runtime.clone();
    let (cid, eid) = (id.clone(), exec.clone());
    let input = tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(event) = events.recv().await {
            match event {
                Event::Stdin(bytes) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&bytes).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Event::Resize { width, height } => {
                    if let Err(e) = rt
                        .resize_exec(&cid, &eid, width.into(), height.into())
                        .await
                    {
                        tracing::debug!(error = %e, "exec resize failed");
                    }
                }
                Event::CloseStdin => {
                    stdin = None;
                    let _ = rt.close_exec_stdin(&cid, &eid).await;
                }
            }
        }
    });
    let code = ctx.runtime.wait_exec(&id, &exec).await;
    // The shim closes the FIFOs once it has copied the last output.
    let _ = tokio::time::timeout(Duration::from_secs(5), output).await;
    input.abort();
    let status = match code {
        Ok(code) => channel::exit_status(&opts.command, code),
        Err(e) => channel::failure(&e.to_string()),
    };
    let _ = out.send(Out::Status(status)).await;
    if let Err(e) = ctx.runtime.delete_exec(&id, &exec).await {
        tracing::debug!(error = %e, "cannot delete exec process");
    }
    fifos.remove();
}

/// Joins the running container `id`'s output (and stdin, if it has one).
pub async fn run_attach(
    ctx: Arc<NodeContext>,
    session: Session,
    id: String,
    opts: StreamOptions,
    stdin_once: bool,
) {
    let Session { mut events, out } = session;
    let Some(attachment) = ctx.logs.attach(&id) else {
        let _ = out
            .send(Out::Status(channel::failure("container is not running")))
            .await;
        return;
    };
    let mut stdin = match (&attachment.stdin, opts.stdin) {
        (Some(p), true) => pipe::OpenOptions::new().open_sender(p).ok(),
        _ => None,
    };
    let mut output = attachment.output;
    let forward_out = out.clone();
    let (stdout, stderr) = (opts.stdout, opts.stderr);
    let forward = tokio::spawn(async move {
        loop {
            match output.recv().await {
                Ok((stream, data)) => {
                    let (wanted, ch) = match stream {
                        Stream::Stdout => (stdout, channel::STDOUT),
                        Stream::Stderr => (stderr, channel::STDERR),
                    };
                    if wanted && forward_out.send(Out::Data(ch, data)).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let input = async {
        while let Some(event) = events.recv().await {
            match event {
                Event::Stdin(bytes) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(&bytes).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Event::CloseStdin => stdin = None,
                Event::Resize { .. } => {}
            }
        }
    };
    // Ends when the container exits or the client leaves.
    tokio::select! {
        _ = forward => {}
        () = input => {}
    }
    if stdin_once && opts.stdin {
        ctx.logs.close_stdin(&id);
    }
    let status = serde_json::json!({"metadata": {}, "status": "Success"});
    let _ = out.send(Out::Status(status)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_from_the_query_with_repeated_commands() {
        let o = StreamOptions::from_query(Some(
            "command=sh&command=-c&command=echo+a%26b&stdin=true&stdout=true&tty=false",
        ));
        assert_eq!(o.command, vec!["sh", "-c", "echo a&b"]);
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
    }
}
