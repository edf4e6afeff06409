//! The DNS server against a real in-process API server: Services and
//! EndpointSlices written through the API show up in answers over UDP and
//! TCP; names outside the zone go to an upstream resolver (a fake one on
//! loopback, started here).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

async fn exchange(server: SocketAddr, name: &str, qtype: RecordType, tcp: bool) -> Message {
    let mut msg = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_str(name).expect("name"), qtype));
    let bytes = msg.to_vec().expect("encode");
    let answer = if tcp {
        let mut stream = TcpStream::connect(server).await.expect("connect");
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await.expect("write");
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.expect("read len");
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf).await.expect("read");
        buf
    } else {
        // Connected, as stub resolvers are: an answer from any other
        // address than the one asked is not received.
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        socket.connect(server).await.expect("connect");
        socket.send(&bytes).await.expect("send");
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
            .await
            .expect("an answer from the address asked, in time")
            .expect("recv");
        buf.truncate(n);
        buf
    };
    let reply = Message::from_vec(&answer).expect("decode");
    assert_eq!(reply.metadata.id, msg.metadata.id);
    reply
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7)
        % 65536) as u16
}

fn rendered(reply: &Message) -> Vec<String> {
    reply
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

/// Queries until `check` holds (the caches are fed by watches).
async fn until(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    tcp: bool,
    check: impl Fn(&Message) -> bool,
) -> Message {
    for _ in 0..100 {
        let reply = exchange(server, name, qtype, tcp).await;
        if check(&reply) {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    exchange(server, name, qtype, tcp).await
}

/// A resolver for everything outside the cluster: answers every A query
/// with 192.0.2.1 (a documentation address) over UDP and TCP.
async fn fake_upstream() -> SocketAddr {
    // The library's binder retries when UDP's port is taken for TCP.
    let dns::Sockets { udp, tcp } = dns::Sockets::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind upstream");
    let addr = udp.local_addr().expect("addr");
    fn reply(query: &[u8]) -> Vec<u8> {
        let q = Message::from_vec(query).expect("query");
        let mut r = Message::response(q.metadata.id, OpCode::Query);
        r.metadata.recursion_desired = q.metadata.recursion_desired;
        r.metadata.recursion_available = true;
        for query in &q.queries {
            r.add_query(query.clone());
            r.add_answer(Record::from_rdata(
                query.name().clone(),
                300,
                RData::A(A::new(192, 0, 2, 1)),
            ));
        }
        r.to_vec().expect("encode")
    }
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(&reply(&buf[..n]), from).await;
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).await.is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if s.read_exact(&mut q).await.is_err() {
                continue;
            }
            let r = reply(&q);
            let mut framed = (r.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&r);
            let _ = s.write_all(&framed).await;
        }
    });
    addr
}

async fn start_dns(client: Client, config: dns::Config) -> SocketAddr {
    start_dns_on(client, config, "127.0.0.1:0").await
}

async fn start_dns_on(client: Client, config: dns::Config, listen: &str) -> SocketAddr {
    let sockets = dns::Sockets::bind(listen.parse().expect("addr"))
        .await
        .expect("bind dns");
    let addr = sockets.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = dns::run_on(sockets, config, client, std::future::pending()).await;
    });
    addr
}

#[tokio::test]
async fn cluster_names_resolve_over_udp_and_tcp_and_others_are_forwarded() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("test server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let web: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))
    .expect("web");
    let web = services
        .create(&PostParams::default(), &web)
        .await
        .expect("create web");
    let web_ip = web
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("allocated ClusterIP");
    let db: Service = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"},
                 "ports": [{"name": "pg", "port": 5432}]},
    }))
    .expect("db");
    services
        .create(&PostParams::default(), &db)
        .await
        .expect("create db");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.42.0.6"], "hostname": "db-1", "conditions": {"ready": false}},
        ],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
    }))
    .expect("slice");
    Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &slice)
        .await
        .expect("create slice");

    let upstream = fake_upstream().await;
    let mut config = dns::Config::new("127.0.0.1:0".parse().expect("addr"));
    config.upstreams = vec![upstream];
    let node_ip: IpAddr = "10.0.0.5".parse().expect("ip");
    config.register = Some(("10.43.0.10".parse().expect("ip"), node_ip));
    let dns_addr = start_dns(client.clone(), config).await;

    for tcp in [false, true] {
        let reply = until(
            dns_addr,
            "web.default.svc.cluster.local.",
            RecordType::A,
            tcp,
            |r| !r.answers.is_empty(),
        )
        .await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert_eq!(
            rendered(&reply),
            [format!("web.default.svc.cluster.local. A {web_ip}")],
            "tcp={tcp}"
        );
    }
    let headless = until(
        dns_addr,
        "db.default.svc.cluster.local.",
        RecordType::A,
        false,
        |r| !r.answers.is_empty(),
    )
    .await;
    assert_eq!(
        rendered(&headless),
        ["db.default.svc.cluster.local. A 10.42.0.5"]
    );
    let pod = exchange(
        dns_addr,
        "db-0.db.default.svc.cluster.local.",
        RecordType::A,
        true,
    )
    .await;
    assert_eq!(
        rendered(&pod),
        ["db-0.db.default.svc.cluster.local. A 10.42.0.5"]
    );
    let srv = exchange(
        dns_addr,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
        false,
    )
    .await;
    assert_eq!(
        rendered(&srv),
        ["_http._tcp.web.default.svc.cluster.local. SRV 0 100 80 web.default.svc.cluster.local."]
    );
    assert_eq!(
        srv.additionals.len(),
        1,
        "the SRV target's address rides along"
    );

    let missing = exchange(
        dns_addr,
        "nope.default.svc.cluster.local.",
        RecordType::A,
        false,
    )
    .await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(missing.authorities.len(), 1, "SOA for negative caching");

    for tcp in [false, true] {
        let external = exchange(dns_addr, "example.org.", RecordType::A, tcp).await;
        assert_eq!(external.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            rendered(&external),
            ["example.org. A 192.0.2.1"],
            "tcp={tcp}"
        );
    }

    // The kube-dns Service and its endpoints point at this server.
    let kube_dns: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let mut registered = None;
    for _ in 0..100 {
        if let Ok(s) = Api::<EndpointSlice>::namespaced(client.clone(), "kube-system")
            .get("kube-dns")
            .await
        {
            registered = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slice = registered.expect("kube-dns EndpointSlice");
    assert_eq!(slice.endpoints[0].addresses, ["10.0.0.5"]);
    let ports: Vec<(Option<String>, Option<i32>)> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.port))
        .collect();
    let port = i32::from(dns_addr.port());
    assert_eq!(
        ports,
        [
            (Some("dns".into()), Some(port)),
            (Some("dns-tcp".into()), Some(port))
        ]
    );
    let svc = kube_dns.get("kube-dns").await.expect("kube-dns service");
    assert_eq!(
        svc.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("10.43.0.10")
    );
    // The kube-dns Service itself resolves.
    let reply = until(
        dns_addr,
        "kube-dns.kube-system.svc.cluster.local.",
        RecordType::A,
        false,
        |r| !r.answers.is_empty(),
    )
    .await;
    assert_eq!(
        rendered(&reply),
        ["kube-dns.kube-system.svc.cluster.local. A 10.43.0.10"]
    );

    // A deleted Service disappears from DNS.
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete web");
    let gone = until(
        dns_addr,
        "web.default.svc.cluster.local.",
        RecordType::A,
        false,
        |r| r.metadata.response_code == ResponseCode::NXDomain,
    )
    .await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn without_upstreams_other_names_are_refused() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("test server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = dns::Config::new("127.0.0.1:0".parse().expect("addr"));
    config.resolv_conf = dir.path().join("missing-resolv.conf");
    let dns_addr = start_dns(client, config).await;
    let reply = exchange(dns_addr, "example.org.", RecordType::A, false).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    // Cluster names still answer (the default Service exists).
    let kubernetes = until(
        dns_addr,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A,
        true,
        |r| !r.answers.is_empty(),
    )
    .await;
    assert_eq!(
        rendered(&kubernetes),
        ["kubernetes.default.svc.cluster.local. A 10.43.0.1"]
    );
}

/// Bound to every address, as `ferrokube up` binds it, the server answers
/// a query sent to 127.0.0.2 from 127.0.0.2: the route back to 127.0.0.1
/// would pick 127.0.0.1, as the route back to a pod picks the bridge's
/// address for a query DNATed to the node's. And an ExternalName answers
/// with its CNAME and the target's address, from the cluster zone or
/// upstream, as CoreDNS does.
#[tokio::test]
async fn a_wildcard_server_answers_from_the_address_asked_and_chases_external_names() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("test server");
    let client = client::connect(Some(&server.kubeconfig))
        .await
        .expect("client");
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    for (name, target) in [
        ("outside", "db.example.org"),
        ("inside", "kubernetes.default.svc.cluster.local"),
    ] {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"type": "ExternalName", "externalName": target},
        }))
        .expect("service");
        services
            .create(&PostParams::default(), &svc)
            .await
            .expect("create ExternalName");
    }
    let upstream = fake_upstream().await;
    let mut config = dns::Config::new("0.0.0.0:0".parse().expect("addr"));
    config.upstreams = vec![upstream];
    let bound = start_dns_on(client, config, "0.0.0.0:0").await;
    let asked = SocketAddr::from(([127, 0, 0, 2], bound.port()));
    for tcp in [false, true] {
        let outside = until(
            asked,
            "outside.default.svc.cluster.local.",
            RecordType::A,
            tcp,
            |r| !r.answers.is_empty(),
        )
        .await;
        assert_eq!(
            rendered(&outside),
            [
                "outside.default.svc.cluster.local. CNAME db.example.org.",
                "db.example.org. A 192.0.2.1"
            ],
            "tcp={tcp}"
        );
    }
    let inside = until(
        asked,
        "inside.default.svc.cluster.local.",
        RecordType::A,
        false,
        |r| !r.answers.is_empty(),
    )
    .await;
    assert_eq!(
        rendered(&inside),
        [
            "inside.default.svc.cluster.local. CNAME kubernetes.default.svc.cluster.local.",
            "kubernetes.default.svc.cluster.local. A 10.43.0.1"
        ]
    );
    // Asked for the CNAME itself, it is not followed.
    let cname = exchange(
        asked,
        "outside.default.svc.cluster.local.",
        RecordType::CNAME,
        false,
    )
    .await;
    assert_eq!(cname.answers.len(), 1);
}
