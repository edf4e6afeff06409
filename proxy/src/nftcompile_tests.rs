use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use super::*;
use crate::fixtures::{cfg, numbered};
use crate::model::ServicePort;
use crate::netlink::Socket;
use crate::nft::Nft;
use crate::nftproxier::{NftProxier, Script};
use crate::nftrules::{self, NftPort};
use crate::rules::RulesConfig;

/// Services covering every rule form the renderer writes: spreading and a
/// single endpoint, ClientIP affinity, NodePorts, load-balancer IPs,
/// externalTrafficPolicy Local with and without local endpoints,
/// internalTrafficPolicy Local, no endpoints at all.
fn before() -> BTreeMap<u8, ServicePort> {
    let mut m = BTreeMap::new();
    m.insert(1, numbered(1, 3, Some(30001)));
    m.insert(
        2,
        ServicePort {
            affinity_seconds: Some(10800),
            load_balancer_ips: vec![Ipv4Addr::new(192, 168, 9, 2)],
            ..numbered(2, 2, Some(30002))
        },
    );
    let mut s3 = numbered(3, 2, Some(30003));
    s3.external_local = true;
    s3.endpoints[1].local = false;
    m.insert(3, s3);
    m.insert(4, numbered(4, 0, Some(30004)));
    m.insert(5, numbered(5, 2, None));
    m.insert(
        6,
        ServicePort {
            internal_local: true,
            ..numbered(6, 1, None)
        },
    );
    m
}

/// The same Services after a round of changes: endpoints added, moved and
/// lost, an affinity timeout changed, a Service gone, one new, one left
/// with remote endpoints only.
fn after() -> BTreeMap<u8, ServicePort> {
    let mut m = before();
    let mut s1 = numbered(1, 4, Some(30001));
    s1.endpoints[0].ip = Ipv4Addr::new(10, 42, 99, 1);
    m.insert(1, s1);
    let mut s2 = m[&2].clone();
    s2.affinity_seconds = Some(600);
    s2.endpoints[1].ip = Ipv4Addr::new(10, 42, 99, 2);
    m.insert(2, s2);
    let mut s3 = m[&3].clone();
    s3.endpoints[0].local = false;
    m.insert(3, s3);
    m.insert(4, numbered(4, 1, Some(30004)));
    m.remove(&5);
    // Its one endpoint moves to another node: dropped, not rejected.
    let mut s6 = m[&6].clone();
    s6.endpoints[0].local = false;
    m.insert(6, s6);
    m.insert(
        7,
        ServicePort {
            affinity_seconds: Some(30),
            ..numbered(7, 1, Some(30007))
        },
    );
    m
}

fn rendered(
    cfg: &RulesConfig,
    ports: &BTreeMap<u8, ServicePort>,
) -> BTreeMap<String, Vec<NftPort>> {
    ports
        .iter()
        .map(|(i, p)| (format!("default/s{i}"), vec![nftrules::port_rules(cfg, p)]))
        .collect()
}

/// The update from `before()` to `after()`.
fn update(cfg: &RulesConfig) -> (NftProxier, crate::nftproxier::Script) {
    let mut p = NftProxier::new(cfg.clone());
    p.full_sync(rendered(cfg, &before()), &[]);
    let new = rendered(cfg, &after());
    let changed = (1..=7)
        .map(|i| {
            let key = format!("default/s{i}");
            let ports = new.get(&key).cloned();
            (key, ports)
        })
        .collect();
    let s = p.update(changed);
    (p, s)
}

/// Every op in the one table `t`.
fn compile_in(t: &str, ops: &[Op]) -> Result<crate::netlink::Batch, CompileError> {
    compile(ops.iter().map(|o| (t, o)))
}

fn compile_script(s: &Script) -> Result<crate::netlink::Batch, CompileError> {
    compile(s.ops.iter().map(|(t, o)| (t.as_str(), o)))
}

fn wide_cidr() -> RulesConfig {
    RulesConfig {
        cluster_cidr: "10.32.0.0/12".into(),
        ..cfg()
    }
}

#[test]
fn every_rule_form_the_renderer_writes_compiles() {
    for cfg in [cfg(), wide_cidr()] {
        let (_, s) = update(&cfg);
        let batch = compile_script(&s).expect("compiles");
        assert!(batch.len() >= s.ops.len(), "{}", s.text);
        // And the from-scratch state too, rule by rule.
        for port in rendered(&cfg, &after()).values().flatten() {
            for (chain, rules) in &port.chains {
                let ops: Vec<Op> = rules
                    .iter()
                    .map(|r| Op::AddRule {
                        chain: chain.clone(),
                        rule: r.clone(),
                    })
                    .collect();
                compile_in("t", &ops).expect("compiles");
            }
        }
    }
}

#[test]
fn a_rule_form_it_does_not_know_is_refused() {
    for rule in [
        "counter",
        "ip daddr 10.0.0.1 accept",
        "ip saddr 10.0.0.1",
        "goto a b",
        "numgen random mod 2 vmap { 0 : goto a }",
        "numgen random mod 1 map { 0 : goto a }",
        "meta l4proto tcp dnat to numgen random mod 2 map { 0 : 10.0.0.1 . 80 }",
        "dnat to numgen random mod 1 map { 0 : 10.0.0.1 }",
        "dnat to numgen random mod 1 vmap { 0 : 10.0.0.1 . 80 }",
        "meta l4proto icmp drop",
        "ip saddr 10.0.0.0/0 drop",
    ] {
        let ops = [Op::AddRule {
            chain: "c".into(),
            rule: rule.into(),
        }];
        assert!(compile_in("t", &ops).is_err(), "{rule}");
    }
}

#[test]
fn map_keys_put_each_part_in_its_own_register() {
    assert_eq!(
        element_key("10.43.0.1 . tcp . 80"),
        Some(vec![10, 43, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0])
    );
    assert_eq!(
        element_key("udp . 30001"),
        Some(vec![17, 0, 0, 0, 0x75, 0x31, 0, 0])
    );
    assert_eq!(element_key("tcp . http"), None);
}

#[test]
fn a_numgen_vmap_creates_its_anonymous_map_before_the_rule() {
    let ops = [Op::AddRule {
        chain: "c".into(),
        rule: "numgen random mod 2 vmap { 0 : goto a, 1 : goto b }".into(),
    }];
    let batch = compile_in("t", &ops).expect("compiles");
    // The map, its elements, the rule.
    assert_eq!(batch.len(), 3);
    let ops = [Op::AddRule {
        chain: "c".into(),
        rule: "meta l4proto tcp dnat to numgen random mod 2 map { 0 : 10.0.0.1 . 80, 1 : 10.0.0.2 . 80 }".into(),
    }];
    assert_eq!(compile_in("t", &ops).expect("compiles").len(), 3);
}

/// A network namespace of this test's own, deleted at the end.
struct TestNetns(String);

impl TestNetns {
    fn new(what: &str) -> TestNetns {
        let name = format!("fk-nftc-{what}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip")
            .success();
        assert!(ok, "ip netns add {name} (root is needed)");
        TestNetns(name)
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }

    fn nft(&self) -> Nft {
        Nft {
            wrapper: vec!["nsenter".into(), format!("--net={}", self.path())],
            ..Nft::default()
        }
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// `nft -j list table` reduced to what the kernel holds: handles dropped,
/// chains by name with their rules in order, set elements sorted.
fn normalized(json: &str) -> BTreeMap<String, String> {
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    let mut out = BTreeMap::new();
    let mut rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for obj in v["nftables"].as_array().expect("array") {
        let Some((kind, body)) = obj.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let mut body = body.clone();
        if let Some(b) = body.as_object_mut() {
            b.remove("handle");
        }
        match kind.as_str() {
            "rule" => rules
                .entry(body["chain"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push(body["expr"].to_string()),
            "set" | "map" => {
                if let Some(elems) = body.get_mut("elem").and_then(|e| e.as_array_mut()) {
                    elems.sort_by_key(|e| e.to_string());
                }
                out.insert(
                    format!("{kind} {}", body["name"].as_str().unwrap_or_default()),
                    body.to_string(),
                );
            }
            "chain" => {
                out.insert(
                    format!("chain {}", body["name"].as_str().unwrap_or_default()),
                    body.to_string(),
                );
            }
            _ => {}
        }
    }
    for (chain, r) in rules {
        out.insert(format!("rules {chain}"), r.join("\n"));
    }
    out
}

/// Every table in the namespace, normalized, keys prefixed with the table.
async fn listed(nft: &Nft) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for table in nft.list_tables().await.expect("tables") {
        let json = nft.list_table_json(&table).await.expect("list");
        for (k, v) in normalized(&json) {
            out.insert(format!("{table} {k}"), v);
        }
    }
    out
}

#[tokio::test]
async fn an_update_over_netlink_leaves_the_tables_nft_would_have_written() {
    for (what, cfg) in [("16", cfg()), ("12", wide_cidr())] {
        let updated = TestNetns::new(&format!("u{what}"));
        let scratch = TestNetns::new(&format!("s{what}"));
        let full = NftProxier::new(cfg.clone()).full_sync(rendered(&cfg, &before()), &[]);
        updated.nft().apply(&full.text).await.expect("full sync");
        let (_, s) = update(&cfg);
        // New shards are created by nft first, as the dataplane does.
        updated
            .nft()
            .apply(&s.prepare)
            .await
            .expect("shards created");
        let batch = compile_script(&s).expect("compiles");
        let socket = Socket::open(Some(std::path::Path::new(&updated.path()))).expect("socket");
        socket.apply(&batch).expect("applied");

        let mut fresh = NftProxier::new(cfg.clone());
        let full = fresh.full_sync(rendered(&cfg, &after()), &[]);
        scratch.nft().apply(&full.text).await.expect("full sync");

        let got = listed(&updated.nft()).await;
        let want = listed(&scratch.nft()).await;
        assert!(got.keys().any(|k| k.contains(".shard")), "{got:?}");
        assert!(got.keys().any(|k| k.contains(" set affinity-")), "{got:?}");
        assert_eq!(got, want, "cluster CIDR /{what}");
    }
}

#[test]
fn a_refused_transaction_names_the_command_and_changes_nothing() {
    let ns = TestNetns::new("refused");
    let socket = Socket::open(Some(std::path::Path::new(&ns.path()))).expect("socket");
    // No such table: the first command fails.
    let ops = [
        Op::AddChain("a".into()),
        Op::AddRule {
            chain: "a".into(),
            rule: "drop".into(),
        },
    ];
    let batch = compile_in("ferrokube-nothere", &ops).expect("compiles");
    let err = socket.apply(&batch).expect_err("refused").to_string();
    assert!(err.contains("AddChain(\"a\")"), "{err}");
    // The socket is still usable afterwards.
    let err = socket.apply(&batch).expect_err("refused").to_string();
    assert!(err.contains("AddChain"), "{err}");
}

#[tokio::test]
async fn a_full_sync_replaces_the_single_table_layout_and_stale_shards() {
    let ns = TestNetns::new("layout");
    let nft = ns.nft();
    let cfg = cfg();
    // What an earlier version left: Services in the one table, and a shard
    // of a build with more shards.
    let old = "add table ip ferrokube-fk\n\
        add map ip ferrokube-fk service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n\
        add chain ip ferrokube-fk service-OLDOLDOL-default/old/tcp/\n\
        add element ip ferrokube-fk service-ips { 10.43.0.99 . tcp . 80 : goto service-OLDOLDOL-default/old/tcp/ }\n\
        add table ip ferrokube-fk.shard40\n\
        add table ip ferrokube-other\n";
    nft.apply(old).await.expect("old layout");
    let existing = nft.list_tables().await.expect("tables");
    let mut p = NftProxier::new(cfg.clone());
    let s = p.full_sync(rendered(&cfg, &before()), &existing);
    nft.apply(&s.text).await.expect("full sync");

    let mut want: Vec<String> = p.populated().iter().map(|t| t.to_string()).collect();
    want.push("ferrokube-fk".into());
    want.push("ferrokube-other".into());
    want.sort();
    let mut got = nft.list_tables().await.expect("tables");
    got.sort();
    assert_eq!(got, want);
    let common = nft.list_table("ferrokube-fk").await.expect("common");
    assert!(!common.contains("OLDOLDOL"), "{common}");
    assert!(!common.contains("service-ips"), "{common}");
}

#[tokio::test]
async fn a_shard_goes_over_netlink_with_its_last_service_and_comes_back_with_its_first() {
    let ns = TestNetns::new("shard");
    let nft = ns.nft();
    let cfg = cfg();
    let one = |i: u8| {
        let mut m = BTreeMap::new();
        m.insert(i, numbered(i, 2, Some(30000 + u16::from(i))));
        rendered(&cfg, &m)
    };
    let mut p = NftProxier::new(cfg.clone());
    nft.apply(&p.full_sync(one(1), &[]).text)
        .await
        .expect("full sync");
    let shard = p.populated()[0].to_string();
    let socket = Socket::open(Some(std::path::Path::new(&ns.path()))).expect("socket");

    let s = p.update(vec![("default/s1".into(), None)]);
    socket
        .apply(&compile_script(&s).expect("compiles"))
        .expect("applied");
    assert_eq!(nft.list_tables().await.expect("tables"), ["ferrokube-fk"]);

    let (key, ports) = one(1).into_iter().next().expect("one");
    let s = p.update(vec![(key, Some(ports))]);
    nft.apply(&s.prepare).await.expect("shard created");
    socket
        .apply(&compile_script(&s).expect("compiles"))
        .expect("applied");
    let listing = nft.list_table(&shard).await.expect("shard");
    assert!(
        listing.contains("10.43.0.1 . tcp . 80 : goto service-"),
        "{listing}"
    );
}
