//! The Lease strategy (`pkg/apis/coordination/validation`): leader
//! election and node heartbeat leases.

use k8s_openapi::api::coordination::v1::Lease;

use super::validation::{invalid_all, is_qualified_name};
use crate::registry::{FieldError, FieldPath, Strategy};

pub struct LeaseStrategy;

const LEASE_STRATEGIES: &[&str] = &["OldestEmulationVersion"];

impl Strategy for LeaseStrategy {
    type Object = Lease;

    fn validate(&self, lease: &Lease) -> Vec<FieldError> {
        let spec = lease.spec.clone().unwrap_or_default();
        let path = FieldPath::new("spec");
        let mut errs = Vec::new();
        if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
            errs.push(FieldError::invalid(
                &path.child("leaseDurationSeconds"),
                d,
                "must be greater than 0",
            ));
        }
        if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
            errs.push(FieldError::invalid(
                &path.child("leaseTransitions"),
                t,
                "must be greater than or equal to 0",
            ));
        }
        let strategy = spec.strategy.clone().unwrap_or_default();
        if let Some(s) = &spec.strategy {
            // Kubernetes nests the field name twice here.
            let sp = path.child("strategy.strategy");
            if !s.contains('/') {
                if !LEASE_STRATEGIES.contains(&s.as_str()) {
                    errs.push(FieldError::not_supported(&sp, s, LEASE_STRATEGIES));
                }
            } else {
                errs.extend(invalid_all(&sp, s, is_qualified_name(s)));
            }
        }
        if spec
            .preferred_holder
            .as_deref()
            .is_some_and(|h| !h.is_empty())
            && strategy.is_empty()
        {
            errs.push(FieldError::forbidden(
                &path.child("preferredHolder"),
                "may only be specified if `strategy` is defined",
            ));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;

    use super::*;
    use crate::registry::strategies::testutil::{messages, meta};

    #[test]
    fn lease_validation_reports_kubernetes_messages() {
        let lease = |spec: LeaseSpec| Lease {
            metadata: meta("node-1"),
            spec: Some(spec),
        };
        assert!(
            LeaseStrategy
                .validate(&lease(LeaseSpec {
                    holder_identity: Some("node-1".into()),
                    lease_duration_seconds: Some(40),
                    ..Default::default()
                }))
                .is_empty()
        );
        let got = messages(&LeaseStrategy.validate(&lease(LeaseSpec {
            lease_duration_seconds: Some(0),
            lease_transitions: Some(-1),
            preferred_holder: Some("a".into()),
            ..Default::default()
        })));
        assert_eq!(
            got,
            vec![
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
                "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined",
            ]
        );
    }
}
