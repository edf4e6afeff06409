//! Conformance: concurrent writers — optimistic concurrency on one key, and
//! many writers at once (which also prints the backend's create rate).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use super::bytes;
use crate::storage::{Storage, StorageError};

pub(super) async fn racing_updates_on_one_key_have_exactly_one_winner_per_round(
    storage: Arc<dyn Storage>,
) {
    let key = "/registry/deployments/ns/contended";
    let mut revision = storage.create(key, bytes("start")).await.expect("create");
    for round in 0..10 {
        let racers: Vec<_> = (0..8)
            .map(|racer| {
                let storage = storage.clone();
                let value = bytes(&format!("round {round} racer {racer}"));
                tokio::spawn(async move { storage.update(key, value, revision).await })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for racer in racers {
            match racer.await.expect("racer task") {
                Ok(new_revision) => winners.push(new_revision),
                Err(StorageError::Conflict {
                    current, expected, ..
                }) => {
                    assert_eq!(expected, revision);
                    losers.push(current.expect("the winner's value").mod_revision);
                }
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        assert_eq!(losers.len(), 7);
        assert!(
            losers.iter().all(|&seen| seen == winners[0]),
            "losers see the winner"
        );
        revision = winners[0];
        let kv = storage.get(key).await.expect("get").expect("present");
        assert_eq!(kv.mod_revision, revision);
    }
}

pub(super) async fn thirty_two_concurrent_writers_get_distinct_revisions(
    storage: Arc<dyn Storage>,
) {
    const WRITERS: usize = 32;
    const PER_WRITER: usize = 100;
    let before = storage.current_revision().await.expect("revision");
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::with_capacity(PER_WRITER);
                for i in 0..PER_WRITER {
                    let key = format!("/registry/pods/load/w{w:02}-{i:04}");
                    revisions.push(storage.create(&key, bytes("{}")).await.expect("create"));
                }
                revisions
            })
        })
        .collect();
    let mut revisions = BTreeSet::new();
    for writer in writers {
        let mine = writer.await.expect("writer task");
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "one writer's revisions increase"
        );
        revisions.extend(mine);
    }
    let elapsed = started.elapsed();
    let total = WRITERS * PER_WRITER;
    println!(
        "{total} creates by {WRITERS} concurrent writers in {elapsed:?}: {:.0} creates/s",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(revisions.len(), total, "every create got its own revision");
    let after = storage.current_revision().await.expect("revision");
    assert_eq!(after - before, total as i64);
    let listed = storage
        .list("/registry/pods/load/", None, 0, None)
        .await
        .expect("list");
    assert_eq!(listed.kvs.len(), total);
}
