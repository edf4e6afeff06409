//! The pod's `/etc/resolv.conf`, as Kubernetes' `pkg/kubelet/network/dns`
//! writes it: ClusterFirst pods ask the cluster DNS with the search path
//! `<ns>.svc.<domain> svc.<domain> <domain>` (then the host's) and
//! `ndots:5`; Default pods get the host's resolvers; None pods only their
//! `dnsConfig`, which is merged into the other policies too.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

/// `--cluster-dns` / `--cluster-domain`.
#[derive(Clone, Debug, Default)]
pub struct ClusterDns {
    pub servers: Vec<IpAddr>,
    pub domain: String,
}

/// A parsed resolv.conf.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// glibc's limits, which Kubernetes enforces when it writes the file.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => conf.nameservers.extend(words.next().map(str::to_string)),
                // The last `search` line wins, as in glibc.
                Some("search") | Some("domain") => {
                    conf.searches = words.map(str::to_string).collect()
                }
                Some("options") => conf.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        conf
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for item in items {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// Options merge by name (`ndots:2` replaces `ndots:5`).
fn merge_options(base: &mut Vec<String>, extra: impl IntoIterator<Item = String>) {
    for opt in extra {
        let name = opt.split(':').next().unwrap_or("").to_string();
        match base
            .iter_mut()
            .find(|o| o.split(':').next() == Some(name.as_str()))
        {
            Some(existing) => *existing = opt,
            None => base.push(opt),
        }
    }
}

/// The pod's resolv.conf; `host` is the node's (`--resolv-conf`).
pub fn pod_resolv_conf(pod: &Pod, cluster: &ClusterDns, host: &ResolvConf) -> ResolvConf {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let use_cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut conf = match policy {
        "None" => ResolvConf::default(),
        // Without a cluster DNS, ClusterFirst falls back to the host's
        // (Kubernetes records a MissingClusterDNS event).
        _ if use_cluster && !cluster.servers.is_empty() => {
            let domain = cluster.domain.trim_end_matches('.');
            let mut searches = vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ];
            push_unique(&mut searches, host.searches.iter().cloned());
            ResolvConf {
                nameservers: cluster.servers.iter().map(|s| s.to_string()).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => host.clone(),
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        push_unique(
            &mut conf.nameservers,
            extra.nameservers.iter().flatten().cloned(),
        );
        push_unique(&mut conf.searches, extra.searches.iter().flatten().cloned());
        merge_options(
            &mut conf.options,
            extra.options.iter().flatten().filter_map(|o| {
                let name = o.name.clone()?;
                Some(match &o.value {
                    Some(v) => format!("{name}:{v}"),
                    None => name,
                })
            }),
        );
    }
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    conf
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "shop"}, "spec": spec}),
        )
        .expect("pod")
    }

    #[test]
    fn each_dns_policy_writes_what_kubernetes_writes() {
        let cluster = ClusterDns {
            servers: vec!["10.43.0.10".parse().expect("ip")],
            domain: "cluster.local".into(),
        };
        let host = ResolvConf::parse(
            "# host\nnameserver 192.168.1.1\nnameserver 192.168.1.2 ; comment\nsearch corp.example\noptions edns0\n",
        );
        let cases = [
            (
                json!({"containers": []}),
                "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.43.0.10\noptions ndots:5\n",
            ),
            (
                json!({"containers": [], "hostNetwork": true}),
                "search corp.example\nnameserver 192.168.1.1\nnameserver 192.168.1.2\noptions edns0\n",
            ),
            (
                json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
                "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.43.0.10\noptions ndots:5\n",
            ),
            (
                json!({"containers": [], "dnsPolicy": "Default"}),
                "search corp.example\nnameserver 192.168.1.1\nnameserver 192.168.1.2\noptions edns0\n",
            ),
            (
                json!({"containers": [], "dnsPolicy": "None",
                       "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                                     "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}}),
                "search a.example\nnameserver 1.1.1.1\noptions ndots:2 rotate\n",
            ),
            (
                json!({"containers": [],
                       "dnsConfig": {"nameservers": ["10.43.0.10", "9.9.9.9"],
                                     "options": [{"name": "ndots", "value": "1"}]}}),
                "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.43.0.10\nnameserver 9.9.9.9\noptions ndots:1\n",
            ),
        ];
        for (spec, want) in cases {
            let got = pod_resolv_conf(&pod(spec.clone()), &cluster, &host).render();
            assert_eq!(got, want, "{spec}");
        }
    }

    #[test]
    fn without_a_cluster_dns_cluster_first_uses_the_host() {
        let host = ResolvConf::parse("nameserver 192.168.1.1\n");
        let got = pod_resolv_conf(
            &pod(json!({"containers": []})),
            &ClusterDns::default(),
            &host,
        );
        assert_eq!(got.render(), "nameserver 192.168.1.1\n");
    }
}
