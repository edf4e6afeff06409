//! The DNS server: hickory-server's UDP and TCP listeners with a request
//! handler that answers cluster names from the [`Index`] and relays the
//! rest to the upstream resolvers.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};

use crate::feed::Shared;
use crate::forward::Upstreams;
use crate::resolve::{Outcome, Zone, resolve};

/// Answers queries; cheap to share between the listeners.
pub struct Handler {
    pub index: Shared,
    pub zone: Zone,
    pub upstreams: Upstreams,
}

fn failed(request: &Request, code: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = code;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

impl Handler {
    async fn send<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        metadata: Metadata,
        answers: &[Record],
        authorities: &[Record],
        additionals: &[Record],
        edns: Option<&Edns>,
    ) -> ResponseInfo {
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = edns {
            builder.edns(edns);
        }
        let response = builder.build(
            metadata,
            answers.iter(),
            std::iter::empty(),
            authorities.iter(),
            additionals.iter(),
        );
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, src = %request.src(), "cannot send a DNS response");
                failed(request, ResponseCode::ServFail)
            }
        }
    }

    async fn error<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        code: ResponseCode,
    ) -> ResponseInfo {
        let response =
            MessageResponseBuilder::from_message_request(request).error_msg(&request.metadata, code);
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => failed(request, code),
        }
    }

    async fn forward<R: ResponseHandler>(&self, request: &Request, handle: R) -> ResponseInfo {
        if self.upstreams.servers.is_empty() {
            return self.error(request, handle, ResponseCode::Refused).await;
        }
        let tcp = request.protocol() == Protocol::Tcp;
        let answer = match self.upstreams.forward(request.as_slice(), tcp).await {
            Ok(raw) => raw,
            Err(e) => {
                tracing::debug!(error = %e, "forwarding failed");
                return self.error(request, handle, ResponseCode::ServFail).await;
            }
        };
        let Ok(upstream) = Message::from_vec(&answer) else {
            return self.error(request, handle, ResponseCode::ServFail).await;
        };
        let mut metadata = upstream.metadata;
        metadata.id = request.metadata.id;
        self.send(
            request,
            handle,
            metadata,
            &upstream.answers,
            &upstream.authorities,
            &upstream.additionals,
            upstream.edns.as_ref(),
        )
        .await
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        handle: R,
    ) -> ResponseInfo {
        if request.metadata.message_type != MessageType::Query {
            return self.error(request, handle, ResponseCode::FormErr).await;
        }
        if request.metadata.op_code != OpCode::Query {
            return self.error(request, handle, ResponseCode::NotImp).await;
        }
        let Ok(info) = request.request_info() else {
            return self.error(request, handle, ResponseCode::FormErr).await;
        };
        let qname = info.query.name().to_string();
        let qtype = info.query.query_type();
        let index = self.index.load();
        let outcome = resolve(&index, &self.zone, &qname, qtype);
        tracing::trace!(%qname, %qtype, ?outcome, "query");
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        metadata.recursion_available = true;
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().max(512));
            e
        });
        let soa: Vec<Record> = self.zone.soa().into_iter().collect();
        match outcome {
            Outcome::Answer {
                answers,
                additionals,
            } => {
                self.send(request, handle, metadata, &answers, &[], &additionals, edns.as_ref())
                    .await
            }
            Outcome::NoData => {
                self.send(request, handle, metadata, &[], &soa, &[], edns.as_ref())
                    .await
            }
            Outcome::NxDomain => {
                metadata.response_code = ResponseCode::NXDomain;
                self.send(request, handle, metadata, &[], &soa, &[], edns.as_ref())
                    .await
            }
            Outcome::Forward => self.forward(request, handle).await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The bound UDP socket and TCP listener of one address; binding first lets
/// callers ask for port 0 and learn the port.
pub struct Sockets {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl Sockets {
    /// Binds UDP and TCP on `addr`; with port 0, TCP takes the port UDP got.
    pub async fn bind(addr: SocketAddr) -> Result<Sockets, ServeError> {
        let listen = |source| ServeError::Listen { addr, source };
        let udp = UdpSocket::bind(addr).await.map_err(listen)?;
        let port = udp.local_addr().map_err(listen)?.port();
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        let tcp = TcpListener::bind(tcp_addr)
            .await
            .map_err(|source| ServeError::Listen {
                addr: tcp_addr,
                source,
            })?;
        Ok(Sockets { udp, tcp })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.udp.local_addr().ok()
    }
}

/// Serves DNS on `sockets` until `shutdown` resolves.
pub async fn serve(
    sockets: Sockets,
    handler: Handler,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut server = Server::new(handler);
    server.register_socket(sockets.udp);
    // Idle TCP clients are dropped after this long (CoreDNS: 10 s).
    server.register_listener(sockets.tcp, Duration::from_secs(10), 64);
    shutdown.await;
    if let Err(e) = server.shutdown_gracefully().await {
        tracing::warn!(error = %e, "DNS server stopped with an error");
    }
}
