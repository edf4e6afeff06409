//! The token half of Kubernetes' ServiceAccount admission plugin
//! (`plugin/pkg/admission/serviceaccount/admission.go`): unless the pod
//! opts out with `automountServiceAccountToken: false`, a projected volume
//! `kube-api-access-<5 random>` (a bound token, the cluster CA from the
//! `kube-root-ca.crt` ConfigMap, and the namespace) is added and mounted
//! read-only at `/var/run/secrets/kubernetes.io/serviceaccount` in every
//! container and init container that has nothing mounted there yet.
//!
//! Kubernetes also honours the ServiceAccount's own
//! `automountServiceAccountToken`; that needs a lookup the synchronous
//! strategy cannot make, so only the pod's field is honoured here.

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, Container, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath,
    ObjectFieldSelector, PodSpec, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use rand::Rng as _;

/// `DefaultAPITokenMountPath`.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// `ServiceAccountVolumeName`, the generated name's prefix.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// `WarnOnlyBoundTokenExpirationSeconds`: 1 h + 7 s, so the API server can
/// tell the kubelet's requests from others.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// `utilrand.String`'s alphabet (no vowels, no confusable characters).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `TokenVolumeSource()`.
pub fn token_volume_source() -> ProjectedVolumeSource {
    ProjectedVolumeSource {
        default_mode: Some(0o644),
        sources: Some(vec![
            VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    path: "token".into(),
                    expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                    audience: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: "kube-root-ca.crt".into(),
                    items: Some(vec![KeyToPath {
                        key: "ca.crt".into(),
                        path: "ca.crt".into(),
                        mode: None,
                    }]),
                    optional: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                downward_api: Some(DownwardAPIProjection {
                    items: Some(vec![DownwardAPIVolumeFile {
                        path: "namespace".into(),
                        field_ref: Some(ObjectFieldSelector {
                            api_version: Some("v1".into()),
                            field_path: "metadata.namespace".into(),
                        }),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            },
        ]),
    }
}

fn mounts_token_path(c: &Container) -> bool {
    c.volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == TOKEN_MOUNT_PATH)
}

/// Adds the token volume and its mounts, as the admission plugin's
/// `mountServiceAccountToken` does on create.
pub fn mount_service_account_token(spec: &mut PodSpec) {
    if spec.automount_service_account_token == Some(false) {
        return;
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let needing: usize = containers.filter(|c| !mounts_token_path(c)).count();
    if needing == 0 {
        return;
    }
    // Reuse a projected token volume the pod already carries (a pod
    // re-created from another pod's YAML), else add one.
    let existing = spec.volumes.iter().flatten().find(|v| {
        v.name.starts_with(VOLUME_PREFIX) && v.projected.as_ref() == Some(&token_volume_source())
    });
    let name = match existing {
        Some(v) => v.name.clone(),
        None => {
            let mut rng = rand::rng();
            let suffix: String = (0..5)
                .map(|_| ALPHANUMS[rng.random_range(0..ALPHANUMS.len())] as char)
                .collect();
            let name = format!("{VOLUME_PREFIX}{suffix}");
            spec.volumes.get_or_insert_with(Vec::new).push(Volume {
                name: name.clone(),
                projected: Some(token_volume_source()),
                ..Default::default()
            });
            name
        }
    };
    let mount = VolumeMount {
        name,
        mount_path: TOKEN_MOUNT_PATH.into(),
        read_only: Some(true),
        ..Default::default()
    };
    let all = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in all {
        if !mounts_token_path(c) {
            c.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(mount.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "a".into(),
                ..Default::default()
            }],
            init_containers: Some(vec![Container {
                name: "init".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn every_container_mounts_one_generated_token_volume() {
        let mut s = spec();
        mount_service_account_token(&mut s);
        let volumes = s.volumes.as_ref().expect("volumes");
        assert_eq!(volumes.len(), 1);
        let name = &volumes[0].name;
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert!(name[16..].bytes().all(|b| ALPHANUMS.contains(&b)));
        for c in s
            .containers
            .iter()
            .chain(s.init_containers.iter().flatten())
        {
            let m = &c.volume_mounts.as_ref().expect("mounts")[0];
            assert_eq!(&m.name, name);
            assert_eq!(m.mount_path, TOKEN_MOUNT_PATH);
            assert_eq!(m.read_only, Some(true));
        }
        let sources = volumes[0]
            .projected
            .as_ref()
            .and_then(|p| p.sources.as_ref())
            .expect("sources");
        assert_eq!(
            sources[0]
                .service_account_token
                .as_ref()
                .map(|t| t.expiration_seconds),
            Some(Some(3607))
        );
        mount_service_account_token(&mut s);
        assert_eq!(s.volumes.as_ref().map(Vec::len), Some(1), "idempotent");
    }

    #[test]
    fn opting_out_or_mounting_the_path_yourself_adds_nothing() {
        let mut s = spec();
        s.automount_service_account_token = Some(false);
        mount_service_account_token(&mut s);
        assert!(s.volumes.is_none());
        let mut s = spec();
        s.init_containers = None;
        s.containers[0].volume_mounts = Some(vec![VolumeMount {
            name: "mine".into(),
            mount_path: TOKEN_MOUNT_PATH.into(),
            ..Default::default()
        }]);
        mount_service_account_token(&mut s);
        assert!(s.volumes.is_none());
    }
}
