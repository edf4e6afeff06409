//! Deployment arithmetic (Kubernetes `pkg/controller/deployment/util`):
//! surge and unavailability bounds, the pod-template hash, revisions and
//! the replica annotations proportional scaling reads.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";

/// Resolves an int-or-percent against `total`; percentages round up for
/// surge and down for unavailability, as `GetScaledValueFromIntOrPercent`.
pub fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let num = pct * i64::from(total);
            (if round_up {
                (num + 99) / 100
            } else {
                num / 100
            }) as i32
        }
    }
}

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// `(maxSurge, maxUnavailable)` resolved against `spec.replicas`; both zero
/// is not allowed, so unavailability becomes 1 (`ResolveFenceposts`).
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    if !is_rolling(d) {
        return (0, 0);
    }
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let default = IntOrString::String("25%".into());
    let total = replicas(d);
    let surge = scaled(
        Some(ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&default)),
        total,
        true,
    );
    let unavailable = scaled(
        Some(
            ru.and_then(|r| r.max_unavailable.as_ref())
                .unwrap_or(&default),
        ),
        total,
        false,
    );
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// `MaxUnavailable`: never more than the replicas themselves.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// The pod-template hash. Kubernetes hashes a `spew` dump of the Go struct,
/// which cannot be reproduced outside Go; we take FNV-1a (32 bit) of the
/// template's JSON, mix in `collisionCount` as Kubernetes does (four
/// little-endian bytes), and render the decimal digits with Kubernetes'
/// `SafeEncodeString` alphabet, so names look alike (`web-7d9c5b8f6c`).
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Templates equal once the hash label is ignored (`EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.remove(HASH_LABEL);
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    strip(a) == strip(b)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION).unwrap_or(0)
}

pub fn annotation(rs: &ReplicaSet, key: &str) -> Option<i64> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

pub fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(
        replicas: i32,
        surge: serde_json::Value,
        unavailable: serde_json::Value,
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": replicas, "selector": {},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "template": {}},
        }))
        .expect("deployment")
    }

    #[test]
    fn percentages_round_surge_up_and_unavailability_down() {
        let cases = [
            (10, json!("25%"), json!("25%"), (3, 2)),
            (3, json!("25%"), json!("25%"), (1, 0)),
            (10, json!(1), json!(0), (1, 0)),
            (10, json!(0), json!(0), (0, 1)),
            (4, json!("50%"), json!("50%"), (2, 2)),
        ];
        for (replicas, surge, unavailable, want) in cases {
            assert_eq!(
                fenceposts(&deployment(replicas, surge.clone(), unavailable.clone())),
                want,
                "{replicas} {surge} {unavailable}"
            );
        }
    }

    #[test]
    fn the_hash_is_stable_and_changes_with_the_template_and_collisions() {
        let t: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"a": "b"}}})).expect("t");
        let u: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"a": "c"}}})).expect("u");
        assert_eq!(pod_template_hash(&t, None), pod_template_hash(&t, None));
        assert_ne!(pod_template_hash(&t, None), pod_template_hash(&u, None));
        assert_ne!(pod_template_hash(&t, None), pod_template_hash(&t, Some(1)));
        assert!(
            pod_template_hash(&t, None)
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
    }

    #[test]
    fn the_hash_label_does_not_make_templates_differ() {
        let t: PodTemplateSpec =
            serde_json::from_value(json!({"metadata": {"labels": {"a": "b"}}})).expect("t");
        let h: PodTemplateSpec = serde_json::from_value(
            json!({"metadata": {"labels": {"a": "b", "pod-template-hash": "x"}}}),
        )
        .expect("h");
        assert!(equal_ignore_hash(&t, &h));
    }
}
