//! Service policies end to end on real containers, through `ferrokube
//! proxy` in each mode: `sessionAffinity: ClientIP`, and the `Local`
//! external and internal traffic policies. Three busybox httpd replicas
//! answer `/` with their name and `/cgi-bin/who` with their name and the
//! client address they saw.
//!
//! For the traffic policies each Service also has an endpoint on another
//! node: a registered Node without a kubelet, an EndpointSlice of our own
//! naming an endpoint on it (the proxy decides locality by the endpoint's
//! node name, as kube-proxy does), and that node's pod range routed to a
//! network namespace where an httpd on the endpoint's address answers
//! `remote`. The outside client is another namespace beside the node, its
//! address outside the cluster's ranges: the host and the pods are not
//! "external" to the policy.
//!
//! Needs root, containerd, runc, the CNI plugins, nft and iptables. Every
//! host-global name is unique to the run and removed at the end.

#[path = "support/net.rs"]
mod net;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use e2e::Cluster;
use net::{
    Net, Netns, Proxy, Teardown, WEB_DEPLOYMENT, get, get_path, node_network, node_port,
    ready_pods, service_ip, start_cluster, until,
};

/// A Service from port 80 to the pods' port `http`, with `spec` lines.
fn service(name: &str, spec: &[&str]) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: http}}]\n"
    );
    for line in spec {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// Selects [`WEB_DEPLOYMENT`]'s replicas.
const WEB: &str = "selector: {app: web}";

/// The NodePort Services with a traffic policy, each also given an
/// endpoint on the other node. The last two have no selector: that
/// endpoint is their only one.
const POLICIES: [(&str, &[&str]); 5] = [
    ("ext-local", &[WEB, "externalTrafficPolicy: Local"]),
    ("ext-cluster", &[WEB, "externalTrafficPolicy: Cluster"]),
    ("int-local", &[WEB, "internalTrafficPolicy: Local"]),
    ("remote-only", &["externalTrafficPolicy: Local"]),
    ("int-remote-only", &["internalTrafficPolicy: Local"]),
];

/// Three connection attempts to `addr` (from `outside`, or else the
/// host) time out: the packets were dropped, neither answered nor refused.
fn dropped(what: &str, addr: SocketAddr, outside: Option<&Netns>) {
    for _ in 0..3 {
        let connect = move || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map_err(|e| e.kind())
        };
        let got = match outside {
            Some(ns) => ns.within(connect),
            None => connect(),
        };
        assert_eq!(got.err(), Some(ErrorKind::TimedOut), "{what}");
    }
}

/// The other node, and an EndpointSlice per Service naming an endpoint on
/// it (the EndpointSlice controller leaves slices it does not manage).
fn remote_objects(node: &str, ip: Ipv4Addr) -> String {
    let mut out = format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n");
    for (svc, _) in POLICIES {
        out.push_str(&format!(
            r#"---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {svc}-remote
  labels: {{kubernetes.io/service-name: {svc}, endpointslice.kubernetes.io/managed-by: e2e}}
addressType: IPv4
ports: [{{name: http, port: 8080, protocol: TCP}}]
endpoints:
- addresses: ["{ip}"]
  nodeName: {node}
  conditions: {{ready: true}}
"#
        ));
    }
    out
}

/// The pod on the other node: `/` answers `remote`, `/cgi-bin/who`
/// `remote` and the client address it saw.
fn serve_remote(cluster: &Cluster, node: &mut Netns, ip: Ipv4Addr) {
    let www = cluster.dir().join("remote-www");
    let cgi = www.join("cgi-bin");
    std::fs::create_dir_all(&cgi).expect("the remote pod's files");
    std::fs::write(www.join("index.html"), "remote\n").expect("index.html");
    let who = cgi.join("who");
    std::fs::write(
        &who,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho remote $REMOTE_ADDR\n",
    )
    .expect("the cgi script");
    std::fs::set_permissions(&who, std::fs::Permissions::from_mode(0o755))
        .expect("the cgi script is executable");
    let listen = format!("{ip}:8080");
    node.spawn(
        "busybox",
        &[
            "httpd",
            "-f",
            "-p",
            &listen,
            "-h",
            www.to_str().expect("utf-8"),
        ],
    );
}

/// `name source` from `/cgi-bin/who`.
fn who(answer: &str) -> (&str, &str) {
    answer.split_once(' ').unwrap_or((answer, ""))
}

#[test]
fn service_policies_hold_through_nftables() {
    service_policies_hold("nftables");
}

#[test]
fn service_policies_hold_through_iptables() {
    service_policies_hold("iptables");
}

fn service_policies_hold(mode: &str) {
    let net = Net::new();
    let cluster = start_cluster(&net, &[]);
    let _teardown = Teardown {
        cluster: &cluster,
        bridge: net.bridge.clone(),
    };
    let _proxy = Proxy::start(&cluster, &net, mode);
    let (_, node_ip) = node_network(&cluster, &net);

    let mut objects = format!("{WEB_DEPLOYMENT}{}", service("spread", &[WEB]));
    for (svc, spec) in POLICIES {
        objects.push_str(&service(svc, &[&["type: NodePort"], spec].concat()));
    }
    cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &objects);
    let names = ready_pods(&cluster, "spread", "app=web", 3);
    let spread = format!("{}:80", service_ip(&cluster, "spread"));
    until("every replica answers through the Service", || {
        let seen: BTreeSet<String> = (0..30).filter_map(|_| get(&spread)).collect();
        names.iter().all(|n| seen.contains(n)).then_some(())
    });

    // sessionAffinity ClientIP: every request of the host's goes to the
    // pod its first one reached; without affinity, over the same pods,
    // they spread. The Service comes once every replica is ready, so that
    // the proxy programs it with all three endpoints from the start.
    cluster.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &service("sticky", &[WEB, "sessionAffinity: ClientIP"]),
    );
    let sticky = format!("{}:80", service_ip(&cluster, "sticky"));
    let first = until("the sticky Service answers", || get(&sticky));
    assert!(names.contains(&first), "{first}");
    for _ in 0..30 {
        let a = get(&sticky).expect("the sticky Service answers every request");
        assert_eq!(a, first, "a request left the pod of the client's affinity");
    }
    let spread_answers: BTreeSet<String> = (0..30)
        .map(|_| get(&spread).expect("the Service without affinity answers"))
        .collect();
    assert!(
        spread_answers.len() > 1,
        "without affinity 30 requests all reached {spread_answers:?}"
    );

    // The other node, its pod, and an endpoint on it for each policy
    // Service.
    let remote_ip: Ipv4Addr = net
        .cluster_cidr
        .replace(".0.0/16", ".1.9")
        .parse()
        .expect("an address");
    let mut other = Netns::create(&net, 1);
    other.own(remote_ip, &net.cluster_cidr.replace(".0.0/16", ".1.0/24"));
    serve_remote(&cluster, &mut other, remote_ip);
    let other_node = format!("{}-other", net.node);
    cluster.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &remote_objects(&other_node, remote_ip),
    );
    let outside = Netns::create(&net, 0);
    let client = outside.addr.to_string();
    let from_outside = |addr: &str, path: &'static str| {
        let addr = addr.to_string();
        outside.within(move || get_path(&addr, path))
    };

    // externalTrafficPolicy Local: the Service's ClusterIP reaches the
    // remote endpoint (the proxy has it), yet traffic from outside to the
    // NodePort goes to local pods only, with the client's address kept.
    let ext_local = format!("{}:80", service_ip(&cluster, "ext-local"));
    until(
        "the ClusterIP of ext-local reaches the remote endpoint",
        || (get(&ext_local)? == "remote").then_some(()),
    );
    let np = format!("{node_ip}:{}", node_port(&cluster, "ext-local"));
    for _ in 0..30 {
        let a = from_outside(&np, "/cgi-bin/who")
            .expect("every request from outside to a Local NodePort answers");
        let (name, source) = who(&a);
        assert!(names.iter().any(|n| n == name), "answered by {a}");
        assert_eq!(source, client, "the pod did not see the client's address");
    }

    // externalTrafficPolicy Cluster, the negative control: from outside,
    // requests reach the remote endpoint too, and every pod sees the
    // node's address instead of the client's.
    let np = format!("{node_ip}:{}", node_port(&cluster, "ext-cluster"));
    let mut seen = BTreeSet::new();
    until(
        "outside traffic to a Cluster NodePort reaches local and remote pods",
        || {
            let a = from_outside(&np, "/cgi-bin/who")?;
            let (name, source) = who(&a);
            assert!(
                !source.is_empty() && source != client,
                "{a}: not masqueraded"
            );
            seen.insert(name == "remote");
            (seen.len() == 2).then_some(())
        },
    );

    // internalTrafficPolicy Local: outside traffic to the NodePort reaches
    // the remote endpoint (the proxy has it), ClusterIP traffic from the
    // node only the local pods.
    let np = format!("{node_ip}:{}", node_port(&cluster, "int-local"));
    until(
        "outside traffic to int-local reaches the remote endpoint",
        || (from_outside(&np, "/")? == "remote").then_some(()),
    );
    let int_local = format!("{}:80", service_ip(&cluster, "int-local"));
    for _ in 0..30 {
        let a = get(&int_local).expect("every request to an internal Local Service answers");
        assert!(names.contains(&a), "answered by {a}");
    }

    // externalTrafficPolicy Local without a local endpoint: the ClusterIP
    // reaches the remote one (the proxy has it), traffic from outside is
    // dropped (neither answered nor refused: kube-proxy's verdict).
    let remote_only = format!("{}:80", service_ip(&cluster, "remote-only"));
    until(
        "the ClusterIP of remote-only reaches the remote endpoint",
        || (get(&remote_only)? == "remote").then_some(()),
    );
    let np: SocketAddr = format!("{node_ip}:{}", node_port(&cluster, "remote-only"))
        .parse()
        .expect("an address");
    dropped(
        "outside traffic to a Local NodePort without local endpoints",
        np,
        Some(&outside),
    );

    // internalTrafficPolicy Local without a local endpoint: the NodePort
    // reaches the remote one (the proxy has it), the ClusterIP drops
    // (kube-proxy's "has no local endpoints"; only a Service without any
    // endpoint refuses).
    let np = format!("{node_ip}:{}", node_port(&cluster, "int-remote-only"));
    until(
        "outside traffic to int-remote-only reaches the remote endpoint",
        || (from_outside(&np, "/")? == "remote").then_some(()),
    );
    let cluster_ip: SocketAddr = format!("{}:80", service_ip(&cluster, "int-remote-only"))
        .parse()
        .expect("an address");
    dropped(
        "ClusterIP traffic to an internal Local Service without local endpoints",
        cluster_ip,
        None,
    );
}
