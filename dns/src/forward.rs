//! Forwarding of names outside the cluster zone to the host's resolvers,
//! read from a resolv.conf (`/etc/resolv.conf` by default, as CoreDNS's
//! `forward . /etc/resolv.conf`). The query is relayed as it came, over UDP
//! with a retry over TCP when the answer is truncated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("cannot read resolv.conf {path}: {source}")]
    ResolvConf {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no upstream resolver is configured")]
    NoUpstream,
    #[error("upstream {server} failed: {source}")]
    Io {
        server: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("upstream {server} did not answer within {timeout:?}")]
    Timeout {
        server: SocketAddr,
        timeout: Duration,
    },
}

/// The upstream name servers, tried in order.
#[derive(Clone, Debug)]
pub struct Upstreams {
    pub servers: Vec<SocketAddr>,
    /// Per server and transport.
    pub timeout: Duration,
}

/// The `nameserver` lines of a resolv.conf, `[addr]:port`-free as glibc's
/// (port 53); a server equal to `ourselves` is skipped to avoid a loop.
pub fn parse_resolv_conf(text: &str, ourselves: Option<SocketAddr>) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        // A zone suffix (`fe80::1%eth0`) is dropped: link-local upstreams
        // are rare and std cannot parse scoped addresses.
        .filter_map(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|s| Some(*s) != ourselves)
        .collect()
}

impl Upstreams {
    pub fn from_resolv_conf(
        path: &Path,
        ourselves: Option<SocketAddr>,
    ) -> Result<Upstreams, ForwardError> {
        let text = std::fs::read_to_string(path).map_err(|source| ForwardError::ResolvConf {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Upstreams {
            servers: parse_resolv_conf(&text, ourselves),
            timeout: Duration::from_secs(2),
        })
    }

    /// Relays one raw query; `tcp` when the client asked over TCP (its answer
    /// may be larger than a datagram). Returns the raw answer.
    pub async fn forward(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
        let mut last = ForwardError::NoUpstream;
        for server in &self.servers {
            let result = if tcp {
                self.tcp(*server, query).await
            } else {
                match self.udp(*server, query).await {
                    Ok(answer) if truncated(&answer) => self.tcp(*server, query).await,
                    other => other,
                }
            };
            match result {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    tracing::debug!(error = %e, "upstream failed, trying the next");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn udp(&self, server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        let io = |source| ForwardError::Io { server, source };
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(server).await.map_err(io)?;
        socket.send(query).await.map_err(io)?;
        let mut buf = vec![0u8; 65535];
        let exchange = async {
            loop {
                let n = socket.recv(&mut buf).await?;
                // A stray datagram with another ID is not our answer.
                if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
                    return Ok::<usize, std::io::Error>(n);
                }
            }
        };
        let n = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ForwardError::Timeout {
                server,
                timeout: self.timeout,
            })?
            .map_err(io)?;
        buf.truncate(n);
        Ok(buf)
    }

    async fn tcp(&self, server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, ForwardError> {
        let io = |source| ForwardError::Io { server, source };
        let exchange = async {
            let mut stream = TcpStream::connect(server).await?;
            let len = u16::try_from(query.len()).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long")
            })?;
            let mut framed = Vec::with_capacity(query.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(query);
            stream.write_all(&framed).await?;
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await?;
            let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut answer).await?;
            Ok::<Vec<u8>, std::io::Error>(answer)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ForwardError::Timeout {
                server,
                timeout: self.timeout,
            })?
            .map_err(io)
    }
}

/// The TC bit of a raw DNS header.
fn truncated(answer: &[u8]) -> bool {
    answer.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read_in_order_skipping_ourselves() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  fd00::53\n\
                    nameserver 127.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\n";
        let ourselves = Some("127.0.0.1:53".parse().expect("addr"));
        let got: Vec<String> = parse_resolv_conf(text, ourselves)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(got, ["10.0.0.2:53", "[fd00::53]:53", "[fe80::1]:53"]);
    }

    #[test]
    fn the_tc_bit_is_read_from_the_header() {
        assert!(truncated(&[0, 1, 0x83, 0x80]));
        assert!(!truncated(&[0, 1, 0x81, 0x80]));
        assert!(!truncated(&[0]));
    }
}
