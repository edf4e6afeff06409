//! Conformance against a model: a seeded random mix of creates, updates and
//! deletes (right and stale revisions), with compactions along the way, is
//! applied both to the backend and to an in-memory model of the trait's
//! semantics. Every answer, every list at every retained revision (paged),
//! and every watch replay must match the model exactly.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::next_change;
use crate::storage::{KeyValue, Storage, StorageError, WatchEvent};

const PREFIX: &str = "/registry/m/";
/// A sibling prefix, written too, that must never leak into `PREFIX`.
const SIBLING: &str = "/registry/mx/";

#[derive(Default)]
struct Model {
    /// The state after each revision (and the starting state at `base`).
    states: BTreeMap<i64, BTreeMap<String, KeyValue>>,
    events: Vec<WatchEvent>,
    compacted: i64,
}

impl Model {
    fn now(&self) -> (i64, &BTreeMap<String, KeyValue>) {
        let (revision, state) = self.states.last_key_value().expect("a starting state");
        (*revision, state)
    }

    fn at(&self, revision: i64) -> &BTreeMap<String, KeyValue> {
        self.states
            .range(..=revision)
            .next_back()
            .expect("a state at or before")
            .1
    }

    fn record(&mut self, revision: i64, state: BTreeMap<String, KeyValue>, event: WatchEvent) {
        let (last, _) = self.now();
        assert!(revision > last, "revision {revision} after {last}");
        self.states.insert(revision, state);
        self.events.push(event);
    }
}

pub(super) async fn random_histories_match_the_model(storage: Arc<dyn Storage>) {
    let mut rng = StdRng::seed_from_u64(0x5eed_f00d);
    let mut model = Model::default();
    let base = storage.current_revision().await.expect("revision");
    model.states.insert(base, BTreeMap::new());
    model.compacted = base;
    let keys: Vec<String> = (0..6)
        .map(|i| format!("{PREFIX}k{i}"))
        .chain((0..2).map(|i| format!("{SIBLING}k{i}")))
        .collect();

    for step in 0..240 {
        let key = &keys[rng.random_range(0..keys.len())];
        let value = Bytes::from(format!("v{step}"));
        let (now, state) = model.now();
        let current = state.get(key).cloned();
        let mut next = state.clone();
        match rng.random_range(0..3) {
            0 => match (storage.create(key, value.clone()).await, current) {
                (Ok(revision), None) => {
                    let kv = kv(key, &value, revision, revision);
                    next.insert(key.clone(), kv.clone());
                    model.record(revision, next, WatchEvent::Put { kv, prev: None });
                }
                (Err(StorageError::AlreadyExists { .. }), Some(_)) => {}
                (answer, current) => panic!("step {step}: create over {current:?}: {answer:?}"),
            },
            1 => {
                let stale = rng.random_bool(0.3);
                let expected = match &current {
                    Some(kv) if !stale => kv.mod_revision,
                    Some(kv) => kv.mod_revision - 1,
                    None => now,
                };
                match (storage.update(key, value.clone(), expected).await, current) {
                    (Ok(revision), Some(prev)) if !stale => {
                        let kv = kv(key, &value, prev.create_revision, revision);
                        next.insert(key.clone(), kv.clone());
                        let event = WatchEvent::Put {
                            kv,
                            prev: Some(prev),
                        };
                        model.record(revision, next, event);
                    }
                    (Err(StorageError::Conflict { current: seen, .. }), Some(prev)) if stale => {
                        assert_eq!(seen, Some(prev), "step {step}");
                    }
                    (Err(StorageError::NotFound { .. }), None) => {}
                    (answer, current) => {
                        panic!("step {step}: update (stale: {stale}) of {current:?}: {answer:?}")
                    }
                }
            }
            _ => {
                let expected = match (&current, rng.random_range(0..3)) {
                    (_, 0) => None,
                    (Some(kv), 1) => Some(kv.mod_revision - 1),
                    (Some(kv), _) => Some(kv.mod_revision),
                    (None, _) => Some(now),
                };
                let stale =
                    matches!((&current, expected), (Some(kv), Some(e)) if e != kv.mod_revision);
                match (storage.delete(key, expected).await, current) {
                    (Ok((deleted, revision)), Some(prev)) if !stale => {
                        assert_eq!(deleted, prev, "step {step}");
                        next.remove(key);
                        model.record(revision, next, WatchEvent::Delete { prev, revision });
                    }
                    (Err(StorageError::Conflict { current: seen, .. }), Some(prev)) if stale => {
                        assert_eq!(seen, Some(prev), "step {step}");
                    }
                    (Err(StorageError::NotFound { .. }), None) => {}
                    (answer, current) => panic!("step {step}: delete of {current:?}: {answer:?}"),
                }
            }
        }
        if step % 60 == 59 {
            check(storage.as_ref(), &model, &mut rng).await;
            let (now, _) = model.now();
            let to = rng.random_range(model.compacted..=now);
            storage.compact(to).await.expect("compact");
            model.compacted = model.compacted.max(to);
            check(storage.as_ref(), &model, &mut rng).await;
        }
    }
}

fn kv(key: &str, value: &Bytes, create_revision: i64, mod_revision: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: value.clone(),
        create_revision,
        mod_revision,
    }
}

/// Compares lists at every retained revision and watches from a few.
async fn check(storage: &dyn Storage, model: &Model, rng: &mut StdRng) {
    let (now, state) = model.now();
    assert_eq!(storage.current_revision().await.expect("revision"), now);
    for key in state.keys() {
        assert_eq!(
            storage.get(key).await.expect("get").as_ref(),
            state.get(key)
        );
    }
    for revision in model.compacted..=now {
        let expected: Vec<KeyValue> = model
            .at(revision)
            .range(PREFIX.to_owned()..)
            .take_while(|(key, _)| key.starts_with(PREFIX))
            .map(|(_, kv)| kv.clone())
            .collect();
        let limit = rng.random_range(0..4);
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = storage
                .list(PREFIX, after.as_deref(), limit, Some(revision))
                .await
                .unwrap_or_else(|e| panic!("list at {revision}: {e:?}"));
            assert_eq!(page.revision, revision);
            let full = limit != 0 && page.kvs.len() == limit;
            after = page.kvs.last().map(|kv| kv.key.clone());
            listed.extend(page.kvs);
            if !full {
                break;
            }
        }
        assert_eq!(listed, expected, "list at {revision} with pages of {limit}");
    }
    if model.compacted > 1 {
        let before = model.compacted - 1;
        assert!(matches!(
            storage.list(PREFIX, None, 0, Some(before)).await,
            Err(StorageError::Compacted { .. })
        ));
    }
    for _ in 0..3 {
        let after = rng.random_range(model.compacted..=now);
        let expected: Vec<&WatchEvent> = model
            .events
            .iter()
            .filter(|e| e.revision() > after && event_key(e).starts_with(PREFIX))
            .collect();
        let mut watch = storage.watch(PREFIX, after).await.expect("watch");
        for want in expected {
            assert_eq!(&next_change(&mut watch).await, want, "watch after {after}");
        }
    }
}

fn event_key(event: &WatchEvent) -> &str {
    match event {
        WatchEvent::Put { kv, .. } => &kv.key,
        WatchEvent::Delete { prev, .. } => &prev.key,
        WatchEvent::Progress { .. } => "",
    }
}
