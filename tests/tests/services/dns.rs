//! Cluster DNS as a pod sees it: helpers for the services test. The host's
//! resolver here answers NXDOMAIN for every name (no internet, and a DNS
//! server knows nothing of /etc/hosts, so not even `localhost`), so the run
//! brings its own: a resolver on a loopback address of the run, given to
//! `ferrokube up --resolv-conf` as the host's. The cluster DNS forwards to
//! it exactly as it would to the host's (CoreDNS's `forward .
//! /etc/resolv.conf` in k3s).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::Cluster;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

type Answers = Arc<Mutex<BTreeMap<String, Ipv4Addr>>>;

/// A resolver on `<addr>:53` (resolv.conf has no ports) answering A
/// queries for the names it was given, NXDOMAIN for the rest.
pub struct Upstream {
    pub addr: Ipv4Addr,
    answers: Answers,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn reply(query: &[u8], answers: &Answers) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut r = Message::response(q.metadata.id, OpCode::Query);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    let known = answers.lock().ok()?.clone();
    for query in &q.queries {
        r.add_query(query.clone());
        let name = query.name().to_string().to_ascii_lowercase();
        match known.get(name.trim_end_matches('.')) {
            Some(ip) if query.query_type() == RecordType::A => {
                r.add_answer(Record::from_rdata(
                    query.name().clone(),
                    30,
                    RData::A(A(*ip)),
                ));
            }
            Some(_) => {}
            None => r.metadata.response_code = ResponseCode::NXDomain,
        }
    }
    r.to_vec().ok()
}

impl Upstream {
    pub fn start(addr: Ipv4Addr) -> Upstream {
        let socket = UdpSocket::bind(SocketAddr::from((addr, 53)))
            .unwrap_or_else(|e| panic!("the test's upstream resolver binds {addr}:53: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        let answers = Answers::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (answers, stop) = (answers.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(r) = reply(&buf[..n], &answers) {
                        let _ = socket.send_to(&r, from);
                    }
                }
            })
        };
        Upstream {
            addr,
            answers,
            stop,
            thread: Some(thread),
        }
    }

    pub fn answer(&self, name: &str, ip: &str) {
        let ip = ip.parse().expect("an IPv4 address");
        self.answers
            .lock()
            .expect("answers")
            .insert(name.to_string(), ip);
    }

    /// A resolv.conf naming only this resolver.
    pub fn resolv_conf(&self, dir: &Path) -> PathBuf {
        let path = dir.join("resolv.conf");
        std::fs::write(&path, format!("nameserver {}\n", self.addr)).expect("resolv.conf");
        path
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `sh -c script` in the pod's container; its stdout, whatever the exit.
pub fn exec(cluster: &Cluster, pod: &str, script: &str) -> String {
    let out = cluster.kubectl(&["exec", pod, "--", "sh", "-c", script]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The answer addresses in busybox nslookup's output, without the server's
/// own `Address: <ip>:53` line.
pub fn nslookup_addresses(out: &str) -> BTreeSet<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("Address:"))
        .map(str::trim)
        .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_string)
        .collect()
}

#[test]
fn nslookup_output_gives_the_answers_not_the_server() {
    let out = "Server:\t\t10.43.0.10\nAddress:\t10.43.0.10:53\n\nName:\tweb.default.svc.cluster.local\nAddress: 10.43.7.9\n\n";
    assert_eq!(
        nslookup_addresses(out),
        BTreeSet::from(["10.43.7.9".to_string()])
    );
}
