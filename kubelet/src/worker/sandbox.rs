//! The pod sandbox: the pod cgroup with its limits, and, unless
//! `hostNetwork`, a network namespace wired by CNI. CNI ADD (a few plugin
//! executions) runs in the background while the first container is
//! created (snapshot, record, `runc create`), which needs only the
//! namespace to exist; no container process starts before the network is
//! wired ([`Worker::finish_wiring`]), so containers still find `eth0` up
//! from their first instruction, as in Kubernetes, where the sandbox is
//! ready before any container starts.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Container;

use super::Worker;
use crate::cni::CniError;

/// A CNI ADD under way: the pod IP it assigns.
pub(super) type Wiring = tokio::task::JoinHandle<Result<Option<IpAddr>, CniError>>;

/// Whether `c`'s environment carries the pod IP (downward API), which
/// must be known before its spec is built.
pub(super) fn needs_pod_ip(c: &Container) -> bool {
    c.env.iter().flatten().any(|e| {
        e.value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .is_some_and(|f| f.field_path == "status.podIP" || f.field_path == "status.podIPs")
    })
}

impl Worker {
    /// The pod cgroup and the network namespace, with CNI ADD started;
    /// `hostNetwork` pods need no namespace.
    pub(super) async fn ensure_sandbox(&mut self) -> Result<(), String> {
        self.sandbox_error = None;
        if self.sandbox_ready || self.wiring.is_some() {
            return Ok(());
        }
        // The pod cgroup with its limits; runc puts the containers inside.
        let limits = crate::cgroups::pod_limits(&self.pod);
        if let Err(e) = crate::cgroups::Hierarchy::detect().ensure_pod(
            &self.ctx.cgroup_parent,
            &self.pod_ref.uid,
            &limits,
        ) {
            tracing::warn!(pod = %self.pod_ref.name, error = %e, "cannot set the pod cgroup limits");
        }
        if self.host_network() {
            self.pod_ip = Some(self.ctx.host_ip.clone());
            self.sandbox_ready = true;
            return Ok(());
        }
        let path = self.ctx.data_dir.join("netns").join(&self.pod_ref.uid);
        // A previous kubelet wired this namespace: keep it and its address.
        if crate::netns::is_pinned(&path) && self.pod_ip.is_some() {
            self.netns = Some(path);
            self.sandbox_ready = true;
            return Ok(());
        }
        if let Some(cni) = &self.ctx.cni
            && crate::netns::is_pinned(&path)
        {
            // Half-wired by a kubelet that died mid-setup: start over.
            let _ = cni.del(&self.pod_ref.uid, &path).await;
        }
        let create_path = path.clone();
        tokio::task::spawn_blocking(move || crate::netns::create(&create_path))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        self.netns = Some(path.clone());
        if self.ctx.cni.is_none() {
            self.sandbox_ready = true;
            return Ok(());
        }
        let ctx = self.ctx.clone();
        let uid = self.pod_ref.uid.clone();
        self.wiring = Some(tokio::spawn(async move {
            let began = std::time::Instant::now();
            let wired = match &ctx.cni {
                Some(cni) => cni.add(&uid, &path).await,
                None => Ok(None),
            };
            tracing::debug!(pod_uid = %uid, took = ?began.elapsed(), "CNI ADD done");
            wired
        }));
        Ok(())
    }

    /// Waits for CNI ADD, if one is under way: Ok once the pod network is
    /// wired (the pod IP known), else why not (until the next sync).
    pub(super) async fn finish_wiring(&mut self) -> Result<(), String> {
        if let Some(wiring) = self.wiring.take() {
            match wiring.await {
                Ok(Ok(ip)) => {
                    self.pod_ip = ip.map(|ip| ip.to_string());
                    self.sandbox_ready = true;
                }
                Ok(Err(e)) => self.sandbox_error = Some(e.to_string()),
                Err(e) => self.sandbox_error = Some(e.to_string()),
            }
        }
        match &self.sandbox_error {
            Some(message) => Err(message.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_containers_given_the_pod_ip_wait_for_it_before_their_spec() {
        let with = |path: &str| -> Container {
            serde_json::from_value(serde_json::json!({
                "name": "c",
                "env": [
                    {"name": "PLAIN", "value": "x"},
                    {"name": "F", "valueFrom": {"fieldRef": {"fieldPath": path}}},
                ],
            }))
            .expect("container")
        };
        assert!(needs_pod_ip(&with("status.podIP")));
        assert!(needs_pod_ip(&with("status.podIPs")));
        assert!(!needs_pod_ip(&with("status.hostIP")));
        assert!(!needs_pod_ip(&with("metadata.name")));
        assert!(!needs_pod_ip(&Container::default()));
    }
}
