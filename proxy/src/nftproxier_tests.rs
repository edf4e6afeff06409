//! The proxier's transactions: what a full sync and an update write, and
//! in which tables.

use super::*;
use crate::fixtures::{cfg, numbered};
use crate::nftrules;

fn svc(i: u8, endpoints: u8) -> (String, Vec<NftPort>) {
    let sp = numbered(i, endpoints, Some(30000 + u16::from(i)));
    (
        format!("default/s{i}"),
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
    // Per Service: the SVC, EXT and two endpoint chains.
    assert_eq!(s.chains, 3 * 4);
    assert_eq!(s.elements, 3 * 2, "a ClusterIP and a NodePort each");
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
    // The service chain (one numgen rule) and the new endpoint chain.
    assert_eq!((s.chains, s.rules, s.elements), (2, 1 + 2, 0), "{}", s.text);
    assert_eq!(s.text.lines().count(), 1 + 1 + 1 + 2, "{}", s.text);
    assert!(s.text.contains("numgen random mod 4 vmap"));
    assert!(!s.text.contains("services "), "{}", s.text);
    // One table only, the Service's shard: the kernel validates just it.
    assert_eq!(s.tables(), [shard(7).as_str()].into());
    assert!(s.prepare.is_empty());
    // The same state again writes nothing.
    let (key, ports) = svc(7, 4);
    assert!(p.update(vec![(key, Some(ports))]).is_empty());
}

#[test]
fn a_lost_endpoint_chain_is_flushed_and_deleted_after_the_rewrite() {
    let mut p = NftProxier::new(cfg());
    p.full_sync([svc(1, 3)].into(), &[]);
    let (key, ports) = svc(1, 2);
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
    assert_eq!(s.tables(), [t.as_str()].into());
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
    assert_eq!(text.matches("delete chain").count(), 4, "{text}");
    assert_eq!(s.tables(), [t.as_str(), "ferrokube-fk"].into());
}

#[test]
fn removing_a_service_removes_everything_it_owned() {
    // Two Services in one shard: the shard stays.
    let (a, b) = same_shard_pair();
    let mut p = NftProxier::new(cfg());
    p.full_sync([svc(a, 2), svc(b, 2)].into(), &[]);
    let s = p.update(vec![(format!("default/s{a}"), None)]);
    assert_eq!(s.text.matches("delete chain").count(), 4, "{}", s.text);
    assert_eq!(s.text.matches("delete element").count(), 2, "{}", s.text);
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
    assert_eq!(s.text, format!("delete table ip {t}\n"));
    assert_eq!(s.ops, [(t.clone(), Op::DeleteTable)]);
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
