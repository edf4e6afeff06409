//! Byte pumps between an upgraded client connection and a SPDY session's
//! channels: SPDY bytes in WebSocket binary messages (the
//! `SPDY/3.1+portforward.k8s.io` tunnel), or raw on a connection that
//! switched to `SPDY/3.1`.

/// SPDY bytes in WebSocket binary messages, both ways.
pub async fn websocket(
    socket: axum::extract::ws::WebSocket,
    input: tokio::sync::mpsc::Sender<bytes::Bytes>,
    mut output: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) {
    use axum::extract::ws::Message;
    use futures::{SinkExt, StreamExt};
    let (mut sink, mut stream) = socket.split();
    let reading = async {
        while let Some(Ok(m)) = stream.next().await {
            match m {
                // (cloning `Bytes` only counts a reference)
                Message::Binary(b) if input.send(b.clone()).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    let writing = async {
        while let Some(b) = output.recv().await {
            if sink.send(Message::Binary(b)).await.is_err() {
                break;
            }
        }
        let _ = sink
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: "".into(),
            })))
            .await;
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
}

/// SPDY bytes on a raw upgraded connection.
pub async fn io<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    io: T,
    input: tokio::sync::mpsc::Sender<bytes::Bytes>,
    mut output: tokio::sync::mpsc::Receiver<bytes::Bytes>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut rd, mut wr) = tokio::io::split(io);
    let reading = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if input
                        .send(bytes::Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writing = async {
        while let Some(b) = output.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::select! {
        () = reading => {}
        () = writing => {}
    }
}
