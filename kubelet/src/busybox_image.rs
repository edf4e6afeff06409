//! A real single-layer OCI image layout tarball built from the host's
//! static busybox (`bin/busybox` plus `bin/sh`, `bin/sleep`… symlinks):
//! `ferrokube image busybox` seeds an offline node with it (so the
//! example manifests run with no registry), and the kubelet and
//! end-to-end tests run their containers from it.

use std::io::Write;
use std::path::Path;

use serde_json::json;
use sha2::{Digest as _, Sha256};

/// The applets the image links to busybox.
pub const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "cat", "ls", "true", "false", "env", "id", "hostname", "ps", "kill",
    "wget", "ip", "head", "tr", "dd", "nc", "httpd", "tty", "seq", "date", "tail", "bc", "mkdir",
    "grep", "sed", "rm", "touch", "printf", "cp", "mv", "wc", "sort", "uname", "nslookup", "ping",
];

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    data: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, path, data)
}

fn append_dir(builder: &mut tar::Builder<Vec<u8>>, path: &str) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Directory);
    builder.append_data(&mut header, path, std::io::empty())
}

/// The layer: directories, `bin/busybox`, and applet symlinks.
pub fn busybox_layer(busybox: &Path) -> std::io::Result<Vec<u8>> {
    let binary = std::fs::read(busybox)?;
    let mut layer = tar::Builder::new(Vec::new());
    for dir in ["bin/", "dev/", "etc/", "proc/", "sys/", "tmp/", "root/"] {
        append_dir(&mut layer, dir)?;
    }
    append(&mut layer, "bin/busybox", &binary, 0o755)?;
    for applet in APPLETS {
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_mode(0o777);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Symlink);
        layer.append_link(&mut header, format!("bin/{applet}"), "busybox")?;
    }
    layer.into_inner()
}

/// Writes an OCI image layout tarball for `name` (e.g.
/// `docker.io/library/busybox:latest`) to `out`.
pub fn write_busybox_image(busybox: &Path, name: &str, out: &Path) -> std::io::Result<()> {
    let layer = busybox_layer(busybox)?;
    let layer_digest = digest(&layer);
    let arch = crate::host::go_arch(std::env::consts::ARCH);
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest),
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": name.rsplit(':').next().unwrap_or("latest"),
            },
        }],
    }))?;
    let mut archive = tar::Builder::new(Vec::new());
    append(
        &mut archive,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    )?;
    append(&mut archive, "index.json", &index, 0o644)?;
    for blob in [&layer, &config, &manifest] {
        let path = format!("blobs/{}", digest(blob).replacen(':', "/", 1));
        append(&mut archive, &path, blob, 0o644)?;
    }
    let bytes = archive.into_inner()?;
    std::fs::File::create(out)?.write_all(&bytes)
}
