//! Image pulls from OCI / Docker v2 registries (through `oci-client`):
//! resolve a tag or digest to a manifest (this node's linux manifest when
//! it is an index), fetch the config and the layers containerd does not
//! already have, and install them with [`crate::image::install`], the
//! path tarball imports take. Registries are spoken to over HTTPS, plain
//! HTTP only for those configured insecure (`--insecure-registry`).

use std::collections::HashMap;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

use crate::image::{self, Desc, ImageError, Index, Manifest};
use crate::runtime::Runtime;

/// What a registry may answer for a manifest request.
const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Between two reads of a response, not for the whole blob.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A username and password for one registry (from a pull secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    // Never log the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Messages read as containerd's (`failed to pull and unpack image …`),
/// which is what the kubelet shows in ErrImagePull.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("failed to pull and unpack image \"{image}\": invalid reference: {source}")]
    Reference {
        image: String,
        #[source]
        source: oci_client::ParseError,
    },
    #[error("failed to pull and unpack image \"{image}\": cannot create registry client: {source}")]
    Client {
        image: String,
        #[source]
        source: OciDistributionError,
    },
    #[error(
        "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {source}"
    )]
    Resolve {
        image: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("failed to pull and unpack image \"{image}\": failed to fetch {digest}: {source}")]
    Fetch {
        image: String,
        digest: String,
        #[source]
        source: OciDistributionError,
    },
    #[error("failed to pull and unpack image \"{image}\": {source}")]
    Image {
        image: String,
        #[source]
        source: ImageError,
    },
}

/// A finished pull.
#[derive(Debug, Clone, Copy)]
pub struct Pulled {
    /// Config plus (compressed) layers, as the CRI reports image size.
    pub size: u64,
}

/// The fields that tell a manifest from an index (`mediaType` is optional
/// in OCI documents).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kind {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

fn media_type_of(data: &[u8]) -> String {
    match serde_json::from_slice::<Kind>(data) {
        Ok(Kind {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Kind {
            manifests: Some(_), ..
        }) => MANIFEST_MEDIA_TYPES[0].into(),
        _ => MANIFEST_MEDIA_TYPES[2].into(),
    }
}

/// Pulls `image` (a normalised reference: `registry/repo:tag` or
/// `registry/repo@sha256:…`) into containerd under that name.
pub async fn pull(
    rt: &Runtime,
    image: &str,
    credential: Option<&Credential>,
    insecure: &[String],
) -> Result<Pulled, PullError> {
    let reference: Reference = image.parse().map_err(|source| PullError::Reference {
        image: image.into(),
        source,
    })?;
    // reqwest is built without a bundled provider; the kubelet uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A client per pull: oci-client keeps the first credentials it is given
    // for a registry, and pods differ in theirs.
    let config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
        platform_resolver: None,
        // Pulls are serialised per node: an unreachable registry must not
        // hold the others up for long.
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..ClientConfig::default()
    };
    let client = Client::try_from(config).map_err(|source| PullError::Client {
        image: image.into(),
        source,
    })?;
    let auth = match credential {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let resolve = |source| PullError::Resolve {
        image: image.into(),
        source,
    };
    let (data, digest) = client
        .pull_manifest_raw(&reference, &auth, &MANIFEST_MEDIA_TYPES)
        .await
        .map_err(resolve)?;
    let top = Desc {
        media_type: media_type_of(&data),
        digest: digest.clone(),
        size: data.len() as i64,
        annotations: HashMap::new(),
        platform: None,
    };
    let mut files = HashMap::from([(image::blob_path(&digest), data.to_vec())]);
    let image_err = |source| PullError::Image {
        image: image.into(),
        source,
    };
    let mut manifest_data = data.to_vec();
    if image::INDEX_MEDIA_TYPES.contains(&top.media_type.as_str()) {
        let index: Index = image::parse(&digest, &data).map_err(image_err)?;
        let chosen = image::select_platform(&index, &digest).map_err(image_err)?;
        let by_digest = reference.clone_with_digest(chosen.digest.clone());
        let (data, _) = client
            .pull_manifest_raw(&by_digest, &auth, &MANIFEST_MEDIA_TYPES)
            .await
            .map_err(resolve)?;
        manifest_data = data.to_vec();
        files.insert(image::blob_path(&chosen.digest), manifest_data.clone());
    }
    let manifest: Manifest = image::parse(&digest, &manifest_data).map_err(image_err)?;
    let mut size = manifest.config.size.max(0) as u64;
    for (i, desc) in std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .enumerate()
    {
        if i > 0 {
            size += desc.size.max(0) as u64;
            let present = rt
                .content_exists(&desc.digest)
                .await
                .map_err(|e| image_err(e.into()))?;
            if present {
                continue;
            }
        }
        let mut blob = Vec::with_capacity(desc.size.max(0) as usize);
        let layer = OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size,
            ..OciDescriptor::default()
        };
        client
            .pull_blob(&reference, &layer, &mut blob)
            .await
            .map_err(|source| PullError::Fetch {
                image: image.into(),
                digest: desc.digest.clone(),
                source,
            })?;
        files.insert(image::blob_path(&desc.digest), blob);
    }
    let leased = rt
        .begin_lease("pull")
        .await
        .map_err(|e| image_err(e.into()))?;
    let installed = image::install(&leased, &files, image, &top).await;
    if let Err(e) = leased.end_lease().await {
        tracing::warn!(error = %e, "cannot end pull lease");
    }
    installed.map_err(image_err)?;
    Ok(Pulled { size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_without_a_media_type_are_told_apart_by_their_manifests() {
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#),
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"config":{},"layers":[]}"#),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            media_type_of(
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            "application/vnd.docker.distribution.manifest.v2+json"
        );
    }

    #[test]
    fn credentials_do_not_print_their_password() {
        let c = Credential {
            username: "alice".into(),
            password: "s3cret".into(),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("s3cret"));
    }
}
