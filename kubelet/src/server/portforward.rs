//! `/portForward/{ns}/{pod}`: the port-forward protocol
//! (`portforward.k8s.io`) over SPDY/3.1, reached either through a
//! WebSocket carrying the SPDY bytes in binary messages (subprotocol
//! `SPDY/3.1+portforward.k8s.io`, kubectl's first choice since 1.31) or a
//! plain `Upgrade: SPDY/3.1`. kubectl opens a pair of streams per
//! connection, `streamtype: error` and `streamtype: data`, sharing a
//! `requestid`; the data stream is spliced to a TCP connection made
//! inside the pod's network namespace, and any failure is written to the
//! error stream.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::spdy::{self, Frame, HeaderCodec};

/// Connects to `127.0.0.1:port` inside the network namespace at `netns`
/// (the host's for `hostNetwork` pods). A socket belongs to the namespace
/// it was created in, so a short-lived thread enters it, connects, and
/// hands the socket back.
pub async fn connect_in(netns: Option<PathBuf>, port: u16) -> std::io::Result<TcpStream> {
    let Some(netns) = netns else {
        return TcpStream::connect(("127.0.0.1", port)).await;
    };
    let stream = tokio::task::spawn_blocking(move || -> std::io::Result<std::net::TcpStream> {
        let ns = std::fs::File::open(&netns)?;
        // A spawn_blocking thread is reused: enter on a thread of our own.
        std::thread::spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                std::time::Duration::from_secs(10),
            )
        })
        .join()
        .map_err(|_| std::io::Error::other("netns thread panicked"))?
    })
    .await
    .map_err(std::io::Error::other)??;
    stream.set_nonblocking(true)?;
    TcpStream::from_std(stream)
}

#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<(u32, u16, mpsc::UnboundedReceiver<Option<Bytes>>)>,
}

/// Serves one SPDY session: raw bytes in from `input`, frames out to
/// `output`, until either side ends. `connect` opens the pod's port;
/// `describe` names the pod in error messages.
pub async fn serve<C, Fut>(
    mut input: mpsc::Receiver<Bytes>,
    output: mpsc::Sender<Bytes>,
    describe: String,
    connect: C,
) where
    C: Fn(u16) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = std::io::Result<TcpStream>> + Send + 'static,
{
    let mut codec = HeaderCodec::default();
    let mut buf = BytesMut::new();
    let mut to_conn: HashMap<u32, mpsc::UnboundedSender<Option<Bytes>>> = HashMap::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    while let Some(chunk) = input.recv().await {
        buf.extend_from_slice(&chunk);
        loop {
            let frame = match spdy::parse(&mut buf) {
                Ok(Some(f)) => {
                    tracing::trace!(frame = ?f, "port-forward frame");
                    f
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward session ends");
                    return;
                }
            };
            match frame {
                Frame::Control { kind, data, .. } if kind == spdy::SYN_STREAM => {
                    let decoded = spdy::syn_stream(&data)
                        .and_then(|(id, block)| Ok((id, codec.decode(block)?)));
                    let (id, headers) = match decoded {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::debug!(error = %e, "bad SYN_STREAM");
                            return;
                        }
                    };
                    let Ok(reply) = codec.syn_reply(id) else {
                        return;
                    };
                    if output.send(reply).await.is_err() {
                        return;
                    }
                    let request = headers.get("requestid").cloned().unwrap_or_default();
                    let pair = pairs.entry(request.clone()).or_default();
                    match headers.get("streamtype").map(String::as_str) {
                        Some("error") => pair.error = Some(id),
                        Some("data") => {
                            let port = headers.get("port").and_then(|p| p.parse::<u16>().ok());
                            let Some(port) = port.filter(|p| *p > 0) else {
                                let _ = output.send(spdy::rst_stream(id, 1)).await;
                                continue;
                            };
                            let (tx, rx) = mpsc::unbounded_channel();
                            to_conn.insert(id, tx);
                            pair.data = Some((id, port, rx));
                        }
                        _ => {
                            let _ = output.send(spdy::rst_stream(id, 1)).await;
                            continue;
                        }
                    }
                    let complete = pairs
                        .get(&request)
                        .is_some_and(|p| p.error.is_some() && p.data.is_some());
                    if complete
                        && let Some(Pair {
                            error: Some(error),
                            data: Some((data, port, rx)),
                        }) = pairs.remove(&request)
                    {
                        tokio::spawn(forward(
                            output.clone(),
                            error,
                            data,
                            port,
                            rx,
                            describe.clone(),
                            connect.clone(),
                        ));
                    }
                }
                Frame::Control { kind, data, .. } if kind == spdy::RST_STREAM => {
                    if let Some(id) = data.get(..4).and_then(|b| b.try_into().ok()) {
                        let id = u32::from_be_bytes(id) & 0x7fff_ffff;
                        if let Some(tx) = to_conn.remove(&id) {
                            let _ = tx.send(None);
                        }
                    }
                }
                Frame::Control { kind, data, .. } if kind == spdy::PING => {
                    if output
                        .send(spdy::control(spdy::PING, 0, &data))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Frame::Control { kind, .. } if kind == spdy::GOAWAY => return,
                // SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do.
                Frame::Control { .. } => {}
                Frame::Data {
                    stream,
                    flags,
                    data,
                } => {
                    if let Some(tx) = to_conn.get(&stream) {
                        if !data.is_empty() {
                            let _ = tx.send(Some(data));
                        }
                        if flags & spdy::FLAG_FIN != 0 {
                            let _ = tx.send(None);
                            to_conn.remove(&stream);
                        }
                    }
                }
            }
        }
    }
}

/// One forwarded connection: pod port ↔ data stream.
async fn forward<C, Fut>(
    output: mpsc::Sender<Bytes>,
    error: u32,
    data: u32,
    port: u16,
    mut from_client: mpsc::UnboundedReceiver<Option<Bytes>>,
    describe: String,
    connect: C,
) where
    C: Fn(u16) -> Fut,
    Fut: Future<Output = std::io::Result<TcpStream>>,
{
    let conn = match connect(port).await {
        Ok(c) => c,
        Err(e) => {
            let message = format!("error forwarding port {port} to pod {describe}: {e}");
            tracing::debug!(%message);
            let _ = output
                .send(spdy::data(error, false, message.as_bytes()))
                .await;
            let _ = output.send(spdy::data(error, true, &[])).await;
            let _ = output.send(spdy::data(data, true, &[])).await;
            return;
        }
    };
    tracing::debug!(port, data, "port-forward connection open");
    let (mut rd, mut wr) = conn.into_split();
    let upstream = async move {
        while let Some(Some(chunk)) = from_client.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let out = output.clone();
    let downstream = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.send(spdy::data(data, false, &buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = out.send(spdy::data(data, true, &[])).await;
    };
    let up = tokio::spawn(upstream);
    downstream.await;
    up.abort();
    let _ = output.send(spdy::data(error, true, &[])).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a session as kubectl would: error stream, data stream, bytes
    /// through, FIN; the "pod" is a local echo server.
    #[tokio::test]
    async fn a_stream_pair_is_spliced_to_the_pod_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await.expect("read");
            buf.reverse();
            s.write_all(&buf).await.expect("write");
        });
        let (in_tx, in_rx) = mpsc::channel(16);
        let (out_tx, mut out_rx) = mpsc::channel(16);
        tokio::spawn(serve(
            in_rx,
            out_tx,
            "default/p".into(),
            |port| async move { TcpStream::connect(("127.0.0.1", port)).await },
        ));
        let mut client = HeaderCodec::default();
        let syn = |client: &mut HeaderCodec, id: u32, kind: &str| {
            let port = port.to_string();
            let block = client
                .encode(&[("streamtype", kind), ("port", &port), ("requestid", "0")])
                .expect("encode");
            let mut body = Vec::new();
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&0u32.to_be_bytes());
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&block);
            spdy::control(spdy::SYN_STREAM, 0, &body)
        };
        in_tx
            .send(syn(&mut client, 1, "error"))
            .await
            .expect("send");
        in_tx.send(syn(&mut client, 3, "data")).await.expect("send");
        in_tx
            .send(spdy::data(3, true, b"hello"))
            .await
            .expect("send");
        let mut buf = BytesMut::new();
        let mut replies = 0;
        let mut echoed = Vec::new();
        let mut fins = Vec::new();
        while fins.len() < 2 {
            let chunk = out_rx.recv().await.expect("frame");
            buf.extend_from_slice(&chunk);
            while let Some(f) = spdy::parse(&mut buf).expect("parse") {
                match f {
                    Frame::Control { kind, .. } if kind == spdy::SYN_REPLY => replies += 1,
                    Frame::Data {
                        stream,
                        flags,
                        data,
                    } => {
                        if stream == 3 {
                            echoed.extend_from_slice(&data);
                        }
                        if flags & spdy::FLAG_FIN != 0 {
                            fins.push(stream);
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(replies, 2);
        assert_eq!(echoed, b"olleh");
        fins.sort();
        assert_eq!(fins, vec![1, 3]);
    }
}
