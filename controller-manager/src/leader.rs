//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` with `LeaseLock`: several controller-managers may run,
//! only the holder of `kube-system/kube-controller-manager` acts. The
//! holder renews the Lease every retry period; a Lease not renewed for its
//! duration may be taken over (and `leaseTransitions` counts the changes).
//! Losing the Lease stops the controllers; releasing it on shutdown lets a
//! standby take over at once.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::Error;

pub const NAMESPACE: &str = "kube-system";
pub const NAME: &str = "kube-controller-manager";

#[derive(Debug, Clone)]
pub struct Config {
    /// This candidate's `holderIdentity`.
    pub identity: String,
    /// `--leader-elect-lease-duration`.
    pub lease_duration: Duration,
    /// `--leader-elect-renew-deadline`: give up leading after failing to
    /// renew for this long.
    pub renew_deadline: Duration,
    /// `--leader-elect-retry-period`.
    pub retry_period: Duration,
}

impl Config {
    /// Kubernetes' defaults (15s, 10s, 2s) for `identity`.
    pub fn new(identity: String) -> Config {
        Config {
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// `<hostname>_<random>`, as kube-controller-manager names its candidates.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ferrokube".into());
    format!("{host}_{:016x}", rand::random::<u64>())
}

/// What a candidate does with the Lease it sees.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Create,
    Renew,
    TakeOver,
    Wait,
}

/// Decides from the Lease as read (`None`: there is none).
pub fn step(lease: Option<&Lease>, me: &str, now: jiff::Timestamp) -> Step {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return if lease.is_none() {
            Step::Create
        } else {
            Step::TakeOver
        };
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Step::Renew;
    }
    if holder.is_empty() {
        return Step::TakeOver;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0.as_second());
    match renewed {
        Some(t) if t + duration > now.as_second() => Step::Wait,
        _ => Step::TakeOver,
    }
}

/// One attempt to acquire or renew; true while we hold the Lease.
async fn try_acquire(api: &Api<Lease>, config: &Config) -> Result<bool, Error> {
    let current = api.get_opt(NAME).await?;
    let now = jiff::Timestamp::now();
    let me = config.identity.clone();
    let secs = config.lease_duration.as_secs() as i32;
    let result = match step(current.as_ref(), &me, now) {
        Step::Wait => return Ok(false),
        Step::Create => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(NAME.into()),
                    namespace: Some(NAMESPACE.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await
        }
        s @ (Step::Renew | Step::TakeOver) => {
            let mut lease = current.unwrap_or_default();
            let spec = lease.spec.get_or_insert_with(Default::default);
            if s == Step::TakeOver {
                spec.holder_identity = Some(me);
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(secs);
            spec.renew_time = Some(MicroTime(now));
            // The resourceVersion read above makes this a compare-and-swap.
            api.replace(NAME, &PostParams::default(), &lease).await
        }
    };
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Gives the Lease up so a standby need not wait for it to expire.
async fn release(api: &Api<Lease>, config: &Config) {
    let Ok(Some(mut lease)) = api.get_opt(NAME).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    let _ = api.replace(NAME, &PostParams::default(), &lease).await;
}

/// Runs `lead` (given a future that resolves when leadership is lost or
/// `stop` fires) whenever this candidate holds the Lease, until `stop`.
pub async fn run<F, Fut>(
    client: Client,
    config: Config,
    stop: impl Future<Output = ()> + Send,
    lead: F,
) where
    F: Fn(tokio::sync::watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, NAMESPACE);
    tokio::pin!(stop);
    loop {
        // Standby: retry until acquired.
        loop {
            match try_acquire(&api, &config).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::info!(error = %e, "cannot acquire the leader lease"),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(config.retry_period) => {}
            }
        }
        tracing::info!(identity = %config.identity, "became leader");
        let (lost_tx, lost_rx) = tokio::sync::watch::channel(false);
        let leading = tokio::spawn(lead(lost_rx));
        let mut last_renew = tokio::time::Instant::now();
        let stopped = loop {
            tokio::select! {
                _ = &mut stop => break true,
                _ = tokio::time::sleep(config.retry_period) => {}
            }
            match try_acquire(&api, &config).await {
                Ok(true) => last_renew = tokio::time::Instant::now(),
                Ok(false) => break false,
                Err(e) => {
                    tracing::info!(error = %e, "cannot renew the leader lease");
                    if last_renew.elapsed() > config.renew_deadline {
                        break false;
                    }
                }
            }
        };
        let _ = lost_tx.send(true);
        let _ = leading.await;
        if stopped {
            release(&api, &config).await;
            return;
        }
        tracing::warn!(identity = %config.identity, "lost the leader lease");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lease(holder: &str, renewed: &str) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": NAME},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed},
        }))
        .expect("lease")
    }

    #[test]
    fn candidates_create_renew_wait_or_take_over() {
        let now: jiff::Timestamp = "2024-01-01T00:00:20Z".parse().expect("now");
        let cases = [
            (None, Step::Create),
            (
                Some(lease("me", "2024-01-01T00:00:00.000000Z")),
                Step::Renew,
            ),
            (
                Some(lease("other", "2024-01-01T00:00:10.000000Z")),
                Step::Wait,
            ),
            (
                Some(lease("other", "2024-01-01T00:00:04.000000Z")),
                Step::TakeOver,
            ),
            (
                Some(lease("", "2024-01-01T00:00:19.000000Z")),
                Step::TakeOver,
            ),
        ];
        for (l, want) in cases {
            assert_eq!(step(l.as_ref(), "me", now), want, "{l:?}");
        }
    }
}
