//! The DNS server: our UDP listener and hickory-server's TCP one, with a
//! request handler that answers cluster names from the [`Index`] and relays the
//! rest to the upstream resolvers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::Query;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};

use crate::feed::Shared;

/// How many CNAMEs an answer follows (CoreDNS's limit is similar).
const MAX_CNAME_CHAIN: usize = 8;
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

/// The record sections of a response.
#[derive(Default)]
struct Sections<'a> {
    answers: &'a [Record],
    authorities: &'a [Record],
    additionals: &'a [Record],
}

impl Handler {
    async fn send<R: ResponseHandler>(
        &self,
        request: &Request,
        mut handle: R,
        metadata: Metadata,
        sections: Sections<'_>,
        edns: Option<&Edns>,
    ) -> ResponseInfo {
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = edns {
            builder.edns(edns);
        }
        let response = builder.build(
            metadata,
            sections.answers.iter(),
            std::iter::empty(),
            sections.authorities.iter(),
            sections.additionals.iter(),
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
        let response = MessageResponseBuilder::from_message_request(request)
            .error_msg(&request.metadata, code);
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => failed(request, code),
        }
    }

    /// Follows a CNAME answer (an ExternalName Service) to the target's
    /// records, in the cluster zone or upstream, as CoreDNS's kubernetes
    /// plugin does: stub resolvers such as glibc's and busybox's do not chase
    /// CNAMEs themselves and would find no address.
    async fn chase(&self, request: &Request, answers: &mut Vec<Record>, qtype: RecordType) {
        if matches!(qtype, RecordType::CNAME | RecordType::ANY) {
            return;
        }
        let index = self.index.load_full();
        for _ in 0..MAX_CNAME_CHAIN {
            let Some(RData::CNAME(target)) = answers.last().map(|r| &r.data) else {
                return;
            };
            let target = target.0.clone();
            if answers.iter().any(|r| r.name == target) {
                return; // a loop
            }
            match resolve(&index, &self.zone, &target.to_string(), qtype) {
                Outcome::Answer { answers: more, .. } => answers.extend(more),
                Outcome::Forward => {
                    answers.extend(self.upstream_answers(request, target, qtype).await);
                    return;
                }
                _ => return,
            }
        }
    }

    /// The upstream's answers for `name`; none when it fails (the client
    /// still gets the CNAME and may ask for the target itself).
    async fn upstream_answers(
        &self,
        request: &Request,
        name: Name,
        qtype: RecordType,
    ) -> Vec<Record> {
        if self.upstreams.servers.is_empty() {
            return Vec::new();
        }
        let mut query = Message::new(request.metadata.id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name.clone(), qtype));
        let Ok(bytes) = query.to_vec() else {
            return Vec::new();
        };
        match self.upstreams.forward(&bytes, false).await {
            Ok(raw) => Message::from_vec(&raw)
                .map(|m| m.answers)
                .unwrap_or_default(),
            Err(e) => {
                tracing::debug!(error = %e, %name, "cannot resolve a CNAME target upstream");
                Vec::new()
            }
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
            Sections {
                answers: &upstream.answers,
                authorities: &upstream.authorities,
                additionals: &upstream.additionals,
            },
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
        let outcome_is_nx = outcome == Outcome::NxDomain;
        match outcome {
            Outcome::Answer {
                mut answers,
                additionals,
            } => {
                self.chase(request, &mut answers, qtype).await;
                let sections = Sections {
                    answers: &answers,
                    additionals: &additionals,
                    ..Sections::default()
                };
                self.send(request, handle, metadata, sections, edns.as_ref())
                    .await
            }
            Outcome::NoData | Outcome::NxDomain => {
                if outcome_is_nx {
                    metadata.response_code = ResponseCode::NXDomain;
                }
                let sections = Sections {
                    authorities: &soa,
                    ..Sections::default()
                };
                self.send(request, handle, metadata, sections, edns.as_ref())
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
    /// Binds UDP and TCP on `addr`; with port 0, TCP takes the port UDP got
    /// (tried a few times: that port may be taken for TCP).
    pub async fn bind(addr: SocketAddr) -> Result<Sockets, ServeError> {
        let attempts = if addr.port() == 0 { 8 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let listen = |source| ServeError::Listen { addr, source };
            let udp = UdpSocket::bind(addr).await.map_err(listen)?;
            let port = udp.local_addr().map_err(listen)?.port();
            let tcp_addr = SocketAddr::new(addr.ip(), port);
            match TcpListener::bind(tcp_addr).await {
                Ok(tcp) => return Ok(Sockets { udp, tcp }),
                Err(source) => {
                    last = Some(ServeError::Listen {
                        addr: tcp_addr,
                        source,
                    })
                }
            }
        }
        Err(last.unwrap_or(ServeError::Listen {
            addr,
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        }))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.udp.local_addr().ok()
    }
}

/// The handler shared by the UDP loop and hickory's TCP listener.
struct SharedHandler(Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for SharedHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        handle: R,
    ) -> ResponseInfo {
        self.0.handle_request::<R, T>(request, handle).await
    }
}

/// Serves DNS on `sockets` until `shutdown` resolves: UDP with the answer
/// sent from the query's destination address ([`crate::udp`]), TCP (whose
/// connected sockets get that right by themselves) through hickory.
pub async fn serve(
    sockets: Sockets,
    handler: Handler,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let handler = Arc::new(handler);
    let udp = tokio::spawn(crate::udp::serve(sockets.udp, handler.clone()));
    let mut server = Server::new(SharedHandler(handler));
    // Idle TCP clients are dropped after this long (CoreDNS: 10 s).
    server.register_listener(sockets.tcp, Duration::from_secs(10), 64);
    shutdown.await;
    udp.abort();
    if let Err(e) = server.shutdown_gracefully().await {
        tracing::warn!(error = %e, "DNS server stopped with an error");
    }
}
