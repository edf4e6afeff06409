//! Making sure a container's image is on the node before it starts, as
//! the kubelet's image manager does: `imagePullPolicy` (Always,
//! IfNotPresent, Never), a back-off per image after failed pulls (10 s
//! doubling to 5 min) during which the container waits in
//! `ImagePullBackOff`, credentials from the pod's `imagePullSecrets`, and
//! the `Pulling` / `Pulled` / `Failed` / `BackOff` events with
//! Kubernetes' wording. Pulls on a node run one at a time (the kubelet's
//! default `serializeImagePulls`). Images imported from node-local
//! archives (`DATA_DIR/images`, `ferrokube image import`) are the node's
//! own copy and never pulled, whatever the policy: that is what lets an
//! offline node run `busybox` (`:latest`, so `Always`).

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use tokio::time::Instant;

use super::{BACKOFF_INITIAL, RETRY, Worker, next_backoff};
use crate::events::{EventType, Involved};
use crate::image;

/// Node-wide pull settings and the lock that serialises pulls.
#[derive(Debug, Default)]
pub struct Pulls {
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    pub lock: tokio::sync::Mutex<()>,
}

/// The back-off of one image after a failed pull.
pub(super) struct PullBackoff {
    delay: Duration,
    until: Instant,
    /// `ErrImagePull: <message>`, shown while backing off.
    last_error: String,
}

/// Why a container cannot start yet, and when to look again.
pub(super) struct ImageWait {
    pub reason: &'static str,
    pub message: String,
    pub retry_at: Instant,
}

/// The policy the API server defaults to: Always for `:latest` (or no
/// tag), IfNotPresent otherwise.
pub fn pull_policy(c: &Container) -> String {
    if let Some(p) = c.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let image = crate::image::normalize_reference(c.image.as_deref().unwrap_or(""));
    if image.contains('@') || !image.ends_with(":latest") {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

/// Go's `time.Duration` printing of a duration truncated to milliseconds
/// (`523ms`, `1.2s`, `1m3.5s`).
pub fn go_millis(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = |ms: u128| {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    match ms / 60_000 {
        0 => format!("{}s", secs(ms)),
        m => format!("{m}m{}s", secs(ms % 60_000)),
    }
}

impl Worker {
    fn image_event(&self, c: &Container, kind: EventType, reason: &'static str, message: String) {
        let about = Involved::container(&self.pod_ref, &c.name, self.is_init(&c.name));
        self.events.record(about, kind, reason, message);
    }

    /// A failed look-up of `spec_image` in containerd.
    fn inspect_failed(&self, c: &Container, spec_image: &str, error: String) -> ImageWait {
        let message = format!("Failed to inspect image \"{spec_image}\": {error}");
        self.image_event(c, EventType::Warning, "InspectFailed", message.clone());
        ImageWait {
            reason: "ImageInspectError",
            message,
            retry_at: Instant::now() + BACKOFF_INITIAL,
        }
    }

    /// The node's copy of `c`'s image once it is there (pulling it if the
    /// policy says so), looked up once for the start to use; otherwise the
    /// waiting state to show.
    pub(super) async fn ensure_image(
        &mut self,
        c: &Container,
    ) -> Result<image::LocalImage, ImageWait> {
        let spec_image = c.image.clone().unwrap_or_default();
        // As the image manager: an unparsable reference is never looked up.
        if let Err(e) = crate::reference::validate(&spec_image) {
            let message = crate::reference::invalid_image_message(&spec_image, &e);
            self.image_event(c, EventType::Warning, "InspectFailed", message.clone());
            return Err(ImageWait {
                reason: "InvalidImageName",
                message,
                retry_at: Instant::now() + BACKOFF_INITIAL,
            });
        }
        let name = image::normalize_reference(&spec_image);
        let rt = &self.ctx.runtime;
        let local = match image::lookup(rt, &name).await {
            Ok(local) => local,
            Err(e) => return Err(self.inspect_failed(c, &spec_image, e.to_string())),
        };
        let policy = pull_policy(c);
        let pull = match (&local, policy.as_str()) {
            (_, "Never") => false,
            (Some(l), "Always") => !l.imported,
            (present, _) => present.is_none(),
        };
        if !pull {
            if let Some(local) = local {
                let message =
                    format!("Container image \"{spec_image}\" already present on machine");
                self.image_event(c, EventType::Normal, "Pulled", message);
                return Ok(local);
            }
            let message = format!(
                "Container image \"{spec_image}\" is not present with pull policy of Never"
            );
            self.image_event(c, EventType::Warning, "ErrImageNeverPull", message.clone());
            self.image_event(
                c,
                EventType::Warning,
                "Failed",
                "Error: ErrImageNeverPull".into(),
            );
            return Err(ImageWait {
                reason: "ErrImageNeverPull",
                message,
                retry_at: Instant::now() + BACKOFF_INITIAL,
            });
        }
        if let Some(b) = self.pull_backoff.get(&spec_image)
            && Instant::now() < b.until
        {
            let (until, last_error) = (b.until, b.last_error.clone());
            let message = format!("Back-off pulling image \"{spec_image}\"");
            self.image_event(c, EventType::Normal, "BackOff", message.clone());
            self.image_event(
                c,
                EventType::Warning,
                "Failed",
                "Error: ImagePullBackOff".into(),
            );
            return Err(ImageWait {
                reason: "ImagePullBackOff",
                message: format!("{message}: {last_error}"),
                retry_at: until,
            });
        }
        self.image_event(
            c,
            EventType::Normal,
            "Pulling",
            format!("Pulling image \"{spec_image}\""),
        );
        let (keyring, missing) = crate::credentials::load(&self.ctx.client, &self.pod).await;
        if !missing.is_empty() {
            let message = format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                missing.join(", ")
            );
            let about = Involved {
                field_path: None,
                ..Involved::container(&self.pod_ref, &c.name, false)
            };
            self.events.record(
                about,
                EventType::Warning,
                "FailedToRetrieveImagePullSecret",
                message,
            );
        }
        let creds = crate::credentials::matching(&keyring, &name);
        let asked = Instant::now();
        let result = {
            let _serialised = self.ctx.pulls.lock.lock().await;
            let started = Instant::now();
            // As the kubelet: each matching credential in turn, else none.
            let mut result = None;
            for cred in creds
                .iter()
                .map(Some)
                .chain(creds.is_empty().then_some(None))
            {
                let attempt =
                    crate::pull::pull(&self.ctx.runtime, &name, cred, &self.ctx.pulls.insecure)
                        .await;
                let done = attempt.is_ok();
                result = Some(attempt);
                if done {
                    break;
                }
            }
            result.map(|r| r.map(|p| (p, started.elapsed())))
        };
        match result {
            Some(Ok((pulled, took))) => {
                self.pull_backoff.remove(&spec_image);
                let message = format!(
                    "Successfully pulled image \"{spec_image}\" in {} ({} including waiting). Image size: {} bytes.",
                    go_millis(took),
                    go_millis(asked.elapsed()),
                    pulled.size
                );
                tracing::info!(pod = %self.pod_ref.name, image = %name, "pulled image");
                self.image_event(c, EventType::Normal, "Pulled", message);
                match image::lookup(&self.ctx.runtime, &name).await {
                    Ok(Some(local)) => Ok(local),
                    Ok(None) => Err(self.inspect_failed(
                        c,
                        &spec_image,
                        "not present after its pull".into(),
                    )),
                    Err(e) => Err(self.inspect_failed(c, &spec_image, e.to_string())),
                }
            }
            Some(Err(e)) => {
                let error = e.to_string();
                tracing::warn!(pod = %self.pod_ref.name, image = %name, error = %error, "image pull failed");
                self.image_event(
                    c,
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image \"{spec_image}\": {error}"),
                );
                self.image_event(
                    c,
                    EventType::Warning,
                    "Failed",
                    "Error: ErrImagePull".into(),
                );
                let delay = self
                    .pull_backoff
                    .get(&spec_image)
                    .map_or(BACKOFF_INITIAL, |b| next_backoff(b.delay));
                let now = Instant::now();
                self.pull_backoff.insert(
                    spec_image,
                    PullBackoff {
                        delay,
                        until: now + delay,
                        last_error: format!("ErrImagePull: {error}"),
                    },
                );
                // The next sync shows the back-off, as the kubelet's does.
                Err(ImageWait {
                    reason: "ErrImagePull",
                    message: error,
                    retry_at: now + RETRY,
                })
            }
            // Unreachable: the loop runs at least once.
            None => Err(self.inspect_failed(c, &spec_image, "no pull attempted".into())),
        }
    }
}

/// Back-offs by the pod's image (the kubelet keys them by pod and image).
pub(super) type PullBackoffs = HashMap<String, PullBackoff>;

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(str::to_string),
            ..Container::default()
        }
    }

    #[test]
    fn pull_policy_defaults_to_always_only_for_latest() {
        assert_eq!(pull_policy(&container("busybox", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:latest", None)), "Always");
        assert_eq!(
            pull_policy(&container("busybox:1.36", None)),
            "IfNotPresent"
        );
        assert_eq!(
            pull_policy(&container("r.io/a@sha256:abc", None)),
            "IfNotPresent"
        );
        assert_eq!(pull_policy(&container("busybox", Some("Never"))), "Never");
    }

    #[test]
    fn pull_durations_print_as_go_does() {
        assert_eq!(go_millis(Duration::from_micros(523_400)), "523ms");
        assert_eq!(go_millis(Duration::from_millis(1200)), "1.2s");
        assert_eq!(go_millis(Duration::from_millis(2000)), "2s");
        assert_eq!(go_millis(Duration::from_millis(63_500)), "1m3.5s");
    }
}
