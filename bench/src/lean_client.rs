//! A lean HTTP/1.1 client for the create benchmark: one keep-alive
//! connection per concurrent client, driven by the task that sends on it,
//! and bodies encoded before the clock starts. The client shares the
//! process and its two CPUs with the API server it measures, so it should
//! cost as little as a request over real HTTP can: a load generator, as
//! wrk or hey are, rather than a general client. A request is one write;
//! an answer is read and framed by its `Content-Length` (what the server
//! sends), its head parsed by `httparse`, hyper's own parser.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Headers an answer may have; the server sends a handful.
const MAX_HEADERS: usize = 32;

/// One HTTP/1.1 connection to the server.
pub struct Connection {
    stream: TcpStream,
    host: String,
    /// The request being written, reused.
    request: Vec<u8>,
    /// What has been read and not yet taken.
    read: BytesMut,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            host: addr.to_string(),
            request: Vec::with_capacity(4096),
            read: BytesMut::with_capacity(16 * 1024),
        })
    }

    /// POSTs a JSON body to `path`; returns the status and the whole answer.
    pub async fn post_json(
        &mut self,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        use std::io::Write as _;
        self.request.clear();
        write!(
            self.request,
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.host,
            body.len()
        )?;
        self.request.extend_from_slice(&body);
        self.stream.write_all(&self.request).await?;
        self.answer().await
    }

    /// Reads one answer: its head, then a body of its `Content-Length`.
    async fn answer(&mut self) -> anyhow::Result<(StatusCode, Bytes)> {
        let (head, status, length) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.read).context("a malformed answer")? {
                httparse::Status::Complete(head) => {
                    let status = StatusCode::from_u16(response.code.unwrap_or_default())?;
                    let length = content_length(response.headers)?;
                    break (head, status, length);
                }
                httparse::Status::Partial => self.fill().await?,
            }
        };
        while self.read.len() < head + length {
            self.fill().await?;
        }
        self.read.advance(head);
        Ok((status, self.read.split_to(length).freeze()))
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        self.read.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.read).await? == 0 {
            bail!("the server closed the connection mid-answer");
        }
        Ok(())
    }
}

/// The body's length; an answer framed otherwise (chunked) is not one the
/// benchmark's server sends.
fn content_length(headers: &[httparse::Header]) -> anyhow::Result<usize> {
    let header = headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .context("an answer without Content-Length")?;
    Ok(std::str::from_utf8(header.value)?.trim().parse()?)
}
