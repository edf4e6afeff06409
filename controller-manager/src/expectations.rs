//! Expectations (Kubernetes `ControllerExpectations`): after a controller
//! creates or deletes children it must not act on that kind again until its
//! cache has seen those writes, or a slow watch makes it create too many.
//!
//! Unlike Kubernetes' counters fed by informer callbacks, ours are judged
//! against the cache itself (level-triggered): a creation is observed once
//! the cache holds that child, a deletion once the cache no longer holds it
//! live. Entries expire after Kubernetes' five minutes so a lost write
//! cannot wedge a controller.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Pending {
    /// Names of children created but not yet seen.
    adds: HashSet<String>,
    /// UIDs of children deleted but still seen live.
    dels: HashSet<String>,
    since: Option<Instant>,
}

/// Per-owner expectations, keyed by `namespace/name`.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> R) -> R {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g)
    }

    pub fn expect_creation(&self, owner: &str, child: String) {
        self.with(|m| {
            let p = m.entry(owner.to_string()).or_default();
            p.since.get_or_insert_with(Instant::now);
            p.adds.insert(child);
        });
    }

    pub fn expect_deletion(&self, owner: &str, uid: String) {
        self.with(|m| {
            let p = m.entry(owner.to_string()).or_default();
            p.since.get_or_insert_with(Instant::now);
            p.dels.insert(uid);
        });
    }

    /// A deletion that failed: the child stays, so it is no longer
    /// expected to go (Kubernetes' `DeletionObserved` on error).
    pub fn deletion_failed(&self, owner: &str, uid: &str) {
        self.with(|m| {
            if let Some(p) = m.get_mut(owner) {
                p.dels.remove(uid);
            }
        });
    }

    /// Whether every expected write of `owner` is visible. `seen(name)`
    /// tells whether the cache holds a child by name; `live(uid)` whether
    /// it holds a not-yet-deleting child by uid.
    pub fn satisfied(
        &self,
        owner: &str,
        seen: impl Fn(&str) -> bool,
        live: impl Fn(&str) -> bool,
    ) -> bool {
        self.with(|m| {
            // Owners deleted meanwhile are never asked again; their
            // entries go once expired.
            m.retain(|k, p| k == owner || p.since.is_none_or(|t| t.elapsed() <= TTL));
            let Some(p) = m.get_mut(owner) else {
                return true;
            };
            p.adds.retain(|n| !seen(n));
            p.dels.retain(|u| live(u));
            let expired = p.since.is_some_and(|t| t.elapsed() > TTL);
            if p.adds.is_empty() && p.dels.is_empty() || expired {
                m.remove(owner);
                true
            } else {
                false
            }
        })
    }

    pub fn forget(&self, owner: &str) {
        self.with(|m| {
            m.remove(owner);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_are_pending_until_the_cache_holds_them() {
        let e = Expectations::default();
        e.expect_creation("ns/rs", "rs-abcde".into());
        assert!(!e.satisfied("ns/rs", |_| false, |_| false));
        assert!(e.satisfied("ns/rs", |n| n == "rs-abcde", |_| false));
        assert!(e.satisfied("ns/rs", |_| false, |_| false));
    }

    #[test]
    fn deletions_are_pending_while_the_child_is_live() {
        let e = Expectations::default();
        e.expect_deletion("ns/rs", "uid-1".into());
        assert!(!e.satisfied("ns/rs", |_| true, |u| u == "uid-1"));
        assert!(e.satisfied("ns/rs", |_| true, |_| false));
    }

    #[test]
    fn owners_without_expectations_are_satisfied() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/other", |_| false, |_| true));
    }
}
