//! Pod network namespaces as files, like `ip netns add`: a short-lived
//! thread unshares its network namespace and bind-mounts
//! `/proc/thread-self/ns/net` onto `DATA_DIR/netns/<pod-uid>`, which keeps
//! the namespace alive after the thread exits; removal unmounts and
//! deletes the file.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("netns {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("netns {path}: {op}: {source}")]
    Sys {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("netns {path}: the namespace thread panicked")]
    Thread { path: PathBuf },
}

/// Creates a new network namespace pinned at `path` (idempotent: an
/// existing pinned namespace is kept, so a restarted kubelet reuses it).
pub fn create(path: &Path) -> Result<(), NetnsError> {
    if is_pinned(path) {
        return Ok(());
    }
    let io = |source| NetnsError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::File::create(path).map_err(io)?;
    let target = path.to_path_buf();
    // unshare(CLONE_NEWNET) changes only the calling thread; a thread of
    // our own keeps the tokio workers in the host namespace.
    let handle = std::thread::spawn(move || -> Result<(), NetnsError> {
        let sys = |op| {
            let path = target.clone();
            move |source| NetnsError::Sys { path, op, source }
        };
        unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare"))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys("bind mount"))
    });
    let result = handle.join().map_err(|_| NetnsError::Thread {
        path: path.to_path_buf(),
    })?;
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Whether `path` has a namespace mounted on it (its device differs from
/// its directory's: nsfs).
pub fn is_pinned(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(file), Some(Ok(dir))) = (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) else {
        return false;
    };
    file.dev() != dir.dev()
}

/// Unmounts and deletes the namespace file; a missing one is removed.
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(source) => {
            return Err(NetnsError::Sys {
                path: path.to_path_buf(),
                op: "unmount",
                source,
            });
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_namespace_differs_from_ours_and_is_removed_cleanly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ns");
        match create(&path) {
            Ok(()) => {}
            // Not root: nothing to test here beyond the error shape.
            Err(NetnsError::Sys {
                source: nix::Error::EPERM,
                ..
            }) => return,
            Err(e) => panic!("create: {e}"),
        }
        assert!(is_pinned(&path));
        let ours = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        let theirs = std::fs::read_link("/proc/thread-self/ns/net").expect("thread netns");
        assert_eq!(ours, theirs, "the caller's thread stays in its namespace");
        create(&path).expect("create is idempotent");
        remove(&path).expect("remove");
        assert!(!path.exists());
        remove(&path).expect("remove twice");
    }
}
