//! client-go's `EventCorrelator` (`tools/record/events_cache.go`), which
//! decides what becomes of each event before it reaches the API server:
//!
//! - **aggregation**: once ten events of one source, object, type and
//!   reason with *different* messages arrive within ten minutes, further
//!   ones become a single `(combined from similar events): <message>`
//!   event;
//! - **deduplication**: an event identical to an earlier one (source,
//!   object, type, reason and message) updates that one's `count` and
//!   `lastTimestamp` instead of creating another;
//! - **spam filter**: a source may record 25 events about one object in a
//!   burst, then one every five minutes; the rest are dropped.
//!
//! Pure state over explicit timestamps, so it is tested without a server
//! or a clock.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// client-go's `maxLruCacheEntries`.
const CACHE_ENTRIES: usize = 4096;
/// `defaultAggregateMaxEvents` / `defaultAggregateIntervalInSeconds`.
const AGGREGATE_MAX_EVENTS: usize = 10;
const AGGREGATE_INTERVAL_SECONDS: i64 = 600;
/// `defaultSpamBurst` / `defaultSpamQPS`.
const SPAM_BURST: f64 = 25.0;
const SPAM_QPS: f64 = 1.0 / 300.0;
const AGGREGATE_PREFIX: &str = "(combined from similar events): ";

/// What to do with an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Over the spam budget: drop it.
    Skip,
    /// Create it (a first occurrence, or a fresh aggregate).
    Create(Event),
    /// Bump the existing event of this name to the given count, last
    /// timestamp and message (client-go sends the same three fields as a
    /// strategic merge patch).
    Update(Event),
}

/// A least-recently-used map of at most [`CACHE_ENTRIES`] entries, as the
/// `groupcache/lru` caches client-go keeps.
struct Lru<V> {
    map: HashMap<String, (u64, V)>,
    tick: u64,
}

impl<V> Default for Lru<V> {
    fn default() -> Self {
        Lru {
            map: HashMap::new(),
            tick: 0,
        }
    }
}

impl<V> Lru<V> {
    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(key).map(|(t, v)| {
            *t = tick;
            v
        })
    }

    fn insert(&mut self, key: String, value: V) {
        self.tick += 1;
        if self.map.len() >= CACHE_ENTRIES && !self.map.contains_key(&key) {
            // Eviction scans the map; it only happens once the cache is
            // full, and then at most once per new key.
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            {
                self.map.remove(&oldest);
            }
        }
        self.map.insert(key, (self.tick, value));
    }
}

struct Aggregate {
    messages: HashSet<String>,
    last: jiff::Timestamp,
}

/// `eventLog`: the first occurrence's name and time, and the count so far.
struct Log {
    count: i32,
    first: Option<Time>,
    name: String,
}

/// A token bucket (`flowcontrol.NewTokenBucketRateLimiter`).
struct Bucket {
    tokens: f64,
    at: jiff::Timestamp,
}

#[derive(Default)]
pub struct Correlator {
    aggregates: Lru<Aggregate>,
    logs: Lru<Log>,
    spam: Lru<Bucket>,
}

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// Source and involved object (`getSpamKey`).
fn spam_key(e: &Event) -> String {
    let src = e.source.clone().unwrap_or_default();
    let o = &e.involved_object;
    [
        s(&src.component),
        s(&src.host),
        s(&o.kind),
        s(&o.namespace),
        s(&o.name),
        s(&o.uid),
        s(&o.api_version),
    ]
    .join("")
}

/// Everything but the message (`EventAggregatorByReasonFunc`).
fn aggregate_key(e: &Event) -> String {
    [
        spam_key(e).as_str(),
        s(&e.type_),
        s(&e.reason),
        s(&e.reporting_component),
        s(&e.reporting_instance),
    ]
    .join("")
}

/// Source, object, type, reason and message (`getEventKey`).
pub fn event_key(e: &Event) -> String {
    let src = e.source.clone().unwrap_or_default();
    let o = &e.involved_object;
    [
        s(&src.component),
        s(&src.host),
        s(&o.kind),
        s(&o.namespace),
        s(&o.name),
        s(&o.field_path),
        s(&o.uid),
        s(&o.api_version),
        s(&e.type_),
        s(&e.reason),
        s(&e.message),
    ]
    .join("")
}

/// `<object>.<hex nanoseconds>`, as Kubernetes' recorder names events.
pub fn event_name(object: &str, now: jiff::Timestamp) -> String {
    format!("{object}.{:x}", now.as_nanosecond())
}

impl Correlator {
    /// `EventCorrelate`: aggregate, then deduplicate, then spam-filter.
    pub fn correlate(&mut self, event: Event, now: jiff::Timestamp) -> Outcome {
        let (event, key) = self.aggregate(event, now);
        let event = self.observe(event, key);
        if self.filtered(&event, now) {
            return Outcome::Skip;
        }
        if event.count.unwrap_or(1) > 1 {
            Outcome::Update(event)
        } else {
            Outcome::Create(event)
        }
    }

    /// Records what the server holds after a write (`UpdateState`), so the
    /// next duplicate updates that event.
    pub fn written(&mut self, event: &Event) {
        self.logs.insert(
            event_key(event),
            Log {
                count: event.count.unwrap_or(1),
                first: event.first_timestamp.clone(),
                name: event.metadata.name.clone().unwrap_or_default(),
            },
        );
    }

    fn aggregate(&mut self, event: Event, now: jiff::Timestamp) -> (Event, String) {
        let key = event_key(&event);
        let agg_key = aggregate_key(&event);
        let message = event.message.clone().unwrap_or_default();
        let fresh = || Aggregate {
            messages: HashSet::new(),
            last: now,
        };
        let mut record = self
            .aggregates
            .map
            .remove(&agg_key)
            .map(|(_, a)| a)
            .filter(|a| now.as_second() - a.last.as_second() <= AGGREGATE_INTERVAL_SECONDS)
            .unwrap_or_else(fresh);
        record.messages.insert(message.clone());
        record.last = now;
        let over = record.messages.len() >= AGGREGATE_MAX_EVENTS;
        if over {
            // Keep the set from growing past the threshold.
            if let Some(any) = record.messages.iter().next().cloned() {
                record.messages.remove(&any);
            }
        }
        self.aggregates.insert(agg_key.clone(), record);
        if !over {
            return (event, key);
        }
        let stamp = Some(Time(now));
        let combined = Event {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(event_name(s(&event.involved_object.name), now)),
                namespace: event.metadata.namespace.clone(),
                ..Default::default()
            },
            count: Some(1),
            first_timestamp: stamp.clone(),
            last_timestamp: stamp,
            message: Some(format!("{AGGREGATE_PREFIX}{message}")),
            involved_object: event.involved_object,
            type_: event.type_,
            reason: event.reason,
            source: event.source,
            ..Event::default()
        };
        (combined, agg_key)
    }

    /// `eventObserve`: a repeat takes the first occurrence's name, first
    /// timestamp and the next count.
    fn observe(&mut self, mut event: Event, key: String) -> Event {
        if let Some(last) = self.logs.get_mut(&key).filter(|l| l.count > 0) {
            event.metadata.name = Some(last.name.clone());
            event.first_timestamp = last.first.clone();
            event.count = Some(last.count + 1);
        }
        self.logs.insert(
            key,
            Log {
                count: event.count.unwrap_or(1),
                first: event.first_timestamp.clone(),
                name: event.metadata.name.clone().unwrap_or_default(),
            },
        );
        event
    }

    fn filtered(&mut self, event: &Event, now: jiff::Timestamp) -> bool {
        let key = spam_key(event);
        let mut bucket = self
            .spam
            .map
            .remove(&key)
            .map(|(_, b)| b)
            .unwrap_or(Bucket {
                tokens: SPAM_BURST,
                at: now,
            });
        let elapsed = (now.as_millisecond() - bucket.at.as_millisecond()).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * SPAM_QPS).min(SPAM_BURST);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        self.spam.insert(key, bucket);
        !allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(object: &str, reason: &str, message: &str, at: jiff::Timestamp) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": event_name(object, at), "namespace": "default"},
            "involvedObject": {"kind": "ReplicaSet", "namespace": "default",
                "name": object, "uid": format!("uid-{object}"), "apiVersion": "apps/v1"},
            "reason": reason, "message": message, "type": "Normal",
            "source": {"component": "replicaset-controller"},
            "count": 1, "firstTimestamp": at, "lastTimestamp": at,
        }))
        .expect("event")
    }

    fn t(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    /// Runs `correlate` and records the write as the sink would.
    fn record(c: &mut Correlator, e: Event, at: jiff::Timestamp) -> Outcome {
        let out = c.correlate(e, at);
        if let Outcome::Create(e) | Outcome::Update(e) = &out {
            c.written(e);
        }
        out
    }

    #[test]
    fn a_repeated_event_bumps_the_count_of_the_first() {
        let mut c = Correlator::default();
        let first = record(&mut c, event("rs", "FailedCreate", "quota", t(0)), t(0));
        let Outcome::Create(first) = first else {
            panic!("first occurrence is created: {first:?}")
        };
        let again = record(&mut c, event("rs", "FailedCreate", "quota", t(7)), t(7));
        let Outcome::Update(again) = again else {
            panic!("a repeat updates: {again:?}")
        };
        assert_eq!(again.metadata.name, first.metadata.name);
        assert_eq!(again.count, Some(2));
        assert_eq!(again.first_timestamp, Some(Time(t(0))));
        assert_eq!(again.last_timestamp, Some(Time(t(7))));
        let Outcome::Update(third) =
            record(&mut c, event("rs", "FailedCreate", "quota", t(9)), t(9))
        else {
            panic!("a third occurrence updates too")
        };
        assert_eq!(third.count, Some(3));
    }

    #[test]
    fn ten_different_messages_of_one_reason_are_combined() {
        let mut c = Correlator::default();
        let mut outcomes = Vec::new();
        for i in 0..12 {
            let e = event(
                "rs",
                "SuccessfulCreate",
                &format!("Created pod: p{i}"),
                t(i),
            );
            outcomes.push(record(&mut c, e, t(i)));
        }
        for o in &outcomes[..9] {
            assert!(
                matches!(o, Outcome::Create(e) if !s(&e.message).starts_with("(combined")),
                "{o:?}"
            );
        }
        let Outcome::Create(combined) = &outcomes[9] else {
            panic!("the tenth starts an aggregate: {:?}", outcomes[9])
        };
        assert_eq!(
            combined.message.as_deref(),
            Some("(combined from similar events): Created pod: p9")
        );
        let Outcome::Update(later) = &outcomes[11] else {
            panic!("later ones update the aggregate: {:?}", outcomes[11])
        };
        assert_eq!(later.metadata.name, combined.metadata.name);
        assert_eq!(later.count, Some(3));
        assert_eq!(
            later.message.as_deref(),
            Some("(combined from similar events): Created pod: p11")
        );
    }

    #[test]
    fn aggregation_restarts_after_ten_quiet_minutes() {
        let mut c = Correlator::default();
        for i in 0..9 {
            record(&mut c, event("rs", "R", &format!("m{i}"), t(i)), t(i));
        }
        let later = t(9 + 601);
        let out = record(&mut c, event("rs", "R", "m9", later), later);
        assert!(
            matches!(&out, Outcome::Create(e) if e.message.as_deref() == Some("m9")),
            "{out:?}"
        );
    }

    #[test]
    fn a_source_gets_twenty_five_events_per_object_then_one_per_five_minutes() {
        let mut c = Correlator::default();
        let sent = (0..40)
            .filter(|i| {
                let e = event("rs", &format!("R{i}"), "m", t(0));
                record(&mut c, e, t(0)) != Outcome::Skip
            })
            .count();
        assert_eq!(sent, 25);
        let other = record(&mut c, event("other", "R", "m", t(0)), t(0));
        assert_ne!(other, Outcome::Skip, "the budget is per object");
        assert_eq!(
            record(&mut c, event("rs", "X", "m", t(299)), t(299)),
            Outcome::Skip
        );
        assert_ne!(
            record(&mut c, event("rs", "Y", "m", t(301)), t(301)),
            Outcome::Skip
        );
    }
}
