//! Registry credentials from a pod's `imagePullSecrets`: the
//! `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`, `{"auths":
//! {…}}`) and legacy `kubernetes.io/dockercfg` (`.dockercfg`) secrets,
//! read through the API, and which of their entries apply to an image —
//! the matching of Kubernetes' credential keyring (host, port and path
//! prefix; `*` globs a host label; the Docker Hub keys
//! `https://index.docker.io/v1/` and `index.docker.io` mean `docker.io`),
//! most specific key first.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{Api, Client};
use serde::Deserialize;

use crate::pull::Credential;

#[derive(Debug, Default, Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// base64(`username:password`).
    #[serde(default)]
    auth: Option<String>,
}

impl Entry {
    fn credential(&self) -> Option<Credential> {
        if let (Some(username), Some(password)) = (&self.username, &self.password)
            && !username.is_empty()
        {
            return Some(Credential {
                username: username.clone(),
                password: password.clone(),
            });
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth.as_deref()?.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (username, password) = decoded.split_once(':')?;
        Some(Credential {
            username: username.into(),
            password: password.into(),
        })
    }
}

/// Registry keys and their credentials, in the order found.
pub type Keyring = Vec<(String, Credential)>;

/// The entries of a secret's data; unknown types and bad JSON give none.
pub fn parse_secret(secret: &Secret) -> Keyring {
    let data = secret.data.as_ref();
    let entries: BTreeMap<String, Entry> = match secret.type_.as_deref().unwrap_or("") {
        "kubernetes.io/dockerconfigjson" => data
            .and_then(|d| d.get(".dockerconfigjson"))
            .and_then(|v| serde_json::from_slice::<DockerConfigJson>(&v.0).ok())
            .map(|c| c.auths)
            .unwrap_or_default(),
        "kubernetes.io/dockercfg" => data
            .and_then(|d| d.get(".dockercfg"))
            .and_then(|v| serde_json::from_slice(&v.0).ok())
            .unwrap_or_default(),
        _ => BTreeMap::new(),
    };
    entries
        .into_iter()
        .filter_map(|(key, entry)| Some((key, entry.credential()?)))
        .collect()
}

/// Reads the pod's pull secrets; returns the keyring and the names of the
/// secrets that could not be read.
pub async fn load(client: &Client, pod: &Pod) -> (Keyring, Vec<String>) {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut keyring = Vec::new();
    let mut missing = Vec::new();
    let names = pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
        .map(|r| r.name.clone());
    for name in names {
        match secrets.get_opt(&name).await {
            Ok(Some(secret)) => keyring.extend(parse_secret(&secret)),
            Ok(None) => missing.push(name),
            Err(e) => {
                tracing::warn!(secret = %name, error = %e, "cannot read image pull secret");
                missing.push(name);
            }
        }
    }
    (keyring, missing)
}

/// A key as host, port and path (`https://r.io:5000/team/` → `r.io`,
/// `5000`, `team`).
fn split_key(key: &str) -> (String, String, String) {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (authority, path) = key.split_once('/').unwrap_or((key, ""));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, p),
        _ => (authority, ""),
    };
    let mut host = host.to_ascii_lowercase();
    let mut path = path.trim_matches('/').to_string();
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        host = "docker.io".into();
        if path == "v1" || path == "v2" {
            path.clear();
        }
    }
    (host, port.into(), path)
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let (p, h): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), host.split('.').collect());
    p.len() == h.len() && p.iter().zip(&h).all(|(p, h)| *p == "*" || p == h)
}

/// The credentials that apply to `image` (normalised), most specific first.
pub fn matching(keyring: &Keyring, image: &str) -> Vec<Credential> {
    let name = image.split('@').next().unwrap_or(image);
    let (authority, repo) = name.split_once('/').unwrap_or((name, ""));
    // Drop the tag: the last path segment's `:…`.
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    let (host, port, _) = split_key(authority);
    let mut found: Vec<(usize, &Credential)> = keyring
        .iter()
        .filter_map(|(key, cred)| {
            let (k_host, k_port, k_path) = split_key(key);
            let path_ok =
                k_path.is_empty() || repo == k_path || repo.starts_with(&format!("{k_path}/"));
            (host_matches(&k_host, &host) && k_port == port && path_ok).then_some((key.len(), cred))
        })
        .collect();
    found.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
    let mut creds: Vec<Credential> = Vec::new();
    for (_, c) in found {
        if !creds.contains(c) {
            creds.push(c.clone());
        }
    }
    creds
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn cred(user: &str) -> Credential {
        Credential {
            username: user.into(),
            password: "pw".into(),
        }
    }

    fn secret(type_: &str, key: &str, json: &str) -> Secret {
        Secret {
            type_: Some(type_.into()),
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(json.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn dockerconfigjson_entries_give_username_and_password_or_decoded_auth() {
        // "bob:pa:ss" in base64: the password may contain colons.
        let json = r#"{"auths":{
            "127.0.0.1:5000":{"username":"alice","password":"pw"},
            "r.io":{"auth":"Ym9iOnBhOnNz"},
            "bad.io":{"auth":"!!"}}}"#;
        let keyring = parse_secret(&secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            json,
        ));
        assert_eq!(
            keyring,
            vec![
                ("127.0.0.1:5000".to_string(), cred("alice")),
                (
                    "r.io".to_string(),
                    Credential {
                        username: "bob".into(),
                        password: "pa:ss".into()
                    }
                ),
            ]
        );
    }

    #[test]
    fn legacy_dockercfg_and_other_secret_types() {
        let cfg = secret(
            "kubernetes.io/dockercfg",
            ".dockercfg",
            r#"{"r.io":{"username":"u","password":"pw"}}"#,
        );
        assert_eq!(parse_secret(&cfg), vec![("r.io".to_string(), cred("u"))]);
        let opaque = secret("Opaque", ".dockerconfigjson", r#"{"auths":{}}"#);
        assert!(parse_secret(&opaque).is_empty());
    }

    #[test]
    fn keys_match_host_port_and_path_prefix_most_specific_first() {
        let keyring: Keyring = vec![
            ("r.io".into(), cred("host")),
            ("https://r.io/team/".into(), cred("team")),
            ("r.io/other".into(), cred("other")),
            ("r.io:5000".into(), cred("port")),
            ("*.example.com".into(), cred("glob")),
            ("https://index.docker.io/v1/".into(), cred("hub")),
        ];
        let users = |image: &str| -> Vec<String> {
            matching(&keyring, image)
                .into_iter()
                .map(|c| c.username)
                .collect()
        };
        assert_eq!(users("r.io/team/app:v1"), ["team", "host"]);
        assert_eq!(users("r.io/teamster/app:v1"), ["host"]);
        assert_eq!(users("r.io:5000/app@sha256:ab"), ["port"]);
        assert_eq!(users("a.example.com/x:1"), ["glob"]);
        assert!(users("a.b.example.com/x:1").is_empty());
        assert_eq!(users("docker.io/library/busybox:latest"), ["hub"]);
        assert!(users("127.0.0.1:5000/test/busybox:v1").is_empty());
    }
}
