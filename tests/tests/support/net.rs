//! The host side of the Services tests: the run's unique host-global
//! names, `ferrokube up` with its kubelet and `ferrokube proxy` on them,
//! plain HTTP from the host or from a network namespace outside the
//! cluster, and the cleanup of all of it.

// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{Backend, Cluster, ferrokube_binary};
use serde_json::Value;

pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Three busybox httpd replicas labelled `app: web`, port `http`: `/`
/// answers the pod's name, `/cgi-bin/who` its name and the client address
/// it saw (httpd binds IPv4 only, so that address has no `::ffff:`).
pub const WEB_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 4
      containers:
      - name: httpd
        image: busybox
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        ports: [{name: http, containerPort: 8080}]
        # sh ignores SIGTERM so a deleted pod stays terminating for its
        # grace period.
        command:
        - sh
        - -c
        - |
          trap '' TERM
          mkdir -p /www/cgi-bin && echo $POD_NAME > /www/index.html
          cat > /www/cgi-bin/who <<EOF
          #!/bin/sh
          printf 'Content-Type: text/plain\r\n\r\n'
          echo $POD_NAME \$REMOTE_ADDR
          EOF
          busybox chmod 755 /www/cgi-bin/who
          httpd -f -p 0.0.0.0:8080 -h /www
"#;

/// The run's unique host-global names.
pub struct Net {
    pub node: String,
    pub prefix: String,
    pub bridge: String,
    pub cluster_cidr: String,
    pub service_cidr: String,
    /// Where the run's stand-in for the host's resolver listens.
    pub dns_upstream: Ipv4Addr,
    /// Tells the run's network namespaces apart from other runs'.
    pub netns_tag: String,
    /// The first address of the run's /29 outside the cluster's ranges,
    /// cut into a /30 per namespace ([`Netns`]).
    pub netns_block: Ipv4Addr,
}

impl Net {
    pub fn new() -> Net {
        let r = std::process::id() ^ Instant::now().elapsed().subsec_nanos() ^ rand_seed();
        // Second octets 190–249 are the Services tests'; the kubelet tests use
        // 90–189 (kubelet/tests/support), so no two runs' routes overlap.
        let a = 190 + r % 30;
        let b = 220 + (r / 30) % 30;
        Net {
            node: format!("e2e-svc-{:x}", r % 0xffff),
            prefix: format!("E{:04X}", r % 0xffff),
            bridge: format!("fke{:x}", r % 0xfffff),
            cluster_cidr: format!("10.{a}.0.0/16"),
            service_cidr: format!("10.{b}.0.0/16"),
            dns_upstream: Ipv4Addr::new(127, 53, (r % 250) as u8, (r / 250 % 250) as u8 + 1),
            netns_tag: format!("{:x}", r % 0xfffff),
            // Second octet 250 is no other test's.
            netns_block: Ipv4Addr::new(10, 250, (r % 256) as u8, (r / 256 % 32 * 8) as u8),
        }
    }
}

fn rand_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// The proxy process, with the host cleaned after it.
pub struct Proxy {
    child: Option<Child>,
    args: Vec<String>,
    pub log: PathBuf,
}

impl Proxy {
    pub fn start(cluster: &Cluster, net: &Net, mode: &str) -> Proxy {
        let args = vec![
            "proxy".to_string(),
            "--proxy-mode".into(),
            mode.into(),
            "--kubeconfig".into(),
            cluster.kubeconfig().to_string_lossy().into_owned(),
            "--hostname-override".into(),
            net.node.clone(),
            "--proxy-chain-prefix".into(),
            net.prefix.clone(),
            "--proxy-cluster-cidr".into(),
            net.cluster_cidr.clone(),
            "--proxy-service-cidr".into(),
            net.service_cidr.clone(),
        ];
        let mut p = Proxy {
            child: None,
            args,
            log: cluster.dir().join("proxy.log"),
        };
        p.spawn();
        p
    }

    pub fn spawn(&mut self) {
        let (log, err) = e2e::appended_log(&self.log).expect("proxy log");
        self.child = Some(
            Command::new(ferrokube_binary())
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .expect("ferrokube proxy starts"),
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
        let prefix_at = self.args.iter().position(|a| a == "--proxy-chain-prefix");
        if let Some(i) = prefix_at {
            let _ = Command::new(ferrokube_binary())
                .args([
                    "proxy",
                    "--cleanup",
                    "--proxy-chain-prefix",
                    &self.args[i + 1],
                ])
                .status();
        }
    }
}

/// Deletes the run's workloads and pods (so the kubelet stops and unwires
/// them; the containers would outlive the cluster) before the cluster
/// stops, then the bridge. Deployments go first, or their ReplicaSets
/// would replace the deleted pods.
pub struct Teardown<'a> {
    pub cluster: &'a Cluster,
    pub bridge: String,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.kubectl(&[
            "delete",
            "deployments",
            "--all",
            "--cascade=foreground",
            "--timeout=60s",
        ]);
        let _ = self.cluster.kubectl(&[
            "delete",
            "pods",
            "--all",
            "--grace-period=1",
            "--timeout=60s",
        ]);
        kubelet::testing::remove_bridge(&self.bridge);
    }
}

pub fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One HTTP GET of `/` on a fresh connection; the body, trimmed.
pub fn get(addr: &str) -> Option<String> {
    get_path(addr, "/")
}

/// One HTTP GET of `path` on a fresh connection; the body, trimmed.
pub fn get_path(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let body = out.split("\r\n\r\n").nth(1)?;
    Some(body.trim().to_string())
}

/// The proxy programs the kernel a moment after the EndpointSlice changes:
/// wait until ten answers in a row satisfy `ok` (the rules were applied),
/// then every one of thirty more must.
pub fn settled_traffic(what: &str, target: &str, ok: impl Fn(&str) -> bool) {
    until(&format!("{what} (the proxy applied the change)"), || {
        (0..10)
            .all(|_| get(target).is_some_and(|a| ok(&a)))
            .then_some(())
    });
    for _ in 0..30 {
        let a = get(target).unwrap_or_else(|| panic!("{what}: {target} stopped answering"));
        assert!(ok(&a), "{what}: answered by {a}");
    }
}

/// Like [`json`], `None` while kubectl fails (the object is not there yet).
pub fn try_json(c: &Cluster, args: &[&str]) -> Option<Value> {
    c.kubectl_json(args)
}

pub fn json(c: &Cluster, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    serde_json::from_str(&c.kubectl_ok(&full)).expect("kubectl json")
}

/// `(ready, serving, terminating)` per endpoint IP of a Service.
pub fn slice_endpoints(c: &Cluster, svc: &str) -> BTreeMap<String, (bool, bool, bool)> {
    let label = format!("kubernetes.io/service-name={svc}");
    let list = json(c, &["get", "endpointslices", "-l", &label]);
    let mut out = BTreeMap::new();
    for s in list["items"].as_array().into_iter().flatten() {
        for e in s["endpoints"].as_array().into_iter().flatten() {
            let cond = &e["conditions"];
            out.insert(
                e["addresses"][0].as_str().unwrap_or_default().to_string(),
                (
                    cond["ready"] == true,
                    cond["serving"] == true,
                    cond["terminating"] == true,
                ),
            );
        }
    }
    out
}
/// `ferrokube up` with its kubelet on the run's node name, bridge and
/// ranges, without its built-in proxy (the test runs its own).
pub fn start_cluster(net: &Net, extra_args: &[&str]) -> Cluster {
    let cidr_flag = format!("--cluster-cidr={}", net.cluster_cidr);
    let svc_flag = format!("--service-cluster-ip-range={}", net.service_cidr);
    let mut args = vec![
        "--node-name",
        &net.node,
        "--cni-bridge",
        &net.bridge,
        &cidr_flag,
        &svc_flag,
        "--disable-proxy",
    ];
    args.extend_from_slice(extra_args);
    Cluster::start_with_kubelet(Backend::Embedded, &args)
}

/// The node's podCIDR (from node IPAM) and InternalIP, once it has both.
pub fn node_network(cluster: &Cluster, net: &Net) -> (String, String) {
    let pod_cidr = e2e::eventually(TIMEOUT, || {
        let n = try_json(cluster, &["get", "node", &net.node])?;
        n["spec"]["podCIDR"].as_str().map(str::to_string)
    })
    .unwrap_or_else(|| {
        let log = cluster.log();
        let tail: Vec<&str> = log.lines().rev().take(200).collect();
        panic!(
            "timed out waiting until the node has a podCIDR; the cluster's last log lines:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    });
    let node_ip = until("the node has an InternalIP", || {
        let n = try_json(cluster, &["get", "node", &net.node])?;
        n["status"]["addresses"]
            .as_array()?
            .iter()
            .find(|a| a["type"] == "InternalIP")?["address"]
            .as_str()
            .map(str::to_string)
    });
    (pod_cidr, node_ip)
}

/// The names of the `n` pods labelled `label` once they are all ready
/// endpoints of Service `svc`.
pub fn ready_pods(cluster: &Cluster, svc: &str, label: &str, n: usize) -> Vec<String> {
    until(
        &format!("{n} pods {label} are ready endpoints of {svc}"),
        || {
            let ready = slice_endpoints(cluster, svc)
                .values()
                .filter(|c| c.0)
                .count();
            let pods = json(cluster, &["get", "pods", "-l", label]);
            let names: Vec<String> = pods["items"]
                .as_array()?
                .iter()
                .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
                .collect();
            (ready == n && names.len() == n).then_some(names)
        },
    )
}

/// The ClusterIP of Service `svc`.
pub fn service_ip(cluster: &Cluster, svc: &str) -> String {
    json(cluster, &["get", "service", svc])["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_string()
}

/// The (first) node port of Service `svc`.
pub fn node_port(cluster: &Cluster, svc: &str) -> i64 {
    json(cluster, &["get", "service", svc])["spec"]["ports"][0]["nodePort"]
        .as_i64()
        .expect("nodePort")
}

/// Runs `ip args`, which must succeed.
fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(status.success(), "ip {args:?} failed");
}

/// A machine beside the node: a network namespace joined to the host by a
/// veth pair on a /30 outside the cluster's ranges, its default route
/// through the host (so it reaches the node's addresses as a machine on
/// the node's network would). It and what it runs are removed on drop.
pub struct Netns {
    name: String,
    veth: String,
    /// The host's end of the pair.
    pub host: Ipv4Addr,
    /// The namespace's.
    pub addr: Ipv4Addr,
    children: Vec<Child>,
}

impl Netns {
    /// The run's `i`-th namespace (0 or 1).
    pub fn create(net: &Net, i: u8) -> Netns {
        let [a, b, c, d] = net.netns_block.octets();
        let ns = Netns {
            name: format!("fke-{}-{i}", net.netns_tag),
            veth: format!("fko{}{i}", net.netns_tag),
            host: Ipv4Addr::new(a, b, c, d + 4 * i + 1),
            addr: Ipv4Addr::new(a, b, c, d + 4 * i + 2),
            children: Vec::new(),
        };
        let peer = format!("{}p", ns.veth);
        let host_addr = format!("{}/30", ns.host);
        let addr = format!("{}/30", ns.addr);
        let gateway = ns.host.to_string();
        let (name, veth) = (ns.name.as_str(), ns.veth.as_str());
        ip(&["netns", "add", name]);
        // From here on a failure drops `ns`, which removes what was made.
        ip(&["link", "add", veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", name]);
        ip(&["addr", "add", &host_addr, "dev", veth]);
        ip(&["link", "set", veth, "up"]);
        ip(&["-n", name, "addr", "add", &addr, "dev", &peer]);
        ip(&["-n", name, "link", "set", &peer, "up"]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ip(&["-n", name, "route", "add", "default", "via", &gateway]);
        ns
    }

    /// Gives the namespace `addr` and routes `cidr` to it from the host,
    /// as a node's pod range is routed to the node on a host-gw network;
    /// the route goes with the veth.
    pub fn own(&self, addr: Ipv4Addr, cidr: &str) {
        ip(&[
            "-n",
            &self.name,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            "lo",
        ]);
        let via = self.addr.to_string();
        ip(&["route", "add", cidr, "via", &via, "dev", &self.veth]);
    }

    /// Starts `program args` inside the namespace; killed on drop.
    pub fn spawn(&mut self, program: &str, args: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.name));
        self.children.push(child);
    }

    /// Runs `f` on a thread inside the namespace: the sockets it opens
    /// are the namespace's.
    pub fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.name)).expect("the netns");
        std::thread::spawn(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("the thread enters the netns");
            f()
        })
        .join()
        .expect("the client thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting the namespace deletes its end of the pair, and so both
        // (and the routes through them).
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .stderr(Stdio::null())
            .status();
    }
}
