//! Images into containerd: the blobs of an image (from an OCI image
//! layout tarball here, or from a registry in [`crate::pull`]) go into
//! containerd's content store, get an image record, and are unpacked
//! layer by layer into overlayfs snapshots named by chain ID, as `ctr
//! import` and `ctr pull` do; both share [`install`]. A tarball's images
//! are named by their `io.containerd.image.name` (or a full
//! `org.opencontainers.image.ref.name`) annotation. Also the Docker-style
//! reference normalisation pods need (`busybox` is
//! `docker.io/library/busybox:latest`).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use containerd_client::types::Descriptor;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::runtime::{Runtime, RuntimeError};

/// Image label holding the chain ID of the unpacked top layer.
pub const UNPACKED_LABEL: &str = "ferrokube.io/unpacked.overlayfs";
/// Image label marking an image imported from a node-local archive: the
/// node's own copy, which the kubelet never pulls over.
pub const IMPORTED_LABEL: &str = "ferrokube.io/imported";
pub(crate) const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read image archive {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image archive has no {0}")]
    Missing(String),
    #[error("cannot parse {what}: {source}")]
    Parse {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("blob {path} does not match its digest {expected}")]
    DigestMismatch { path: String, expected: String },
    #[error("image archive names no image (no io.containerd.image.name annotation)")]
    Unnamed,
    #[error("no linux/{arch} manifest in index {digest}")]
    NoPlatform { digest: String, arch: String },
    #[error("image {image}: {layers} layers but {diff_ids} diff IDs")]
    LayerCount {
        image: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// An OCI content descriptor.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Desc {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Platform {
    architecture: String,
    os: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Index {
    pub manifests: Vec<Desc>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Manifest {
    pub config: Desc,
    pub layers: Vec<Desc>,
}

#[derive(Debug, Deserialize)]
struct Config {
    rootfs: RootFs,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

impl Desc {
    fn to_containerd(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            ..Descriptor::default()
        }
    }
}

/// Normalises an image reference the way Docker and the kubelet do.
pub fn normalize_reference(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let first = name.split('/').next().unwrap_or(name);
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if let Some(d) = digest {
        full.push('@');
        full.push_str(d);
    } else if !last.contains(':') {
        full.push_str(":latest");
    }
    full
}

/// chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(parent) => {
                let hash = Sha256::digest(format!("{parent} {diff_id}").as_bytes());
                format!("sha256:{}", hex::encode(hash))
            }
        };
        chain.push(next);
    }
    chain
}

/// Where a blob lives in an image layout (and in the blob maps here).
pub(crate) fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// This node's (linux, architecture) manifest of an index.
pub(crate) fn select_platform<'a>(index: &'a Index, digest: &str) -> Result<&'a Desc, ImageError> {
    let arch = crate::host::go_arch(std::env::consts::ARCH);
    index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_none_or(|p| p.os == "linux" && p.architecture == arch)
        })
        .ok_or_else(|| ImageError::NoPlatform {
            digest: digest.into(),
            arch: arch.into(),
        })
}

/// The archive's files by path. Images are read whole into memory: fine
/// for the small images a node imports, not for multi-gigabyte ones.
fn read_archive(reader: impl Read, path: &Path) -> Result<HashMap<String, Vec<u8>>, ImageError> {
    let io = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = tar::Archive::new(reader);
    let mut files = HashMap::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(io)?.to_string_lossy().into_owned();
        let name = name.trim_start_matches("./").to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(io)?;
        files.insert(name, data);
    }
    Ok(files)
}

fn blob<'a>(files: &'a HashMap<String, Vec<u8>>, digest: &str) -> Result<&'a Vec<u8>, ImageError> {
    let path = blob_path(digest);
    let data = files
        .get(&path)
        .ok_or_else(|| ImageError::Missing(path.clone()))?;
    let actual = format!("sha256:{}", hex::encode(Sha256::digest(data)));
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            path,
            expected: digest.into(),
        });
    }
    Ok(data)
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    data: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|source| ImageError::Parse {
        what: what.into(),
        source,
    })
}

/// The image name a top-level index entry carries, if any.
fn image_name(desc: &Desc) -> Option<String> {
    if let Some(name) = desc.annotations.get("io.containerd.image.name") {
        return Some(normalize_reference(name));
    }
    // A bare tag ("latest") names nothing on its own.
    let reference = desc.annotations.get("org.opencontainers.image.ref.name")?;
    (reference.contains('/') || reference.contains(':')).then(|| normalize_reference(reference))
}

/// Imports an OCI layout tarball; returns the image names it created.
pub async fn import_file(rt: &Runtime, path: &Path) -> Result<Vec<String>, ImageError> {
    let file = std::fs::File::open(path).map_err(|source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let files = read_archive(std::io::BufReader::new(file), path)?;
    let leased = rt.begin_lease("import").await?;
    let result = import_files(&leased, &files).await;
    if let Err(e) = leased.end_lease().await {
        tracing::warn!(error = %e, "cannot end import lease");
    }
    result
}

async fn import_files(
    rt: &Runtime,
    files: &HashMap<String, Vec<u8>>,
) -> Result<Vec<String>, ImageError> {
    let index: Index = parse(
        "index.json",
        files
            .get("index.json")
            .ok_or_else(|| ImageError::Missing("index.json".into()))?,
    )?;
    let mut names = Vec::new();
    for top in &index.manifests {
        let Some(name) = image_name(top) else {
            continue;
        };
        install(rt, files, &name, top).await?;
        rt.label_image(
            &name,
            HashMap::from([(IMPORTED_LABEL.to_string(), "true".to_string())]),
        )
        .await?;
        tracing::info!(image = %name, "imported image");
        names.push(name);
    }
    if names.is_empty() {
        return Err(ImageError::Unnamed);
    }
    Ok(names)
}

/// Stores the image whose index or manifest is `top` (its blobs by
/// [`blob_path`] in `files`; layers containerd already has may be
/// absent), unpacks it, and points the image record `name` at it.
/// Call under a lease so that nothing is collected half-way.
pub(crate) async fn install(
    rt: &Runtime,
    files: &HashMap<String, Vec<u8>>,
    name: &str,
    top: &Desc,
) -> Result<(), ImageError> {
    let manifest_desc = store_tree(rt, files, top).await?;
    let top_chain = unpack(rt, files, name, &manifest_desc).await?;
    rt.put_image(name, top.to_containerd()).await?;
    rt.label_image(
        name,
        HashMap::from([(UNPACKED_LABEL.to_string(), top_chain)]),
    )
    .await?;
    Ok(())
}

/// Writes the blobs reachable from `desc` (children first, each parent
/// with the `containerd.io/gc.ref.content.*` labels that keep its children
/// alive) and returns this platform's image manifest descriptor.
async fn store_tree(
    rt: &Runtime,
    files: &HashMap<String, Vec<u8>>,
    desc: &Desc,
) -> Result<Desc, ImageError> {
    let data = blob(files, &desc.digest)?;
    if INDEX_MEDIA_TYPES.contains(&desc.media_type.as_str()) {
        let index: Index = parse(&desc.digest, data)?;
        let chosen = select_platform(&index, &desc.digest)?;
        let manifest = Box::pin(store_tree(rt, files, chosen)).await?;
        let labels = HashMap::from([(
            "containerd.io/gc.ref.content.m.0".to_string(),
            chosen.digest.clone(),
        )]);
        rt.write_content(&desc.digest, data.clone(), labels).await?;
        return Ok(manifest);
    }
    let manifest: Manifest = parse(&desc.digest, data)?;
    let mut labels = HashMap::from([(
        "containerd.io/gc.ref.content.config".to_string(),
        manifest.config.digest.clone(),
    )]);
    for (i, layer) in manifest.layers.iter().enumerate() {
        // A pull does not fetch layers containerd already has.
        if !rt.content_exists(&layer.digest).await? {
            rt.write_content(
                &layer.digest,
                blob(files, &layer.digest)?.clone(),
                HashMap::new(),
            )
            .await?;
        }
        labels.insert(
            format!("containerd.io/gc.ref.content.l.{i}"),
            layer.digest.clone(),
        );
    }
    let config: Config = parse(
        &manifest.config.digest,
        blob(files, &manifest.config.digest)?,
    )?;
    let top_chain = chain_ids(&config.rootfs.diff_ids).pop().unwrap_or_default();
    // Keeps the unpacked snapshots alive for as long as the config is.
    let config_labels = HashMap::from([(
        "containerd.io/gc.ref.snapshot.overlayfs".to_string(),
        top_chain,
    )]);
    rt.write_content(
        &manifest.config.digest,
        blob(files, &manifest.config.digest)?.clone(),
        config_labels,
    )
    .await?;
    rt.write_content(&desc.digest, data.clone(), labels).await?;
    Ok(desc.clone())
}

/// Applies each layer onto a snapshot of its parent and commits it under
/// its chain ID; layers already unpacked are skipped. Returns the top
/// chain ID.
async fn unpack(
    rt: &Runtime,
    files: &HashMap<String, Vec<u8>>,
    image: &str,
    manifest_desc: &Desc,
) -> Result<String, ImageError> {
    let manifest: Manifest = parse(&manifest_desc.digest, blob(files, &manifest_desc.digest)?)?;
    let config: Config = parse(
        &manifest.config.digest,
        blob(files, &manifest.config.digest)?,
    )?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::LayerCount {
            image: image.into(),
            layers: manifest.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let chains = chain_ids(diff_ids);
    let mut parent = String::new();
    for (layer, chain) in manifest.layers.iter().zip(&chains) {
        if !rt.snapshot_exists(chain).await? {
            let key = format!("extract-{}-{chain}", std::process::id());
            let mounts = rt.prepare_snapshot(&key, &parent, HashMap::new()).await?;
            let applied = rt.apply_layer(layer.to_containerd(), mounts).await;
            if let Err(e) = applied {
                let _ = rt.remove_snapshot(&key).await;
                return Err(e.into());
            }
            rt.commit_snapshot(chain, &key).await?;
        }
        parent = chain.clone();
    }
    Ok(parent)
}

/// An image ready to run: its unpacked top snapshot and process defaults.
#[derive(Debug, Clone)]
pub struct LocalImage {
    pub name: String,
    pub top_chain: String,
    pub process: crate::spec::ImageProcess,
    /// Imported from a node-local archive ([`IMPORTED_LABEL`]).
    pub imported: bool,
}

#[derive(Debug, Deserialize)]
struct ConfigProcess {
    #[serde(default)]
    config: Option<crate::spec::ImageProcess>,
}

/// Finds an imported or pulled image by its normalised name; `None` if
/// containerd does not have it (unpacked).
pub async fn lookup(rt: &Runtime, name: &str) -> Result<Option<LocalImage>, ImageError> {
    let Some(image) = rt.get_image(name).await? else {
        return Ok(None);
    };
    let Some(top_chain) = image.labels.get(UNPACKED_LABEL).cloned() else {
        return Ok(None);
    };
    let imported = image
        .labels
        .get(IMPORTED_LABEL)
        .is_some_and(|v| v == "true");
    let Some(mut target) = image.target else {
        return Ok(None);
    };
    let mut data = rt.read_content(&target.digest).await?;
    if INDEX_MEDIA_TYPES.contains(&target.media_type.as_str()) {
        let index: Index = parse(&target.digest, &data)?;
        target = select_platform(&index, &target.digest)?.to_containerd();
        data = rt.read_content(&target.digest).await?;
    }
    let manifest: Manifest = parse(&target.digest, &data)?;
    let config_data = rt.read_content(&manifest.config.digest).await?;
    let config: ConfigProcess = parse(&manifest.config.digest, &config_data)?;
    Ok(Some(LocalImage {
        name: name.into(),
        top_chain,
        process: config.config.unwrap_or_default(),
        imported,
    }))
}

/// Imports every `*.tar` in `dir` (the kubelet's `DATA_DIR/images`); one
/// bad archive is logged and does not stop the others.
pub async fn import_dir(rt: &Runtime, dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "tar"))
        .collect();
    paths.sort();
    let mut names = Vec::new();
    for path in paths {
        match import_file(rt, &path).await {
            Ok(mut imported) => names.append(&mut imported),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "image import failed"),
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalised_like_docker() {
        for (input, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("foo/bar:v1", "docker.io/foo/bar:v1"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"),
        ] {
            assert_eq!(normalize_reference(input), want, "{input}");
        }
    }

    #[test]
    fn chain_ids_hash_each_parent_with_the_next_diff_id() {
        let ids = vec!["sha256:a".to_string(), "sha256:b".to_string()];
        let chain = chain_ids(&ids);
        assert_eq!(chain[0], "sha256:a");
        let want = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(b"sha256:a sha256:b"))
        );
        assert_eq!(chain[1], want);
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn bare_tag_annotations_name_no_image() {
        let desc = |k: &str, v: &str| Desc {
            media_type: String::new(),
            digest: String::new(),
            size: 0,
            annotations: HashMap::from([(k.to_string(), v.to_string())]),
            platform: None,
        };
        assert_eq!(
            image_name(&desc("org.opencontainers.image.ref.name", "latest")),
            None
        );
        assert_eq!(
            image_name(&desc("org.opencontainers.image.ref.name", "busybox:1")).as_deref(),
            Some("docker.io/library/busybox:1")
        );
        assert_eq!(
            image_name(&desc(
                "io.containerd.image.name",
                "docker.io/library/busybox:latest"
            ))
            .as_deref(),
            Some("docker.io/library/busybox:latest")
        );
    }
}
