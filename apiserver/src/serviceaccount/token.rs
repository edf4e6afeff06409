//! Service account tokens: ES256 (ECDSA P-256, SHA-256) JSON Web Tokens
//! with the claims Kubernetes' bound tokens carry (`iss`, `sub`, `aud`,
//! `exp`, `iat`, `nbf`, `jti` and the private `kubernetes.io` claim naming
//! the namespace, service account and bound pod), signed by a key the API
//! server keeps in its data directory (`--service-account-key-file` and
//! `--service-account-signing-key-file` in Kubernetes; one key here).
//!
//! The key is a PKCS#8 `PRIVATE KEY` PEM file, created on first start with
//! mode 0600; its public half verifies tokens ([`TokenSigner::verify`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

/// The issuer (and default audience) of the tokens, as kubeadm and k3s
/// configure `--service-account-issuer`.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const PEM_LABEL: &str = "PRIVATE KEY";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("service account key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("service account key {path}: not a PKCS#8 P-256 private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("cannot generate or use the service account key")]
    Crypto,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token signature does not verify")]
    BadSignature,
}

/// Signs and verifies service account tokens with one P-256 key.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    /// The JWS `kid`: base64url SHA-256 of the public key, as Kubernetes
    /// derives it from the key's DER form.
    kid: String,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What one token says.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenClaims {
    pub namespace: String,
    pub service_account: String,
    pub service_account_uid: String,
    pub audiences: Vec<String>,
    /// Seconds since the epoch.
    pub issued_at: i64,
    pub expiration_seconds: i64,
    /// The pod the token is bound to: name and uid.
    pub pod: Option<(String, String)>,
    pub jti: String,
}

impl TokenClaims {
    pub fn expires_at(&self) -> i64 {
        self.issued_at + self.expiration_seconds
    }

    fn to_json(&self) -> Value {
        let mut kubernetes = json!({
            "namespace": self.namespace,
            "serviceaccount": {"name": self.service_account, "uid": self.service_account_uid},
        });
        if let Some((name, uid)) = &self.pod {
            kubernetes["pod"] = json!({"name": name, "uid": uid});
        }
        json!({
            "aud": self.audiences,
            "exp": self.expires_at(),
            "iat": self.issued_at,
            "iss": ISSUER,
            "jti": self.jti,
            "kubernetes.io": kubernetes,
            "nbf": self.issued_at,
            "sub": format!("system:serviceaccount:{}:{}", self.namespace, self.service_account),
        })
    }
}

fn to_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {PEM_LABEL}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    out
}

fn from_pem(text: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = text[start..].find(&end)? + start;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

impl TokenSigner {
    fn from_pkcs8(pkcs8: Vec<u8>) -> Result<TokenSigner, ring::error::KeyRejected> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        Ok(TokenSigner {
            kid: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            key,
            pkcs8,
            rng,
        })
    }

    /// A signer with a fresh key that lives only in memory.
    pub fn ephemeral() -> Result<TokenSigner, TokenError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| TokenError::Crypto)?;
        TokenSigner::from_pkcs8(doc.as_ref().to_vec()).map_err(|_| TokenError::Crypto)
    }

    /// Loads the key at `path`, creating it (mode 0600) if absent.
    pub fn load_or_create(path: &Path) -> Result<TokenSigner, TokenError> {
        let io = |source| TokenError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let der = from_pem(&text).ok_or_else(|| TokenError::BadKey {
                    path: path.to_path_buf(),
                    reason: format!("no {PEM_LABEL} PEM block"),
                })?;
                TokenSigner::from_pkcs8(der).map_err(|e| TokenError::BadKey {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let signer = TokenSigner::ephemeral()?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                // Written aside and renamed so a crash never leaves half a key.
                let tmp = path.with_extension("tmp");
                let mut file = {
                    use std::os::unix::fs::OpenOptionsExt as _;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&tmp)
                        .map_err(io)?
                };
                file.write_all(to_pem(&signer.pkcs8).as_bytes())
                    .map_err(io)?;
                file.sync_all().map_err(io)?;
                std::fs::rename(&tmp, path).map_err(io)?;
                Ok(signer)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The uncompressed public point (65 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The signed compact JWS of `claims`.
    pub fn sign(&self, claims: &TokenClaims) -> Result<String, TokenError> {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_json().to_string())
        );
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| TokenError::Crypto)?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// Checks the signature of `token` against this key and returns its
    /// claims (expiry is the caller's to judge).
    pub fn verify(&self, token: &str) -> Result<Value, TokenError> {
        verify_with(self.public_key(), token)
    }
}

/// Verifies an ES256 token against an uncompressed P-256 public key.
pub fn verify_with(public_key: &[u8], token: &str) -> Result<Value, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let header: Value = decode(header)
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(TokenError::Malformed("bad header"))?;
    if header["alg"] != "ES256" {
        return Err(TokenError::Malformed("alg is not ES256"));
    }
    let signature = decode(signature).ok_or(TokenError::Malformed("bad signature encoding"))?;
    let signed = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;
    decode(payload)
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or(TokenError::Malformed("bad payload"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            namespace: "default".into(),
            service_account: "default".into(),
            service_account_uid: "sa-uid".into(),
            audiences: vec![ISSUER.into()],
            issued_at: 1_700_000_000,
            expiration_seconds: 3600,
            pod: Some(("p".into(), "pod-uid".into())),
            jti: "j".into(),
        }
    }

    #[test]
    fn tokens_verify_with_the_signing_key_only() {
        let signer = TokenSigner::ephemeral().expect("signer");
        let token = signer.sign(&claims()).expect("sign");
        let payload = signer.verify(&token).expect("verifies");
        assert_eq!(payload["sub"], "system:serviceaccount:default:default");
        assert_eq!(payload["exp"], 1_700_003_600);
        assert_eq!(payload["kubernetes.io"]["pod"]["uid"], "pod-uid");
        assert_eq!(payload["iss"], ISSUER);
        let other = TokenSigner::ephemeral().expect("signer");
        assert!(matches!(
            other.verify(&token),
            Err(TokenError::BadSignature)
        ));
        let mut tampered = token.clone();
        tampered.insert(token.find('.').expect("dot") + 2, 'x');
        assert!(signer.verify(&tampered).is_err());
    }

    #[test]
    fn the_key_survives_a_restart_in_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pki/sa.key");
        let first = TokenSigner::load_or_create(&path).expect("create");
        let second = TokenSigner::load_or_create(&path).expect("load");
        assert_eq!(first.public_key(), second.public_key());
        assert_eq!(first.key_id(), second.key_id());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = first.sign(&claims()).expect("sign");
        second.verify(&token).expect("verifies after reload");
        std::fs::write(&path, "garbage").expect("write");
        assert!(matches!(
            TokenSigner::load_or_create(&path),
            Err(TokenError::BadKey { .. })
        ));
    }
}
