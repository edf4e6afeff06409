//! Pod spec defaults, as `pkg/apis/core/v1/defaults.go` applies them to
//! every `PodSpec` (pods and the templates of workloads) and, for pods
//! only, `SetDefaults_Pod`.

use k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, Pod, PodSpec,
    PodTemplateSpec, Probe, Volume,
};

/// `v1.DefaultTerminationGracePeriodSeconds`.
const DEFAULT_TERMINATION_GRACE_PERIOD: i64 = 30;
/// 0644, the default file mode of configMap/secret/downwardAPI/projected volumes.
const DEFAULT_MODE: i32 = 0o644;

fn set_if_none<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

fn set_if_empty(field: &mut Option<String>, value: &str) {
    if field.as_deref().unwrap_or("").is_empty() {
        *field = Some(value.to_string());
    }
}

/// `SetDefaults_Pod` plus everything below it.
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_requests_to_limits(c);
    }
    set_if_none(&mut spec.enable_service_links, true);
    if spec.host_network == Some(true) {
        default_host_network_ports(spec);
    }
    default_pod_spec(spec);
}

/// Pod templates get `SetDefaults_PodSpec` and the nested defaults, but not
/// `SetDefaults_Pod` (no requests from limits, no enableServiceLinks).
pub fn default_pod_template(template: &mut PodTemplateSpec) {
    default_pod_spec(template.spec.get_or_insert_with(Default::default));
}

/// A container's requests default to its limits for resources it only limits.
pub fn default_requests_to_limits(c: &mut Container) {
    let Some(resources) = c.resources.as_mut() else {
        return;
    };
    let Some(limits) = resources.limits.as_ref() else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    let requests = resources.requests.get_or_insert_with(Default::default);
    for (name, q) in limits {
        requests.entry(name.clone()).or_insert_with(|| q.clone());
    }
}

fn default_host_network_ports(spec: &mut PodSpec) {
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        for p in c.ports.iter_mut().flatten() {
            if p.host_port.unwrap_or(0) == 0 {
                p.host_port = Some(p.container_port);
            }
        }
    }
}

/// `SetDefaults_PodSpec` and the defaults of its containers and volumes.
pub fn default_pod_spec(spec: &mut PodSpec) {
    set_if_empty(&mut spec.dns_policy, "ClusterFirst");
    set_if_empty(&mut spec.restart_policy, "Always");
    set_if_none(&mut spec.security_context, Default::default());
    set_if_none(
        &mut spec.termination_grace_period_seconds,
        DEFAULT_TERMINATION_GRACE_PERIOD,
    );
    set_if_empty(&mut spec.scheduler_name, "default-scheduler");
    // The v1 conversion keeps the deprecated `serviceAccount` in step with
    // `serviceAccountName`, the latter winning.
    if spec
        .service_account_name
        .as_deref()
        .unwrap_or("")
        .is_empty()
        && let Some(sa) = spec.service_account.clone().filter(|s| !s.is_empty())
    {
        spec.service_account_name = Some(sa);
    }
    if let Some(name) = spec.service_account_name.clone().filter(|s| !s.is_empty()) {
        spec.service_account = Some(name);
    }
    for c in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        default_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

/// `parsers.ParseImageName`'s tag: `latest` when neither tag nor digest.
fn image_tag(image: &str) -> Option<&str> {
    if image.is_empty() {
        return None;
    }
    let (name, has_digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => Some(tag),
        None if has_digest => None,
        None => Some("latest"),
    }
}

/// `SetDefaults_Container` plus ports and probes.
pub fn default_container(c: &mut Container) {
    if c.image_pull_policy.as_deref().unwrap_or("").is_empty() {
        let tag = image_tag(c.image.as_deref().unwrap_or(""));
        let policy = if tag == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.image_pull_policy = Some(policy.to_string());
    }
    set_if_empty(&mut c.termination_message_path, "/dev/termination-log");
    set_if_empty(&mut c.termination_message_policy, "File");
    // Kubernetes' ResourceRequirements is a struct, not a pointer: every
    // container has `resources: {}` at least, and its creator owns it.
    c.resources.get_or_insert_with(Default::default);
    for p in c.ports.iter_mut().flatten() {
        set_if_empty(&mut p.protocol, "TCP");
    }
    for probe in [
        c.liveness_probe.as_mut(),
        c.readiness_probe.as_mut(),
        c.startup_probe.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lifecycle) = c.lifecycle.as_mut() {
        for handler in [lifecycle.post_start.as_mut(), lifecycle.pre_stop.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(h) = handler.http_get.as_mut() {
                default_http_get(h);
            }
        }
    }
    for env in c.env.iter_mut().flatten() {
        if let Some(f) = env.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            default_field_selector(f);
        }
    }
}

fn default_probe(p: &mut Probe) {
    set_if_none(&mut p.timeout_seconds, 1);
    set_if_none(&mut p.period_seconds, 10);
    set_if_none(&mut p.success_threshold, 1);
    set_if_none(&mut p.failure_threshold, 3);
    if let Some(h) = p.http_get.as_mut() {
        default_http_get(h);
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    set_if_empty(&mut h.path, "/");
    set_if_empty(&mut h.scheme, "HTTP");
}

fn default_field_selector(f: &mut ObjectFieldSelector) {
    set_if_empty(&mut f.api_version, "v1");
}

fn has_source(v: &mut Volume) -> bool {
    // Compared without its name, which is set aside rather than cloning
    // the whole volume.
    let name = std::mem::take(&mut v.name);
    let has = *v != Volume::default();
    v.name = name;
    has
}

/// `SetDefaults_Volume` and the per-source defaults.
pub fn default_volume(v: &mut Volume) {
    if !has_source(v) {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = v.config_map.as_mut() {
        set_if_none(&mut s.default_mode, DEFAULT_MODE);
    }
    if let Some(s) = v.secret.as_mut() {
        set_if_none(&mut s.default_mode, DEFAULT_MODE);
    }
    if let Some(s) = v.downward_api.as_mut() {
        set_if_none(&mut s.default_mode, DEFAULT_MODE);
        for item in s.items.iter_mut().flatten() {
            if let Some(f) = item.field_ref.as_mut() {
                default_field_selector(f);
            }
        }
    }
    if let Some(s) = v.projected.as_mut() {
        set_if_none(&mut s.default_mode, DEFAULT_MODE);
        for source in s.sources.iter_mut().flatten() {
            if let Some(t) = source.service_account_token.as_mut() {
                set_if_none(&mut t.expiration_seconds, 3600);
            }
            if let Some(d) = source.downward_api.as_mut() {
                for item in d.items.iter_mut().flatten() {
                    if let Some(f) = item.field_ref.as_mut() {
                        default_field_selector(f);
                    }
                }
            }
        }
    }
    if let Some(s) = v.host_path.as_mut() {
        set_if_none(&mut s.type_, String::new());
    }
    if let Some(s) = v.iscsi.as_mut() {
        set_if_empty(&mut s.iscsi_interface, "default");
    }
    if let Some(s) = v.rbd.as_mut() {
        set_if_empty(&mut s.pool, "rbd");
        set_if_empty(&mut s.user, "admin");
        set_if_empty(&mut s.keyring, "/etc/ceph/keyring");
    }
    if let Some(s) = v.azure_disk.as_mut() {
        set_if_empty(&mut s.caching_mode, "ReadWrite");
        set_if_empty(&mut s.fs_type, "ext4");
        set_if_none(&mut s.read_only, false);
        set_if_empty(&mut s.kind, "Shared");
    }
    if let Some(s) = v.scale_io.as_mut() {
        set_if_empty(&mut s.storage_mode, "ThinProvisioned");
        set_if_empty(&mut s.fs_type, "xfs");
    }
}

/// `SetDefaults_PersistentVolumeClaim` as applied to StatefulSet claim
/// templates: volumeMode Filesystem and a Pending status.
pub fn default_pvc(pvc: &mut PersistentVolumeClaim) {
    let spec = pvc.spec.get_or_insert_with(Default::default);
    set_if_empty(&mut spec.volume_mode, "Filesystem");
    let status = pvc.status.get_or_insert_with(Default::default);
    set_if_empty(&mut status.phase, "Pending");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_policy_follows_the_tag() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:1.0", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("", "IfNotPresent"),
        ];
        for (image, want) in cases {
            let mut c = Container {
                image: Some(image.to_string()),
                ..Default::default()
            };
            default_container(&mut c);
            assert_eq!(c.image_pull_policy.as_deref(), Some(want), "{image}");
        }
    }

    #[test]
    fn a_volume_without_a_source_becomes_an_empty_dir() {
        let mut v = Volume {
            name: "data".into(),
            ..Default::default()
        };
        default_volume(&mut v);
        assert!(v.empty_dir.is_some());
        let mut cm = Volume {
            name: "cfg".into(),
            config_map: Some(Default::default()),
            ..Default::default()
        };
        default_volume(&mut cm);
        assert!(cm.empty_dir.is_none());
        assert_eq!(cm.config_map.and_then(|c| c.default_mode), Some(420));
    }
}
