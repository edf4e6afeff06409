//! Services end to end on real containers: `ferrokube up` with its kubelet
//! (private containerd, CNI bridge), busybox httpd pods that answer with
//! their own name, the EndpointSlice controller, and `ferrokube proxy` as
//! its own process programming the host's nftables or iptables (the test
//! runs once per proxy mode, and restarts the proxy). Every host-global name (node, bridge, pod and Service
//! ranges, chain prefix) is unique to the run; everything is removed at
//! the end.
//!
//! Needs root, containerd, runc, the CNI plugins, nft and iptables. Embedded
//! store only: the storage backend is not what is under test here.

#[path = "services/dns.rs"]
mod dns;

#[path = "support/net.rs"]
mod net;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use e2e::Cluster;
use net::{
    Net, Proxy, Teardown, WEB_DEPLOYMENT, get, json, node_network, node_port, ready_pods,
    service_ip, settled_traffic, slice_endpoints, start_cluster, until,
};

/// The Services over [`WEB_DEPLOYMENT`]'s replicas.
const WEB_SERVICES: &str = r#"
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 8081, targetPort: http}]
"#;

/// Two replicas whose readiness is a file the test can remove.
const FLAKY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: flaky}
spec:
  replicas: 2
  selector: {matchLabels: {app: flaky}}
  template:
    metadata: {labels: {app: flaky}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        command: [sh, -c, "touch /tmp/ready; mkdir -p /www && echo $POD_NAME > /www/index.html && httpd -f -p 8080 -h /www"]
        readinessProbe:
          exec: {command: [sh, -c, "test -f /tmp/ready"]}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: flaky}
spec:
  selector: {app: flaky}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: flaky-headless}
spec:
  clusterIP: None
  selector: {app: flaky}
  ports: [{port: 80, targetPort: 8080}]
"#;

fn assert_spread(what: &str, answers: &[String], names: &[String]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for a in answers {
        *counts.entry(a.as_str()).or_default() += 1;
    }
    assert_eq!(answers.len(), 300, "{what}: {counts:?}");
    for n in names {
        let got = counts.get(n.as_str()).copied().unwrap_or(0);
        // Each replica gets about a third (100 ± 40 is far outside what
        // a fair 1/3 coin gives over 300 draws).
        assert!(
            (60..=140).contains(&got),
            "{what}: uneven spread {counts:?}"
        );
    }
    assert_eq!(counts.len(), 3, "{what}: only replicas answer: {counts:?}");
}

#[test]
fn services_reach_ready_pods_through_nftables() {
    services_reach_ready_pods("nftables");
}

#[test]
fn services_reach_ready_pods_through_iptables() {
    services_reach_ready_pods("iptables");
}

/// The table the proxy with this prefix programs in nftables mode.
fn nft_table(prefix: &str) -> String {
    format!("ferrokube-{}", prefix.to_lowercase())
}

/// Every table of the proxy's (the common one and its shards), listed
/// one after the other; `None` without the common table.
fn nft_listing(net: &Net) -> Option<String> {
    let common = nft_table(&net.prefix);
    let nft = |args: &[&str]| {
        let out = Command::new("nft").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let tables = nft(&["list", "tables", "ip"])?;
    let shard = format!("{common}.shard");
    let ours: Vec<&str> = tables
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table ip "))
        .filter(|t| *t == common || t.starts_with(&shard))
        .collect();
    if !ours.contains(&common.as_str()) {
        return None;
    }
    let mut listing = String::new();
    for t in ours {
        listing.push_str(&nft(&["list", "table", "ip", t])?);
    }
    Some(listing)
}

fn services_reach_ready_pods(mode: &str) {
    let net = Net::new();
    let upstream = dns::Upstream::start(net.dns_upstream);
    let resolv_dir = tempfile::tempdir().expect("tempdir");
    let resolv_conf = upstream.resolv_conf(resolv_dir.path());
    let cluster = start_cluster(
        &net,
        &["--resolv-conf", resolv_conf.to_str().expect("utf-8 path")],
    );
    let _teardown = Teardown {
        cluster: &cluster,
        bridge: net.bridge.clone(),
    };
    let mut proxy = Proxy::start(&cluster, &net, mode);

    // Node IPAM gave the node the first /24 of the cluster CIDR.
    let (pod_cidr, node_ip) = node_network(&cluster, &net);
    assert_eq!(pod_cidr, net.cluster_cidr.replace(".0.0/16", ".0.0/24"));

    cluster.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        &format!("{WEB_DEPLOYMENT}{WEB_SERVICES}"),
    );
    let names = ready_pods(&cluster, "web", "app=web", 3);
    let cluster_ip = service_ip(&cluster, "web");
    let target = format!("{cluster_ip}:80");

    // From the host.
    let mut answers = Vec::new();
    // The proxy may still be adding the last endpoint when the slice shows
    // all three: start counting once every replica has answered.
    until("every replica answers through the ClusterIP", || {
        let seen: BTreeSet<String> = (0..30).filter_map(|_| get(&target)).collect();
        names.iter().all(|n| seen.contains(n)).then_some(())
    });
    for _ in 0..300 {
        answers.push(get(&target).expect("every request through the ClusterIP answers"));
    }
    assert_spread("from the host", &answers, &names);

    // From another pod: 300 wgets, one name a line in its log (no `-T`:
    // the static busybox's wget crashes with a timeout set).
    let client = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"client"}},"spec":{{"restartPolicy":"Never","containers":[{{"name":"c","image":"busybox","command":["sh","-c","for i in $(seq 300); do wget -q -O - http://{target}/ || echo FAILED; done; echo DONE; sleep 3600"]}}]}}}}"#
    );
    cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &client);
    let uid = until("the client pod exists", || {
        json(&cluster, &["get", "pod", "client"])["metadata"]["uid"]
            .as_str()
            .map(str::to_string)
    });
    let log = cluster
        .dir()
        .join("kubelet/pods")
        .join(format!("default_client_{uid}"))
        .join("c/0.log");
    let lines = until("the client pod made 300 requests", || {
        let text = std::fs::read_to_string(&log).ok()?;
        let lines: Vec<String> = text.lines().map(|l| log_message(l).to_string()).collect();
        lines.iter().any(|l| l == "DONE").then_some(lines)
    });
    let answers: Vec<String> = lines.into_iter().filter(|l| l != "DONE").collect();
    assert_spread("from a pod", &answers, &names);

    check_dns(&cluster, &net, &upstream, &cluster_ip, &names);

    // NodePort on the node's address.
    let node_port = node_port(&cluster, "web-np");
    let answer = until("the NodePort answers", || {
        get(&format!("{node_ip}:{node_port}"))
    });
    assert!(names.contains(&answer), "{answer}");

    // LoadBalancer: the node's address as ingress, answering on the port.
    let lb_ip = until("the LoadBalancer has an ingress IP", || {
        let lb = json(&cluster, &["get", "service", "web-lb"]);
        lb["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_string)
    });
    assert_eq!(lb_ip, node_ip);
    let answer = until("the LoadBalancer answers", || get(&format!("{lb_ip}:8081")));
    assert!(names.contains(&answer), "{answer}");

    // Hairpin: a pod reaching itself through its own Service.
    cluster.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"self"},"spec":{"selector":{"app":"self"},"ports":[{"port":80,"targetPort":8080}]}}"#,
    );
    let self_ip = service_ip(&cluster, "self");
    let selfpod = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"self","labels":{{"app":"self"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox","command":["sh","-c","mkdir -p /www && echo itself > /www/index.html && httpd -p 8080 -h /www && while true; do wget -q -O - http://{self_ip}/ && echo REACHED; sleep 1; done"]}}]}}}}"#
    );
    cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &selfpod);
    let self_uid = until("the self pod exists", || {
        json(&cluster, &["get", "pod", "self"])["metadata"]["uid"]
            .as_str()
            .map(str::to_string)
    });
    let self_log = cluster
        .dir()
        .join("kubelet/pods")
        .join(format!("default_self_{self_uid}"))
        .join("c/0.log");
    until("the pod reaches itself through its Service", || {
        let text = std::fs::read_to_string(&self_log).ok()?;
        text.lines()
            .any(|l| log_message(l) == "REACHED")
            .then_some(())
    });

    // A Service without endpoints refuses connections at once (a reject in
    // the filter hooks, before DNAT) rather than letting them time out.
    cluster.kubectl_stdin_ok(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"nobody"},"spec":{"selector":{"app":"nobody"},"ports":[{"port":80,"targetPort":8080}]}}"#,
    );
    let nobody = service_ip(&cluster, "nobody");
    let nobody: std::net::SocketAddr = format!("{nobody}:80").parse().expect("address");
    until("a Service without endpoints refuses connections", || {
        let refused = TcpStream::connect_timeout(&nobody, Duration::from_secs(2))
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        refused.then_some(())
    });

    // A pod failing readiness stops getting traffic: its probe file is
    // removed through `kubectl exec`, its endpoint turns not ready, and
    // the Service answers only from the other replica.
    cluster.kubectl_stdin_ok(&["apply", "-f", "-"], FLAKY);
    let flaky = ready_pods(&cluster, "flaky", "app=flaky", 2);
    let flaky_ip = service_ip(&cluster, "flaky");
    let flaky_target = format!("{flaky_ip}:80");
    until("the flaky Service answers", || get(&flaky_target));
    let unready = &flaky[0];
    let unready_ip = json(&cluster, &["get", "pod", unready])["status"]["podIP"]
        .as_str()
        .expect("podIP")
        .to_string();
    cluster.kubectl_ok(&["exec", unready, "--", "sh", "-c", "rm /tmp/ready"]);
    until("the pod failing readiness is a not-ready endpoint", || {
        let eps = slice_endpoints(&cluster, "flaky");
        (eps.get(&unready_ip).is_some_and(|c| !c.0)).then_some(())
    });
    settled_traffic(
        "a pod failing readiness gets no traffic",
        &flaky_target,
        |a| a == flaky[1],
    );
    // Nor is it in the headless Service's answer.
    let ready_ip = json(&cluster, &["get", "pod", &flaky[1]])["status"]["podIP"]
        .as_str()
        .expect("podIP")
        .to_string();
    until(
        "the headless Service resolves to the ready pod only",
        || {
            let out = dns::exec(
                &cluster,
                "dns-client",
                "timeout 10 nslookup flaky-headless.default.svc.cluster.local",
            );
            (dns::nslookup_addresses(&out) == BTreeSet::from([ready_ip.clone()])).then_some(())
        },
    );

    // A deleted pod's endpoint goes terminating, then away; traffic goes
    // to the others meanwhile.
    let victim = &names[0];
    let victim_ip = json(&cluster, &["get", "pod", victim])["status"]["podIP"]
        .as_str()
        .expect("podIP")
        .to_string();
    cluster.kubectl_ok(&["delete", "pod", victim, "--wait=false"]);
    until("the deleted pod's endpoint is terminating", || {
        let eps = slice_endpoints(&cluster, "web");
        (eps.get(&victim_ip) == Some(&(false, true, true))).then_some(())
    });
    settled_traffic("a terminating pod gets no new connections", &target, |a| {
        a != victim
    });
    until("the deleted pod's endpoint is gone", || {
        (!slice_endpoints(&cluster, "web").contains_key(&victim_ip)).then_some(())
    });

    // Restart the proxy: a stale chain of ours and the rules of a Service
    // deleted meanwhile are gone, and traffic keeps flowing throughout.
    proxy.kill();
    let stale_shard = format!("{}.shard99", nft_table(&net.prefix));
    let stale = match mode {
        "nftables" => {
            let listing = nft_listing(&net).expect("our nftables table exists");
            assert!(
                listing.contains(&format!("tcp . {node_port} : goto external-")),
                "{listing}"
            );
            let stale = "service-STALESTA-default/gone/tcp/".to_string();
            let st = Command::new("nft")
                .args(["add", "chain", "ip", &nft_table(&net.prefix), &stale])
                .status()
                .expect("nft");
            assert!(st.success());
            // And a shard table of a layout with more shards.
            let st = Command::new("nft")
                .args(["add", "table", "ip", &stale_shard])
                .status()
                .expect("nft");
            assert!(st.success());
            assert!(nft_listing(&net).is_some_and(
                |l| l.contains(&stale) && l.contains(&format!("table ip {stale_shard} "))
            ));
            stale
        }
        _ => {
            let stale = format!("{}-SVC-STALESTALESTALE", net.prefix);
            let st = Command::new("iptables")
                .args(["-w", "-t", "nat", "-N", &stale])
                .status()
                .expect("iptables");
            assert!(st.success());
            stale
        }
    };
    cluster.kubectl_ok(&["delete", "service", "web-np"]);
    let answer = get(&target).expect("traffic flows while the proxy is down");
    assert!(
        names.contains(&answer) || answer.starts_with("web-"),
        "{answer}"
    );
    proxy.spawn();
    until("the restarted proxy removed the stale rules", || {
        let gone = match mode {
            "nftables" => {
                let listing = nft_listing(&net)?;
                // Programmed again (the ClusterIP), without the stale chain
                // and the deleted NodePort.
                listing.contains(&format!("{cluster_ip} . tcp . 80 : goto service-"))
                    && !listing.contains(&stale)
                    && !listing.contains(&stale_shard)
                    && !listing.contains(&format!("tcp . {node_port} :"))
            }
            _ => {
                let out = Command::new("iptables-save")
                    .args(["-t", "nat"])
                    .output()
                    .ok()?;
                let save = String::from_utf8_lossy(&out.stdout).into_owned();
                !save.contains(&stale) && !save.contains(&format!("--dport {node_port} "))
            }
        };
        gone.then_some(())
    });
    for _ in 0..30 {
        get(&target).expect("traffic flows after the restart");
    }
    // Every incremental update was applied (in nftables mode over the
    // proxy's netlink socket): a refused one resyncs everything and says so.
    let log = std::fs::read_to_string(&proxy.log).expect("proxy log");
    assert!(!log.contains("incremental proxy sync failed"), "{log}");
}

/// The message of a CRI log line (`TIME STREAM P|F MESSAGE`), or the line.
fn log_message(line: &str) -> &str {
    let mut parts = line.splitn(4, ' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some("stdout" | "stderr"), Some(_), Some(msg)) => msg.trim(),
        _ => line.trim(),
    }
}

/// Two clients: one resolving over UDP, one with `options use-vc` (glibc
/// then asks over TCP), both through the kube-dns ClusterIP.
const DNS_OBJECTS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: dns-client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: dns-client-tcp}
spec:
  terminationGracePeriodSeconds: 1
  dnsConfig:
    options: [{name: use-vc}]
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: outside}
spec:
  type: ExternalName
  externalName: web.upstream.test
"#;

/// Cluster DNS from inside pods: the kubelet's resolv.conf names the
/// kube-dns ClusterIP, the proxy DNATs it (UDP and TCP) to the server on
/// the node, and the server answers from the address asked.
fn check_dns(
    cluster: &Cluster,
    net: &Net,
    upstream: &dns::Upstream,
    cluster_ip: &str,
    names: &[String],
) {
    // Only the run's upstream knows this name: it stands for the host's
    // resolver, and answers with the web Service's address so that a wget
    // through the ExternalName answers too.
    upstream.answer("web.upstream.test", cluster_ip);
    cluster.kubectl_stdin_ok(&["apply", "-f", "-"], DNS_OBJECTS);
    let kube_dns = net.service_cidr.replace(".0.0/16", ".0.10");
    for pod in ["dns-client", "dns-client-tcp"] {
        let resolv = until("the DNS client pod runs", || {
            let out = dns::exec(cluster, pod, "cat /etc/resolv.conf");
            out.contains("nameserver").then_some(out)
        });
        let options = if pod == "dns-client" {
            "ndots:5"
        } else {
            "ndots:5 use-vc"
        };
        assert_eq!(
            resolv,
            format!(
                "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver {kube_dns}\noptions {options}\n"
            )
        );
    }
    let wget = |pod: &str, name: &str| {
        let out = dns::exec(
            cluster,
            pod,
            &format!("timeout 10 wget -q -O - http://{name}/"),
        );
        let answer = out.trim().to_string();
        names.contains(&answer).then_some(answer)
    };
    let nslookup = |name: &str| {
        let out = dns::exec(
            cluster,
            "dns-client",
            &format!("timeout 10 nslookup {name}"),
        );
        dns::nslookup_addresses(&out)
    };
    // busybox nslookup applies the search path only to names without a
    // dot, so it is asked full names; the short forms go through glibc's
    // resolver (search path, ndots:5) in wget, as applications' do.
    let got = until("the Service's name resolves in a pod", || {
        Some(nslookup("web.default.svc.cluster.local")).filter(|a| !a.is_empty())
    });
    assert_eq!(got, BTreeSet::from([cluster_ip.to_string()]));
    for name in ["web.default.svc.cluster.local", "web.default", "web"] {
        until(&format!("a wget to {name} answers"), || {
            wget("dns-client", name)
        });
        until(
            &format!("a wget to {name} answers, resolved over TCP"),
            || wget("dns-client-tcp", name),
        );
    }

    // Headless: the ready pods' own addresses.
    let pods = json(cluster, &["get", "pods", "-l", "app=web"]);
    let pod_ips: BTreeSet<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["status"]["podIP"].as_str().map(str::to_string))
        .collect();
    assert_eq!(pod_ips.len(), 3, "{pods}");
    let got = until("the headless Service resolves to three pods", || {
        Some(nslookup("web-headless.default.svc.cluster.local"))
            .filter(|a| a.len() == pod_ips.len())
    });
    assert_eq!(got, pod_ips);

    // ExternalName: a CNAME the server follows through the upstream.
    let got = until("the ExternalName resolves through the upstream", || {
        Some(nslookup("outside.default.svc.cluster.local")).filter(|a| !a.is_empty())
    });
    assert_eq!(got, BTreeSet::from([cluster_ip.to_string()]));
    until("a wget through the ExternalName answers", || {
        wget("dns-client", "outside")
    });
}
