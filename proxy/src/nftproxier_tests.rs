//! The proxier's transactions: what a full sync and an update write, and
//! in which tables.

use super::*;
use crate::fixtures::{cfg, ep, numbered, port};
use crate::model::ServicePort;
use crate::nftrules;

fn svc(i: u8, endpoints: u8) -> (String, Vec<NftPort>) {
    with_affinity(i, endpoints, None)
}

/// Like [`svc`], with ClientIP affinity for `seconds`.
fn with_affinity(i: u8, endpoints: u8, seconds: Option<i32>) -> (String, Vec<NftPort>) {
    let sp = ServicePort {
        affinity_seconds: seconds,
        ..numbered(i, endpoints, Some(30000 + u16::from(i)))
    };
    (
        format!("default/s{i}"),
        vec![nftrules::port_rules(&cfg(), &sp)],
    )
}

/// `default/<name>` over the endpoints 10.42.0.`last`…
fn over(name: &str, last: &[u8]) -> (String, Vec<NftPort>) {
    let sp = ServicePort {
        key: format!("default/{name}:"),
        ..port(last.iter().map(|&l| ep(l, true, true)).collect())
    };
    (
        format!("default/{name}"),
        vec![nftrules::port_rules(&cfg(), &sp)],
    )
}

/// The table of Service `default/s<i>`.
fn shard(i: u8) -> String {
    Tables::new(&cfg())
        .name(Table::Shard(shard_of(&format!("default/s{i}"))))
        .to_string()
}

#[test]
fn a_full_sync_recreates_every_table_in_one_script() {
    let mut p = NftProxier::new(cfg());
    let s = p.full_sync((1..=3).map(|i| svc(i, 2)).collect(), &[]);
    assert!(
        s.text.contains(
            "add table ip ferrokube-fk\ndelete table ip ferrokube-fk\nadd table ip ferrokube-fk\n"
        ),
        "{}",
        s.text
    );
    let t = shard(1);
    assert!(s.text.contains(&format!(
        "add table ip {t}\ndelete table ip {t}\nadd table ip {t}\n"
    )));
    // Per Service: the SVC and EXT chains; endpoints have none.
    assert_eq!(s.chains, 3 * 2);
    assert_eq!(
        s.elements,
        3 * 2 + 3 * 2,
        "a ClusterIP and a NodePort each, and their endpoints' hairpin pairs"
    );
    assert!(s.text.contains(
        "add element ip ferrokube-fk hairpin-endpoints { 10.42.1.2 . 10.42.1.2, 10.42.1.3 . 10.42.1.3, 10.42.2.2 . 10.42.2.2, "
    ));
    assert!(s.text.contains(&format!(
        "add element ip {t} service-ips {{ 10.43.0.1 . tcp . 80 : goto service-"
    )));
    // The 10 common chains, and 5 in each populated shard.
    let shards = p.populated().len();
    assert!((1..=3).contains(&shards));
    assert_eq!(s.fixed_chains, 10 + 5 * shards);
    // The shards without a Service are removed, not created.
    let empty: Vec<&String> = p
        .tables()
        .shards()
        .iter()
        .filter(|n| !p.populated().contains(&n.as_str()))
        .collect();
    assert_eq!(empty.len(), SHARDS - shards);
    for name in empty {
        assert!(s.text.contains(&format!("delete table ip {name}\n")));
        assert!(!s.text.contains(&format!("add chain ip {name} ")));
    }
}

#[test]
fn a_full_sync_removes_shard_tables_of_another_layout_but_not_others_tables() {
    let mut p = NftProxier::new(cfg());
    let existing = [
        "ferrokube-fk.shard40".to_string(),
        "ferrokube-other.shard01".into(),
        "filter".into(),
    ];
    let s = p.full_sync([svc(1, 1)].into(), &existing);
    assert!(s.text.contains("delete table ip ferrokube-fk.shard40\n"));
    assert!(!s.text.contains("ferrokube-other"));
    assert!(!s.text.contains("ip filter"));
}

#[test]
fn an_endpoint_change_rewrites_only_that_services_chains_in_its_shard() {
    let mut p = NftProxier::new(cfg());
    p.full_sync((1..=50).map(|i| svc(i, 3)).collect(), &[]);
    let (key, ports) = svc(7, 4);
    let s = p.update(vec![(key, Some(ports))]);
    // The service chain (one numgen rule) and the new endpoint's hairpin
    // pair: no chain is created.
    assert_eq!((s.chains, s.rules, s.elements), (1, 1, 1), "{}", s.text);
    let t = shard(7);
    let service = format!("service-{}", &crate::rules::hash16("default/s7:/tcp")[..8]);
    assert_eq!(
        s.text,
        format!(
            "add element ip ferrokube-fk hairpin-endpoints {{ 10.42.7.5 . 10.42.7.5 }}\n\
             flush chain ip {t} {service}-default/s7/tcp/\n\
             add rule ip {t} {service}-default/s7/tcp/ meta l4proto tcp dnat to numgen random mod 4 map {{ 0 : 10.42.7.2 . 8080, 1 : 10.42.7.3 . 8080, 2 : 10.42.7.4 . 8080, 3 : 10.42.7.5 . 8080 }}\n"
        )
    );
    // The Service's shard and the common table's set (an element without
    // a verdict, which the kernel does not validate).
    assert_eq!(s.tables(), [t.as_str(), "ferrokube-fk"].into());
    assert!(s.prepare.is_empty());
    // The same state again writes nothing.
    let (key, ports) = svc(7, 4);
    assert!(p.update(vec![(key, Some(ports))]).is_empty());
}

#[test]
fn a_lost_endpoint_leaves_the_map_and_its_hairpin_pair() {
    let mut p = NftProxier::new(cfg());
    p.full_sync([svc(1, 3)].into(), &[]);
    let (key, ports) = svc(1, 2);
    let s = p.update(vec![(key, Some(ports))]);
    assert!(
        s.text.contains("dnat to numgen random mod 2 map"),
        "{}",
        s.text
    );
    assert!(
        s.text
            .contains("delete element ip ferrokube-fk hairpin-endpoints { 10.42.1.4 . 10.42.1.4 }")
    );
    assert!(!s.text.contains("chain ip ferrokube-fk "), "{}", s.text);
    assert!(!s.text.contains("delete chain"), "{}", s.text);
}

#[test]
fn a_lost_affinity_endpoint_chain_is_flushed_and_deleted_after_the_rewrite() {
    let mut p = NftProxier::new(cfg());
    p.full_sync([with_affinity(1, 3, Some(60))].into(), &[]);
    let (key, ports) = with_affinity(1, 2, Some(60));
    let s = p.update(vec![(key, Some(ports))]);
    let t = shard(1);
    let rewrite = s
        .text
        .find(&format!("flush chain ip {t} service-"))
        .expect("rewrite");
    let delete = s
        .text
        .find(&format!("delete chain ip {t} endpoint-"))
        .expect("delete");
    assert!(rewrite < delete, "{}", s.text);
    assert_eq!(s.text.matches("delete chain").count(), 1);
    assert_eq!(s.text.matches("delete set").count(), 1, "{}", s.text);
    assert_eq!(s.tables(), [t.as_str(), "ferrokube-fk"].into());
}

#[test]
fn a_hairpin_pair_stays_while_any_service_uses_the_endpoint() {
    let mut p = NftProxier::new(cfg());
    let s = p.full_sync([over("a", &[2, 3]), over("b", &[3])].into(), &[]);
    assert_eq!(
        s.text.matches("10.42.0.3 . 10.42.0.3").count(),
        1,
        "{}",
        s.text
    );
    // `a` loses 10.42.0.3, which `b` still uses.
    let s = p.update(
        vec![over("a", &[2])]
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect(),
    );
    assert!(!s.text.contains("hairpin"), "{}", s.text);
    // `b` goes: the last user of 10.42.0.3.
    let s = p.update(vec![("default/b".into(), None)]);
    assert!(
        s.text
            .contains("delete element ip ferrokube-fk hairpin-endpoints { 10.42.0.3 . 10.42.0.3 }"),
        "{}",
        s.text
    );
    // Both move to 10.42.0.9 at once: one element added, one deleted.
    let s = p.update(vec![
        (over("a", &[9]).0, Some(over("a", &[9]).1)),
        (over("b", &[9]).0, Some(over("b", &[9]).1)),
    ]);
    assert_eq!(
        s.text
            .matches("add element ip ferrokube-fk hairpin-endpoints { 10.42.0.9 . 10.42.0.9 }")
            .count(),
        1,
        "{}",
        s.text
    );
    assert_eq!(
        s.text
            .matches("delete element ip ferrokube-fk hairpin-endpoints { 10.42.0.2 . 10.42.0.2 }")
            .count(),
        1,
        "{}",
        s.text
    );
}

#[test]
fn losing_every_endpoint_moves_the_elements_to_the_common_reject_maps() {
    let mut p = NftProxier::new(cfg());
    p.full_sync([svc(1, 2), svc(2, 1)].into(), &[]);
    let (key, ports) = svc(1, 0);
    let s = p.update(vec![(key, Some(ports))]);
    let text = &s.text;
    let t = shard(1);
    assert!(text.contains(&format!(
        "delete element ip {t} service-ips {{ 10.43.0.1 . tcp . 80 }}"
    )));
    assert!(text.contains(&format!(
        "delete element ip {t} service-nodeports {{ tcp . 30001 }}"
    )));
    assert!(text.contains(
        "add element ip ferrokube-fk no-endpoint-services { 10.43.0.1 . tcp . 80 : goto reject-chain }"
    ));
    assert!(text.contains(
        "add element ip ferrokube-fk no-endpoint-nodeports { tcp . 30001 : goto reject-chain }"
    ));
    // The elements leave before the chains they name are deleted.
    let del_el = text.find("delete element").expect("element");
    let del_chain = text.find("delete chain").expect("chain");
    assert!(del_el < del_chain, "{text}");
    assert_eq!(text.matches("delete chain").count(), 2, "{text}");
    assert_eq!(
        text.matches("delete element ip ferrokube-fk hairpin")
            .count(),
        2,
        "{text}"
    );
    assert_eq!(s.tables(), [t.as_str(), "ferrokube-fk"].into());
}

#[test]
fn removing_a_service_removes_everything_it_owned() {
    // Two Services in one shard: the shard stays.
    let (a, b) = same_shard_pair();
    let mut p = NftProxier::new(cfg());
    p.full_sync([svc(a, 2), svc(b, 2)].into(), &[]);
    let s = p.update(vec![(format!("default/s{a}"), None)]);
    assert_eq!(s.text.matches("delete chain").count(), 2, "{}", s.text);
    assert_eq!(
        s.text.matches("delete element").count(),
        2 + 2,
        "{}",
        s.text
    );
    assert!(!s.text.contains("add "), "{}", s.text);
    assert!(!s.text.contains("delete table"), "{}", s.text);
    assert_eq!(p.service_count(), 1);
    assert!(p.update(vec![(format!("default/s{a}"), None)]).is_empty());
}

#[test]
fn a_shards_last_service_takes_the_table_and_its_first_creates_it_beforehand() {
    let mut p = NftProxier::new(cfg());
    p.full_sync([svc(1, 2)].into(), &[]);
    let t = shard(1);
    let s = p.update(vec![("default/s1".into(), None)]);
    assert_eq!(
        s.text,
        format!(
            "delete element ip ferrokube-fk hairpin-endpoints {{ 10.42.1.2 . 10.42.1.2 }}\n\
             delete element ip ferrokube-fk hairpin-endpoints {{ 10.42.1.3 . 10.42.1.3 }}\n\
             delete table ip {t}\n"
        )
    );
    assert_eq!(s.ops.last(), Some(&(t.clone(), Op::DeleteTable)));
    assert!(p.populated().is_empty());

    let (key, ports) = svc(1, 2);
    let s = p.update(vec![(key, Some(ports))]);
    // Created empty first (its own transaction), then filled.
    assert!(
        s.prepare.starts_with(&format!(
            "add table ip {t}\ndelete table ip {t}\nadd table ip {t}\n"
        )),
        "{}",
        s.prepare
    );
    assert!(s.prepare.contains(&format!("add map ip {t} service-ips")));
    assert!(!s.text.contains("add table"), "{}", s.text);
    assert!(s.text.contains(&format!("add element ip {t} service-ips")));
    assert_eq!(p.populated(), [t.as_str()]);
}

/// Two numbered Services in the same shard.
fn same_shard_pair() -> (u8, u8) {
    for a in 1..=50u8 {
        for b in a + 1..=50 {
            if shard(a) == shard(b) {
                return (a, b);
            }
        }
    }
    unreachable!("50 Services over {SHARDS} shards share one")
}
