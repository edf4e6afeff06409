//! `/exec` and `/attach` sessions over the `channel.k8s.io` WebSocket
//! protocols. Exec runs an extra process through containerd's task Exec
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

/// Writes frames to the socket from one place, so tasks can share it.
fn writer(ws: futures::stream::SplitSink<WebSocket, Message>) -> mpsc::Sender<Message> {
    let (tx, mut rx) = mpsc::channel::<Message>(32);
    let mut ws = ws;
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if ws.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = ws.close().await;
    });
    tx
}

/// A normal closure: client-go reads anything else (even a close frame
/// with no code) as a broken error stream.
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    }))
}

async fn send_status(out: &mpsc::Sender<Message>, status: &serde_json::Value) {
    let body = serde_json::to_vec(status).unwrap_or_default();
    let _ = out
        .send(Message::Binary(
            channel::frame(channel::ERROR, &body).into(),
        ))
        .await;
    let _ = out.send(normal_close()).await;
}

fn exec_id() -> String {
    format!("exec-{}", jiff::Timestamp::now().as_nanosecond())
}

/// Runs `opts.command` in container `id` and streams it over `ws`.
pub async fn run_exec(ctx: Arc<NodeContext>, ws: WebSocket, id: String, opts: StreamOptions) {
    let (sink, mut incoming) = ws.split();
    let out = writer(sink);
    let exec = exec_id();
    let fifos = match Fifos::create(
        ctx.data_dir.join("io").join(format!("{id}-{exec}")),
        opts.stdin,
    ) {
        Ok(f) => f,
        Err(e) => return send_status(&out, &channel::failure(&e.to_string())).await,
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
            return send_status(&out, &channel::failure(&message)).await;
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
            if wanted
                && forward_out
                    .send(Message::Binary(channel::frame(ch, &data).into()))
                    .await
                    .is_err()
            {
                break;
            }
        }
    });
    let rt = ctx.runtime.clone();
    let (cid, eid) = (id.clone(), exec.clone());
    let input = tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(Ok(message)) = incoming.next().await {
            let data = match message {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            match channel::decode(&data) {
                Incoming::Stdin(bytes) => {
                    if let Some(w) = stdin.as_mut()
                        && w.write_all(bytes).await.is_err()
                    {
                        stdin = None;
                    }
                }
                Incoming::Resize { width, height } => {
                    if let Err(e) = rt
                        .resize_exec(&cid, &eid, width.into(), height.into())
                        .await
                    {
                        tracing::debug!(error = %e, "exec resize failed");
                    }
                }
                Incoming::CloseStdin => {
                    stdin = None;
                    let _ = rt.close_exec_stdin(&cid, &eid).await;
                }
                Incoming::Ignored => {}
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
    send_status(&out, &status).await;
    if let Err(e) = ctx.runtime.delete_exec(&id, &exec).await {
        tracing::debug!(error = %e, "cannot delete exec process");
    }
    fifos.remove();
}

/// Joins the running container `id`'s output (and stdin, if it has one).
pub async fn run_attach(
    ctx: Arc<NodeContext>,
    ws: WebSocket,
    id: String,
    opts: StreamOptions,
    stdin_once: bool,
) {
    let (sink, mut incoming) = ws.split();
    let out = writer(sink);
    let Some(attachment) = ctx.logs.attach(&id) else {
        return send_status(&out, &channel::failure("container is not running")).await;
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
                    if wanted
                        && forward_out
                            .send(Message::Binary(channel::frame(ch, &data).into()))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let input = async {
        while let Some(Ok(message)) = incoming.next().await {
            match message {
                Message::Binary(b) => match channel::decode(&b) {
                    Incoming::Stdin(bytes) => {
                        if let Some(w) = stdin.as_mut()
                            && w.write_all(bytes).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    Incoming::CloseStdin => stdin = None,
                    _ => {}
                },
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    let container_exited = tokio::select! {
        _ = forward => true,
        () = input => false,
    };
    if stdin_once && opts.stdin {
        ctx.logs.close_stdin(&id);
    }
    if container_exited {
        send_status(
            &out,
            &serde_json::json!({"metadata": {}, "status": "Success"}),
        )
        .await;
    } else {
        let _ = out.send(normal_close()).await;
    }
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
