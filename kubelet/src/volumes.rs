//! Pod volumes on the node: `emptyDir` (a directory in the pod's dir),
//! `hostPath` (the host path, created for `DirectoryOrCreate`), and
//! `configMap`/`secret` (the object's keys written as files, `items`
//! honoured, fetched through the API), then each container's
//! `volumeMounts` as bind mounts (`subPath`, `readOnly`). Other volume
//! types (projected, downwardAPI, PVCs…) are not supported yet and are
//! reported as a container configuration error.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret, Volume};
use kube::{Api, Client};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume}: {path}: {source}")]
    Io {
        volume: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volume {volume}: cannot get {kind} {name}: {source}")]
    Fetch {
        volume: String,
        kind: &'static str,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("volume {volume}: {kind} {name} has no key {key}")]
    MissingKey {
        volume: String,
        kind: &'static str,
        name: String,
        key: String,
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

/// The files a configMap or secret volume holds: every key, or `items`.
pub fn files(
    volume: &str,
    kind: &'static str,
    name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    optional: bool,
) -> Result<Vec<(String, Vec<u8>)>, VolumeError> {
    let Some(items) = items else {
        return Ok(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    };
    let mut out = Vec::new();
    for item in items {
        if !relative_ok(&item.path) {
            return Err(VolumeError::BadPath {
                volume: volume.into(),
                path: item.path.clone(),
            });
        }
        match data.get(&item.key) {
            Some(value) => out.push((item.path.clone(), value.clone())),
            None if optional => {}
            None => {
                return Err(VolumeError::MissingKey {
                    volume: volume.into(),
                    kind,
                    name: name.into(),
                    key: item.key.clone(),
                });
            }
        }
    }
    Ok(out)
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

fn write_files(volume: &str, dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(io(volume, dir))?;
    for (path, data) in files {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(volume, parent))?;
        }
        std::fs::write(&target, data).map_err(io(volume, &target))?;
    }
    Ok(())
}

/// Prepares one volume under `pod_dir`; returns its host path.
async fn prepare(
    client: &Client,
    namespace: &str,
    pod_dir: &Path,
    volume: &Volume,
) -> Result<PathBuf, VolumeError> {
    let name = volume.name.as_str();
    if volume.empty_dir.is_some() {
        let dir = pod_dir.join("volumes/kubernetes.io~empty-dir").join(name);
        std::fs::create_dir_all(&dir).map_err(io(name, &dir))?;
        return Ok(dir);
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        if host.type_.as_deref() == Some("DirectoryOrCreate") {
            std::fs::create_dir_all(&path).map_err(io(name, &path))?;
        }
        return Ok(path);
    }
    if let Some(source) = &volume.config_map {
        let object = source.name.clone();
        let optional = source.optional.unwrap_or(false);
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let cm = api
            .get_opt(&object)
            .await
            .map_err(|source| VolumeError::Fetch {
                volume: name.into(),
                kind: "configmap",
                name: object.clone(),
                source: Box::new(source),
            })?;
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        if let Some(cm) = cm {
            for (k, v) in cm.data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            for (k, v) in cm.binary_data.unwrap_or_default() {
                data.insert(k, v.0);
            }
        } else if !optional {
            return Err(VolumeError::MissingKey {
                volume: name.into(),
                kind: "configmap",
                name: object,
                key: String::new(),
            });
        }
        let files = files(
            name,
            "configmap",
            &object,
            &data,
            source.items.as_deref(),
            optional,
        )?;
        let dir = pod_dir.join("volumes/kubernetes.io~configmap").join(name);
        write_files(name, &dir, &files)?;
        return Ok(dir);
    }
    if let Some(source) = &volume.secret {
        let object = source.secret_name.clone().unwrap_or_default();
        let optional = source.optional.unwrap_or(false);
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = api
            .get_opt(&object)
            .await
            .map_err(|source| VolumeError::Fetch {
                volume: name.into(),
                kind: "secret",
                name: object.clone(),
                source: Box::new(source),
            })?;
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        if let Some(secret) = secret {
            for (k, v) in secret.data.unwrap_or_default() {
                data.insert(k, v.0);
            }
            for (k, v) in secret.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
        } else if !optional {
            return Err(VolumeError::MissingKey {
                volume: name.into(),
                kind: "secret",
                name: object,
                key: String::new(),
            });
        }
        let files = files(
            name,
            "secret",
            &object,
            &data,
            source.items.as_deref(),
            optional,
        )?;
        let dir = pod_dir.join("volumes/kubernetes.io~secret").join(name);
        write_files(name, &dir, &files)?;
        return Ok(dir);
    }
    Err(VolumeError::Unsupported {
        volume: name.into(),
    })
}

/// The bind mounts of `container`, preparing the volumes it mounts.
pub async fn mounts(
    client: &Client,
    pod: &Pod,
    pod_dir: &Path,
    container: &Container,
) -> Result<Vec<BindMount>, VolumeError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    let mut out = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .and_then(|vs| vs.iter().find(|v| v.name == mount.name))
            .ok_or_else(|| VolumeError::NoVolume {
                mount: mount.name.clone(),
            })?;
        let mut source = prepare(client, &namespace, pod_dir, volume).await?;
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
            read_only: mount.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ])
    }

    fn item(key: &str, path: &str) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode: None,
        }
    }

    #[test]
    fn without_items_every_key_is_a_file() {
        let files = files("v", "configmap", "cm", &data(), None, false).expect("files");
        assert_eq!(
            files,
            vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
        );
    }

    #[test]
    fn items_pick_keys_and_paths_and_refuse_escapes() {
        let items = [item("b", "dir/b.txt")];
        let files = files("v", "configmap", "cm", &data(), Some(&items), false).expect("files");
        assert_eq!(files, vec![("dir/b.txt".into(), b"2".to_vec())]);
        let missing = [item("zz", "z")];
        assert!(matches!(
            files_err(&missing, false),
            Some(VolumeError::MissingKey { .. })
        ));
        assert!(
            files_err(&missing, true).is_none(),
            "optional objects skip missing keys"
        );
        let escape = [item("a", "../etc/passwd")];
        assert!(matches!(
            files_err(&escape, false),
            Some(VolumeError::BadPath { .. })
        ));
    }

    fn files_err(items: &[KeyToPath], optional: bool) -> Option<VolumeError> {
        files("v", "configmap", "cm", &data(), Some(items), optional).err()
    }
}
