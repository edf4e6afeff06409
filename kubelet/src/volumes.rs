//! Pod volumes on the node, then each container's `volumeMounts` as bind
//! mounts (`subPath`, `readOnly`):
//! - `emptyDir`: a world-writable directory in the pod's dir (0777, as
//!   Kubernetes makes it), or a tmpfs for `medium: Memory` sized by
//!   `sizeLimit`;
//! - `hostPath` (created for `DirectoryOrCreate`);
//! - `configMap`, `secret`, `downwardAPI` and `projected` (service account
//!   token included): files written by the atomic writer, the token kept
//!   fresh by a refresher task;
//! - `persistentVolumeClaim`: the bound PersistentVolume's `hostPath` or
//!   `local.path`.
//!
//! `fsGroup` owns emptyDirs and projected files, as Kubernetes'
//! `SetVolumeOwnership` does.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::core::v1::{
    Container, PersistentVolume, PersistentVolumeClaim, Pod, ProjectedVolumeSource, Volume,
};
use kube::{Api, Client};

use crate::atomic_writer::{self, Payload};
use crate::projection::{self, DEFAULT_MODE, ProjectionError};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume}: {path}: {source}")]
    Io {
        volume: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Kubernetes' `MountVolume.SetUp failed` wording.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    Source {
        volume: String,
        #[source]
        source: ProjectionError,
    },
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    Write {
        volume: String,
        #[source]
        source: atomic_writer::WriteError,
    },
    #[error("volume {volume}: cannot get {kind} {name:?}: {source}")]
    Fetch {
        volume: String,
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("persistentvolumeclaim \"{claim}\" not found")]
    ClaimNotFound { claim: String },
    #[error("persistentvolumeclaim \"{claim}\" is not bound")]
    ClaimNotBound { claim: String },
    #[error("persistentvolume \"{volume}\" has no hostPath or local path")]
    NoLocalPath { volume: String },
    #[error("volume {volume}: invalid emptyDir sizeLimit {size:?}")]
    SizeLimit { volume: String, size: String },
    #[error("volume {volume}: cannot mount tmpfs at {path}: {source}")]
    Tmpfs {
        volume: String,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("volume {volume}: unsupported volume type")]
    Unsupported { volume: String },
    #[error("volume mount {mount}: no volume of that name")]
    NoVolume { mount: String },
    #[error("volume {volume}: path {path:?} must be relative without '..'")]
    BadPath { volume: String, path: String },
}

/// A bind mount into a container.
#[derive(Debug, Clone, PartialEq)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

fn relative_ok(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn io(volume: &str, path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
    let volume = volume.to_string();
    let path = path.to_path_buf();
    move |source| VolumeError::Io {
        volume,
        path,
        source,
    }
}

fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

/// Whether `path` is a mount point (its device differs from its parent's).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let (Ok(own), Some(Ok(parent))) = (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) else {
        return false;
    };
    own.dev() != parent.dev()
}

fn empty_dir(pod: &Pod, pod_dir: &Path, volume: &Volume) -> Result<PathBuf, VolumeError> {
    let name = volume.name.as_str();
    let dir = pod_dir.join("volumes/kubernetes.io~empty-dir").join(name);
    std::fs::create_dir_all(&dir).map_err(io(name, &dir))?;
    let source = volume.empty_dir.as_ref();
    if source.and_then(|s| s.medium.as_deref()) == Some("Memory") && !is_mount_point(&dir) {
        let mut options = String::from("mode=0777");
        if let Some(limit) = source.and_then(|s| s.size_limit.as_ref()) {
            let bytes =
                crate::quantity::memory_bytes(&limit.0).ok_or_else(|| VolumeError::SizeLimit {
                    volume: name.into(),
                    size: limit.0.clone(),
                })?;
            options.push_str(&format!(",size={bytes}"));
        }
        nix::mount::mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(options.as_str()),
        )
        .map_err(|source| VolumeError::Tmpfs {
            volume: name.into(),
            path: dir.clone(),
            source,
        })?;
    }
    // Every container user may write an emptyDir; fsGroup owns it (setgid).
    let mut mode = 0o777;
    if let Some(gid) = fs_group(pod) {
        std::os::unix::fs::chown(&dir, None, Some(gid)).map_err(io(name, &dir))?;
        mode |= 0o2000;
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
        .map_err(io(name, &dir))?;
    Ok(dir)
}

async fn persistent_claim(
    client: &Client,
    namespace: &str,
    volume: &Volume,
    claim: &str,
) -> Result<PathBuf, VolumeError> {
    let fetch = |kind, name: &str| {
        let volume = volume.name.clone();
        let name = name.to_string();
        move |source| VolumeError::Fetch {
            volume,
            kind,
            name,
            source: Box::new(source),
        }
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let pvc = claims
        .get_opt(claim)
        .await
        .map_err(fetch("persistentvolumeclaim", claim))?
        .ok_or_else(|| VolumeError::ClaimNotFound {
            claim: claim.into(),
        })?;
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let pv_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|n| bound && !n.is_empty())
        .ok_or_else(|| VolumeError::ClaimNotBound {
            claim: claim.into(),
        })?;
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes
        .get_opt(&pv_name)
        .await
        .map_err(fetch("persistentvolume", &pv_name))?
        .ok_or_else(|| VolumeError::ClaimNotBound {
            claim: claim.into(),
        })?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or_else(|| spec.local.map(|l| l.path))
        .ok_or(VolumeError::NoLocalPath { volume: pv_name })?;
    Ok(PathBuf::from(path))
}

/// Writes an API-backed volume's payload into `dir`.
fn write_payload(
    pod: &Pod,
    volume: &str,
    dir: &Path,
    payload: &Payload,
) -> Result<(), VolumeError> {
    atomic_writer::write(dir, payload, fs_group(pod)).map_err(|source| VolumeError::Write {
        volume: volume.into(),
        source,
    })?;
    Ok(())
}

/// Prepares one volume under `pod_dir`; returns its host path.
async fn prepare(
    client: &Client,
    pod: &Pod,
    pod_dir: &Path,
    volume: &Volume,
) -> Result<PathBuf, VolumeError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = volume.name.as_str();
    let source_err = |source| VolumeError::Source {
        volume: name.into(),
        source,
    };
    if volume.empty_dir.is_some() {
        return empty_dir(pod, pod_dir, volume);
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        if host.type_.as_deref() == Some("DirectoryOrCreate") {
            std::fs::create_dir_all(&path).map_err(io(name, &path))?;
        }
        return Ok(path);
    }
    if let Some(claim) = &volume.persistent_volume_claim {
        return persistent_claim(client, &namespace, volume, &claim.claim_name).await;
    }
    if let Some(source) = &volume.config_map {
        let data = projection::object_data(client, &namespace, "configmap", &source.name)
            .await
            .map_err(source_err)?;
        let payload = projection::key_files(
            "configmap",
            data.as_ref(),
            &source.name,
            source.items.as_deref(),
            source.optional.unwrap_or(false),
            source.default_mode.unwrap_or(DEFAULT_MODE),
        )
        .map_err(source_err)?;
        let dir = pod_dir.join("volumes/kubernetes.io~configmap").join(name);
        write_payload(pod, name, &dir, &payload)?;
        return Ok(dir);
    }
    if let Some(source) = &volume.secret {
        let object = source.secret_name.clone().unwrap_or_default();
        let data = projection::object_data(client, &namespace, "secret", &object)
            .await
            .map_err(source_err)?;
        let payload = projection::key_files(
            "secret",
            data.as_ref(),
            &object,
            source.items.as_deref(),
            source.optional.unwrap_or(false),
            source.default_mode.unwrap_or(DEFAULT_MODE),
        )
        .map_err(source_err)?;
        let dir = pod_dir.join("volumes/kubernetes.io~secret").join(name);
        write_payload(pod, name, &dir, &payload)?;
        return Ok(dir);
    }
    if let Some(source) = &volume.downward_api {
        let payload = projection::downward_files(
            pod,
            source.items.as_deref().unwrap_or_default(),
            source.default_mode.unwrap_or(DEFAULT_MODE),
        )
        .map_err(source_err)?;
        let dir = pod_dir
            .join("volumes/kubernetes.io~downward-api")
            .join(name);
        write_payload(pod, name, &dir, &payload)?;
        return Ok(dir);
    }
    if let Some(source) = &volume.projected {
        let dir = pod_dir.join("volumes/kubernetes.io~projected").join(name);
        let (payload, refresh_at) = projection::projected(client, pod, source)
            .await
            .map_err(source_err)?;
        write_payload(pod, name, &dir, &payload)?;
        if let Some(at) = refresh_at {
            spawn_refresher(
                client.clone(),
                pod.clone(),
                name.into(),
                source.clone(),
                dir.clone(),
                at,
            );
        }
        return Ok(dir);
    }
    Err(VolumeError::Unsupported {
        volume: name.into(),
    })
}

/// Keeps a projected volume's token fresh while the volume exists: one
/// task per volume directory per kubelet process.
fn spawn_refresher(
    client: Client,
    pod: Pod,
    volume: String,
    source: ProjectedVolumeSource,
    dir: PathBuf,
    mut refresh_at: i64,
) {
    static RUNNING: OnceLock<Mutex<BTreeSet<PathBuf>>> = OnceLock::new();
    let running = RUNNING.get_or_init(|| Mutex::new(BTreeSet::new()));
    let fresh = running.lock().is_ok_and(|mut set| set.insert(dir.clone()));
    if !fresh {
        return;
    }
    tokio::spawn(async move {
        loop {
            let wait = (refresh_at - jiff::Timestamp::now().as_second()).max(1) as u64;
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            // The pod's teardown removes the directory: stop with it.
            if !dir.join("..data").exists() {
                break;
            }
            match projection::projected(&client, &pod, &source).await {
                Ok((payload, next)) => {
                    if let Err(e) = write_payload(&pod, &volume, &dir, &payload) {
                        tracing::warn!(volume = %volume, error = %e, "cannot refresh projected volume");
                    }
                    refresh_at = next.unwrap_or(refresh_at + 60);
                }
                Err(e) => {
                    tracing::warn!(volume = %volume, error = %e, "cannot refresh service account token");
                    refresh_at = jiff::Timestamp::now().as_second() + 10;
                }
            }
        }
        if let Ok(mut set) = running.lock() {
            set.remove(&dir);
        }
    });
}

/// The bind mounts of `container`, preparing the volumes it mounts.
pub async fn mounts(
    client: &Client,
    pod: &Pod,
    pod_dir: &Path,
    container: &Container,
) -> Result<Vec<BindMount>, VolumeError> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    let mut out = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .and_then(|vs| vs.iter().find(|v| v.name == mount.name))
            .ok_or_else(|| VolumeError::NoVolume {
                mount: mount.name.clone(),
            })?;
        let mut source = prepare(client, pod, pod_dir, volume).await?;
        let claim_read_only = volume
            .persistent_volume_claim
            .as_ref()
            .and_then(|c| c.read_only)
            .unwrap_or(false);
        if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if !relative_ok(sub) {
                return Err(VolumeError::BadPath {
                    volume: volume.name.clone(),
                    path: sub.into(),
                });
            }
            source = source.join(sub);
            if !source.exists() {
                std::fs::create_dir_all(&source).map_err(io(&volume.name, &source))?;
            }
        }
        out.push(BindMount {
            source,
            destination: mount.mount_path.clone(),
            read_only: mount.read_only.unwrap_or(false) || claim_read_only,
        });
    }
    Ok(out)
}

/// Unmounts every mount under the pod's directory (memory-backed
/// emptyDirs), deepest first, so the directory can then be removed.
pub fn unmount_all(pod_dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = pod_dir.to_string_lossy().into_owned();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for target in targets {
        if let Err(e) = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = target, error = %e, "cannot unmount pod volume");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EmptyDirVolumeSource;

    #[test]
    fn empty_dirs_are_world_writable_and_owned_by_the_fs_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "securityContext": {"fsGroup": 2345}},
        }))
        .expect("pod");
        let volume = Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        };
        let path = empty_dir(&pod, dir.path(), &volume).expect("emptyDir");
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o2777);
        assert_eq!(meta.gid(), 2345);
        pod.spec.as_mut().expect("spec").security_context = None;
        let other = Volume {
            name: "other".into(),
            ..volume
        };
        let path = empty_dir(&pod, dir.path(), &other).expect("emptyDir");
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(meta.mode() & 0o7777, 0o777);
    }

    #[test]
    fn sub_paths_must_stay_inside_the_volume() {
        for (path, ok) in [("a/b", true), ("../x", false), ("/etc", false), ("", false)] {
            assert_eq!(relative_ok(path), ok, "{path}");
        }
    }
}
