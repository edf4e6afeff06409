//! The UDP listener. Each answer leaves from the address its query was sent
//! to (IP_PKTINFO / IPV6_PKTINFO), as CoreDNS's (miekg/dns) does. A socket
//! bound to `0.0.0.0` otherwise replies from whatever source the route back
//! picks: for a pod that is the CNI bridge's address, not the node address
//! the proxy DNATed the kube-dns ClusterIP to, so conntrack cannot match the
//! reply to the query, does not undo the DNAT, and the pod's resolver drops
//! an answer from an address it never asked.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use nix::libc;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Asks the kernel for each datagram's destination address.
pub fn enable_pktinfo(socket: &UdpSocket) -> io::Result<()> {
    match socket.local_addr()? {
        SocketAddr::V4(_) => setsockopt(socket, sockopt::Ipv4PacketInfo, &true)?,
        SocketAddr::V6(_) => {
            setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true)?;
            // IPv4 queries on a dual-stack socket carry IP_PKTINFO instead.
            if let Err(e) = setsockopt(socket, sockopt::Ipv4PacketInfo, &true) {
                tracing::debug!(error = %e, "no IP_PKTINFO on the IPv6 socket");
            }
        }
    }
    Ok(())
}

/// One received datagram: its bytes, sender, and the local address it was
/// sent to (when the kernel said).
struct Datagram {
    len: usize,
    src: SocketAddr,
    dst: Option<IpAddr>,
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

async fn receive(socket: &UdpSocket, buf: &mut [u8], cmsg: &mut [u8]) -> io::Result<Datagram> {
    socket
        .async_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut *cmsg),
                MsgFlags::empty(),
            )?;
            let src = msg.address.as_ref().and_then(to_std).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "datagram without a sender")
            })?;
            let dst = msg.cmsgs().ok().and_then(|mut all| {
                all.find_map(|c| match c {
                    ControlMessageOwned::Ipv4PacketInfo(p) => {
                        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr))))
                    }
                    ControlMessageOwned::Ipv6PacketInfo(p) => {
                        Some(IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr)))
                    }
                    _ => None,
                })
            });
            Ok(Datagram {
                len: msg.bytes,
                src,
                dst,
            })
        })
        .await
}

/// A source the kernel accepts in IP_PKTINFO: a unicast address. A query
/// to a broadcast or multicast address is answered from the route's.
fn reply_source(dst: Option<IpAddr>) -> Option<IpAddr> {
    match dst? {
        IpAddr::V4(ip) if ip.is_broadcast() || ip.is_multicast() || ip.is_unspecified() => None,
        IpAddr::V6(ip) if ip.is_multicast() || ip.is_unspecified() => None,
        // A v4-mapped destination came as IP_PKTINFO on a dual-stack socket.
        IpAddr::V6(ip) => Some(
            ip.to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(ip)),
        ),
        ip => Some(ip),
    }
}

async fn send(
    socket: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    from: Option<IpAddr>,
) -> io::Result<()> {
    let v4 = match from {
        Some(IpAddr::V4(ip)) => Some(libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            ipi_addr: libc::in_addr { s_addr: 0 },
        }),
        _ => None,
    };
    let v6 = match from {
        Some(IpAddr::V6(ip)) => Some(libc::in6_pktinfo {
            ipi6_addr: libc::in6_addr {
                s6_addr: ip.octets(),
            },
            ipi6_ifindex: 0,
        }),
        _ => None,
    };
    let mut cmsgs = Vec::new();
    if let Some(p) = &v4 {
        cmsgs.push(ControlMessage::Ipv4PacketInfo(p));
    }
    if let Some(p) = &v6 {
        cmsgs.push(ControlMessage::Ipv6PacketInfo(p));
    }
    let to = SockaddrStorage::from(to);
    socket
        .async_io(Interest::WRITABLE, || {
            sendmsg(
                socket.as_raw_fd(),
                &[IoSlice::new(bytes)],
                &cmsgs,
                MsgFlags::empty(),
                Some(&to),
            )?;
            Ok(())
        })
        .await
}

/// Sends one response as a datagram from the query's destination address.
#[derive(Clone)]
struct Responder {
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    from: Option<IpAddr>,
}

#[async_trait::async_trait]
impl ResponseHandler for Responder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // As hickory's own UDP handler: the client's EDNS buffer size, or
        // RFC 1035's 512 bytes; what does not fit is truncated (TC set).
        let max = response.edns().map_or(512, |e| e.max_payload());
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response.destructive_emit(&mut encoder)?;
        send(&self.socket, &bytes, self.to, self.from).await?;
        Ok(info)
    }
}

/// Serves queries on `socket` until the task is dropped; each query is
/// answered in a task of its own (a forwarded one may wait on upstreams).
pub async fn serve<H: RequestHandler>(socket: UdpSocket, handler: Arc<H>) {
    if let Err(e) = enable_pktinfo(&socket) {
        // Still correct for clients that ask the address we reply from.
        tracing::warn!(error = %e, "cannot enable IP_PKTINFO: UDP answers leave from the route's address");
    }
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 65535];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo, libc::in6_pktinfo);
    loop {
        let datagram = match receive(&socket, &mut buf, &mut cmsg).await {
            Ok(d) => d,
            Err(e) => {
                // ECONNREFUSED and the like from an earlier send: not fatal.
                tracing::debug!(error = %e, "UDP receive failed");
                continue;
            }
        };
        let raw = buf[..datagram.len].to_vec();
        let Ok(request) = Request::from_bytes(raw, datagram.src, Protocol::Udp) else {
            // Not a DNS message: nothing sensible to answer.
            continue;
        };
        if request.metadata.message_type != hickory_server::proto::op::MessageType::Query {
            // Never answer responses (reflection).
            continue;
        }
        let responder = Responder {
            socket: socket.clone(),
            to: datagram.src,
            from: reply_source(datagram.dst),
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            handler
                .handle_request::<_, TokioTime>(&request, responder)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_leave_from_the_unicast_address_the_query_was_sent_to() {
        let node: IpAddr = "192.0.2.2".parse().expect("ip");
        assert_eq!(reply_source(Some(node)), Some(node));
        assert_eq!(reply_source(None), None);
        assert_eq!(
            reply_source(Some("255.255.255.255".parse().expect("ip"))),
            None
        );
        assert_eq!(reply_source(Some("224.0.0.251".parse().expect("ip"))), None);
        assert_eq!(reply_source(Some("ff02::fb".parse().expect("ip"))), None);
        assert_eq!(
            reply_source(Some("::ffff:192.0.2.2".parse().expect("ip"))),
            Some(node)
        );
        let v6: IpAddr = "fd00::2".parse().expect("ip");
        assert_eq!(reply_source(Some(v6)), Some(v6));
    }
}
