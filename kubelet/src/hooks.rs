//! Container lifecycle hooks and the kill that honours them. `postStart`
//! runs right after the container starts (a failure kills the container:
//! `FailedPostStartHook`); `preStop` runs before SIGTERM, inside the
//! grace period: as in `killContainer` (`kuberuntime_container.go`), the
//! time the hook took is taken off the grace period, but SIGTERM still
//! gets at least two seconds before SIGKILL.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};
use nix::sys::signal::Signal;
use tokio::time::Instant;

use crate::prober::handlers::Action;
use crate::prober::{Outcome, ProbeTarget};

/// The least time SIGTERM gets before SIGKILL (`minimumGracePeriodInSeconds`).
pub const MIN_GRACE_AFTER_HOOK: Duration = Duration::from_secs(2);

fn hook(
    container: &Container,
    pick: fn(&k8s_openapi::api::core::v1::Lifecycle) -> Option<&LifecycleHandler>,
) -> Option<&LifecycleHandler> {
    container.lifecycle.as_ref().and_then(pick)
}

/// Runs `handler`; `Err` carries the reason it failed.
pub async fn run(
    handler: &LifecycleHandler,
    target: &ProbeTarget,
    limit: Option<Duration>,
) -> Result<(), String> {
    let action = Action::of_hook(handler);
    let run = action.run(target, None);
    let outcome = match limit {
        Some(limit) => tokio::time::timeout(limit, run)
            .await
            .unwrap_or_else(|_| Outcome::Failure("the hook did not finish in time".into())),
        None => run.await,
    };
    match (action, outcome) {
        (_, Outcome::Success) => Ok(()),
        (Action::Exec(argv), Outcome::Failure(output)) => Err(format!(
            "command '{}' exited non-zero: {output}",
            argv.join(" ")
        )),
        (_, Outcome::Failure(message) | Outcome::Error(message)) => Err(message),
    }
}

/// Runs the container's `postStart` hook, if it has one.
pub async fn post_start(container: &Container, target: &ProbeTarget) -> Result<(), String> {
    match hook(container, |l| l.post_start.as_ref()) {
        Some(handler) => run(handler, target, None).await,
        None => Ok(()),
    }
}

/// Why a container was stopped, for the `Killing` event.
#[derive(Debug, Clone, PartialEq)]
pub struct KillOutcome {
    /// The preStop hook failed (`FailedPreStopHook`).
    pub pre_stop_error: Option<String>,
    /// SIGKILL was needed.
    pub killed: bool,
}

/// Stops a running container: preStop (if any) within `grace`, SIGTERM,
/// the rest of the grace period (at least two seconds once a hook ran),
/// SIGKILL. Returns once the task has exited or SIGKILL was sent and
/// waited on briefly.
pub async fn stop(container: &Container, target: &ProbeTarget, grace: Duration) -> KillOutcome {
    let rt = &target.runtime;
    let id = &target.container_id;
    let began = Instant::now();
    let mut pre_stop_error = None;
    let mut grace = grace;
    if let Some(handler) = hook(container, |l| l.pre_stop.as_ref()) {
        if let Err(e) = run(handler, target, Some(grace)).await {
            pre_stop_error = Some(e);
        }
        grace = grace
            .saturating_sub(began.elapsed())
            .max(MIN_GRACE_AFTER_HOOK);
    }
    if let Err(e) = rt.kill_task(id, Signal::SIGTERM).await {
        tracing::warn!(container = %id, error = %e, "SIGTERM failed");
    }
    let exited = tokio::time::timeout(grace, rt.wait_task(id)).await;
    let killed = !matches!(exited, Ok(Ok(_)));
    if killed {
        if let Err(e) = rt.kill_task(id, Signal::SIGKILL).await {
            tracing::warn!(container = %id, error = %e, "SIGKILL failed");
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), rt.wait_task(id)).await;
    }
    KillOutcome {
        pre_stop_error,
        killed,
    }
}
