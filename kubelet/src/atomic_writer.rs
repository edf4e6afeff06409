//! Kubernetes' atomic writer (`pkg/volume/util/atomic_writer.go`) for
//! configMap, secret, downwardAPI and projected volumes: a container must
//! never see half an update, so each version of the files is written into
//! a fresh hidden directory `..<timestamp>`, the `..data` symlink is
//! swapped to it with one `rename(2)`, and the user-visible names are
//! symlinks through `..data` (`token -> ..data/token`). Old versions and
//! names that left the payload are removed afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path → content and mode.
pub type Payload = BTreeMap<String, FileProjection>;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid path {0:?}: must be relative, without '..' and not start with '..'")]
    BadPath(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Kubernetes' `validatePath`: relative, no `..` element, not hidden
/// behind a `..` prefix (which would collide with `..data`).
pub fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with("..")
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn first_component(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// What the current version holds, read back from disk.
fn current_payload(data_dir: &Path) -> Option<Payload> {
    fn walk(base: &Path, dir: &Path, out: &mut Payload) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(base, &path, out)?;
            } else {
                let rel = path
                    .strip_prefix(base)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.insert(
                    rel,
                    FileProjection {
                        data: std::fs::read(&path)?,
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
        Ok(())
    }
    let mut out = Payload::new();
    walk(data_dir, data_dir, &mut out).ok()?;
    Some(out)
}

fn timestamped_dir(target: &Path) -> Result<PathBuf, WriteError> {
    let now = jiff::Zoned::now();
    let stamp = now.strftime("%Y_%m_%d_%H_%M_%S").to_string();
    for attempt in 0u32..1000 {
        let name = format!("..{stamp}.{:09}", now.subsec_nanosecond() as u32 + attempt);
        let dir = target.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&dir)(e)),
        }
    }
    Err(io(target)(std::io::Error::from(
        std::io::ErrorKind::AlreadyExists,
    )))
}

/// Writes `payload` into `target` atomically; returns whether anything
/// changed. `gid` (the pod's fsGroup) owns the files when given.
pub fn write(target: &Path, payload: &Payload, gid: Option<u32>) -> Result<bool, WriteError> {
    for path in payload.keys() {
        if !valid_path(path) {
            return Err(WriteError::BadPath(path.clone()));
        }
    }
    std::fs::create_dir_all(target).map_err(io(target))?;
    let data_link = target.join(DATA);
    let old_dir = std::fs::read_link(&data_link)
        .ok()
        .map(|name| target.join(name));
    let old_payload = old_dir.as_deref().and_then(current_payload);
    if old_payload.as_ref() == Some(payload) {
        return Ok(false);
    }
    let new_dir = timestamped_dir(target)?;
    for (rel, file) in payload {
        let path = new_dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(&file.data).map_err(io(&path))?;
        // The umask may have narrowed the mode given at creation.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))
            .map_err(io(&path))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&path, None, Some(gid)).map_err(io(&path))?;
        }
    }
    std::fs::set_permissions(&new_dir, std::fs::Permissions::from_mode(0o755))
        .map_err(io(&new_dir))?;
    // User-visible names: one symlink per first path component.
    let visible: BTreeSet<&str> = payload.keys().map(|p| first_component(p)).collect();
    for name in &visible {
        let link = target.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA).join(name), &link).map_err(io(&link))?;
        }
    }
    let tmp_link = target.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp_link);
    let new_name = new_dir.file_name().map(PathBuf::from).unwrap_or_default();
    std::os::unix::fs::symlink(&new_name, &tmp_link).map_err(io(&tmp_link))?;
    std::fs::rename(&tmp_link, &data_link).map_err(io(&data_link))?;
    if let Some(old) = old_dir.filter(|o| *o != new_dir) {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    if let Some(old) = old_payload {
        for name in old.keys().map(|p| first_component(p)) {
            if !visible.contains(name) {
                let link = target.join(name);
                let _ = std::fs::remove_file(&link);
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(pairs: &[(&str, &str)]) -> Payload {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    FileProjection {
                        data: v.as_bytes().to_vec(),
                        mode: 0o644,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn files_are_reached_through_the_data_symlink_and_swapped_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("vol");
        assert!(write(&target, &payload(&[("a", "1"), ("sub/b", "2")]), None).expect("write"));
        assert_eq!(std::fs::read_to_string(target.join("a")).expect("a"), "1");
        assert_eq!(
            std::fs::read_to_string(target.join("sub/b")).expect("b"),
            "2"
        );
        assert_eq!(
            std::fs::read_link(target.join("a")).expect("link"),
            Path::new("..data/a")
        );
        let first = std::fs::read_link(target.join(DATA)).expect("..data");
        assert!(
            !write(&target, &payload(&[("a", "1"), ("sub/b", "2")]), None).expect("rewrite"),
            "an unchanged payload is not rewritten"
        );
        assert!(write(&target, &payload(&[("a", "3")]), None).expect("update"));
        let second = std::fs::read_link(target.join(DATA)).expect("..data");
        assert_ne!(first, second);
        assert!(!target.join(&first).exists(), "the old version is removed");
        assert_eq!(std::fs::read_to_string(target.join("a")).expect("a"), "3");
        assert!(
            std::fs::symlink_metadata(target.join("sub")).is_err(),
            "names that left the payload are removed"
        );
        assert!(!target.join(DATA_TMP).exists());
    }

    #[test]
    fn modes_are_kept_and_escaping_paths_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut p = payload(&[("secret", "x")]);
        p.get_mut("secret").expect("entry").mode = 0o400;
        write(dir.path(), &p, None).expect("write");
        let mode = std::fs::metadata(dir.path().join("secret"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        for bad in ["../x", "/abs", "..data", "a/../../b", ""] {
            assert!(
                matches!(
                    write(dir.path(), &payload(&[(bad, "x")]), None),
                    Err(WriteError::BadPath(_))
                ),
                "{bad}"
            );
        }
    }
}
