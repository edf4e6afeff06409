//! exec and attach over SPDY/3.1 (`X-Stream-Protocol-Version:
//! v4.channel.k8s.io`), which kubectl before 1.30 speaks and later ones
//! fall back to when a WebSocket upgrade fails: the client opens one SPDY
//! stream per channel, named by its `streamType` header (`error`, `stdin`,
//! `stdout`, `stderr`, `resize`); the session starts once every expected
//! stream is there, and ends with the `Status` on the error stream and a
//! FIN on each stream the server writes.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

use super::channel;
use super::exec::{Event, Out, Session, StreamOptions};
use super::spdy::{self, Frame, HeaderCodec};

pub const PROTOCOL: &str = "v4.channel.k8s.io";
/// How long the client gets to open its streams (Kubernetes' default).
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The stream types the client will open for `opts`.
fn expected(opts: &StreamOptions) -> usize {
    1 + usize::from(opts.stdin)
        + usize::from(opts.stdout)
        + usize::from(opts.stderr && !opts.tty)
        + usize::from(opts.tty)
}

/// Reads frames until the client's streams are open, then serves them as
/// a [`Session`]; `None` if they never all come.
pub async fn session(
    mut input: mpsc::Receiver<Bytes>,
    output: mpsc::Sender<Bytes>,
    opts: &StreamOptions,
) -> Option<Session> {
    let want = expected(opts);
    let (ready_tx, ready_rx) = oneshot::channel::<HashMap<String, u32>>();
    let (ev_tx, ev_rx) = mpsc::channel::<Event>(32);
    let frames_out = output.clone();
    tokio::spawn(async move {
        let mut codec = HeaderCodec::default();
        let mut buf = BytesMut::new();
        let mut streams: HashMap<String, u32> = HashMap::new();
        let mut ready = Some(ready_tx);
        let mut resize = Vec::new();
        while let Some(chunk) = input.recv().await {
            buf.extend_from_slice(&chunk);
            while let Ok(Some(frame)) = spdy::parse(&mut buf) {
                match frame {
                    Frame::Control { kind, data, .. } if kind == spdy::SYN_STREAM => {
                        let Ok((id, headers)) = spdy::syn_stream(&data)
                            .and_then(|(id, block)| Ok((id, codec.decode(block)?)))
                        else {
                            return;
                        };
                        let Ok(reply) = codec.syn_reply(id) else {
                            return;
                        };
                        if frames_out.send(reply).await.is_err() {
                            return;
                        }
                        if let Some(kind) = headers.get("streamtype") {
                            streams.insert(kind.clone(), id);
                        }
                        if streams.len() >= want
                            && let Some(tx) = ready.take()
                        {
                            let _ = tx.send(streams.clone());
                        }
                    }
                    Frame::Control { kind, data, .. } if kind == spdy::PING => {
                        let _ = frames_out.send(spdy::control(spdy::PING, 0, &data)).await;
                    }
                    Frame::Control { kind, .. } if kind == spdy::GOAWAY => return,
                    Frame::Control { .. } => {}
                    Frame::Data {
                        stream,
                        flags,
                        data,
                    } => {
                        let fin = flags & spdy::FLAG_FIN != 0;
                        let mut events = Vec::new();
                        if streams.get("stdin") == Some(&stream) {
                            if !data.is_empty() {
                                events.push(Event::Stdin(data));
                            }
                            if fin {
                                events.push(Event::CloseStdin);
                            }
                        } else if streams.get("resize") == Some(&stream) {
                            // A stream of JSON objects, split anywhere.
                            resize.extend_from_slice(&data);
                            let mut parsed = serde_json::Deserializer::from_slice(&resize)
                                .into_iter::<serde_json::Value>();
                            let mut used = 0;
                            while let Some(Ok(size)) = parsed.next() {
                                used = parsed.byte_offset();
                                let text = serde_json::to_vec(&size).unwrap_or_default();
                                if let channel::Incoming::Resize { width, height } =
                                    channel::decode(&channel::frame(channel::RESIZE, &text))
                                {
                                    events.push(Event::Resize { width, height });
                                }
                            }
                            resize.drain(..used);
                        }
                        for e in events {
                            if ev_tx.send(e).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    });
    let streams = tokio::time::timeout(STREAM_TIMEOUT, ready_rx)
        .await
        .ok()?
        .ok()?;
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(32);
    tokio::spawn(async move {
        let id = |kind: &str| streams.get(kind).copied();
        while let Some(o) = out_rx.recv().await {
            match o {
                Out::Data(ch, data) => {
                    let kind = if ch == channel::STDERR {
                        "stderr"
                    } else {
                        "stdout"
                    };
                    if let Some(stream) = id(kind)
                        && output.send(spdy::data(stream, false, &data)).await.is_err()
                    {
                        return;
                    }
                }
                Out::Status(status) => {
                    let body = serde_json::to_vec(&status).unwrap_or_default();
                    if let Some(error) = id("error") {
                        let _ = output.send(spdy::data(error, false, &body)).await;
                    }
                    for kind in ["stdout", "stderr", "error"] {
                        if let Some(stream) = id(kind) {
                            let _ = output.send(spdy::data(stream, true, &[])).await;
                        }
                    }
                    return;
                }
            }
        }
    });
    Some(Session {
        events: ev_rx,
        out: out_tx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_streams_follow_the_options() {
        let o = |stdin, stdout, stderr, tty| StreamOptions {
            stdin,
            stdout,
            stderr,
            tty,
            command: vec![],
        };
        assert_eq!(expected(&o(false, true, true, false)), 3);
        assert_eq!(expected(&o(true, true, true, false)), 4);
        // A terminal has no stderr but a resize stream.
        assert_eq!(expected(&o(true, true, true, true)), 4);
    }
}
