//! The kubelet's service account token manager
//! (`pkg/kubelet/token/token_manager.go`): tokens for projected
//! `serviceAccountToken` sources come from the TokenRequest API
//! (`serviceaccounts/<name>/token`), bound to the pod, and are cached per
//! (service account, audience, lifetime, pod) so that every container of a
//! pod shares one; a token is due for refresh once 80% of its lifetime or
//! 24 h have passed, whichever is first.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::api::PostParams;
use kube::{Api, Client};

/// Kubernetes' default `expirationSeconds` of a projected token.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
const MAX_TOKEN_AGE_SECONDS: i64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("failed to fetch token: {source}")]
    Request {
        #[source]
        source: Box<kube::Error>,
    },
    #[error("failed to fetch token: the API server returned no token")]
    Empty,
}

/// A token and when it is due for refresh (seconds since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    pub token: String,
    pub refresh_at: i64,
}

/// When a token issued at `issued_at` and expiring at `expires_at` must be
/// replaced: `requiresRefresh`'s 80% of its lifetime, at most 24 h.
pub fn refresh_time(issued_at: i64, expires_at: i64) -> i64 {
    let ttl = (expires_at - issued_at).max(0);
    (issued_at + ttl * 8 / 10).min(issued_at + MAX_TOKEN_AGE_SECONDS)
}

type Key = (String, String, String, i64, String);

fn cache() -> &'static Mutex<HashMap<Key, Issued>> {
    // One cache per kubelet process, as the token manager is one per kubelet.
    static CACHE: OnceLock<Mutex<HashMap<Key, Issued>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The token for `projection` in `pod`, from the cache while fresh.
pub async fn request(
    client: &Client,
    pod: &Pod,
    projection: &ServiceAccountTokenProjection,
) -> Result<Issued, TokenError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let audience = projection.audience.clone().unwrap_or_default();
    let expiration = projection
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let key = (
        namespace.clone(),
        account.clone(),
        audience.clone(),
        expiration,
        pod_uid.clone(),
    );
    let now = jiff::Timestamp::now().as_second();
    if let Ok(cached) = cache().lock()
        && let Some(hit) = cached.get(&key)
        && hit.refresh_at > now
    {
        return Ok(hit.clone());
    }
    let request = TokenRequest {
        spec: TokenRequestSpec {
            // Empty audiences mean the API server's own.
            audiences: if audience.is_empty() {
                vec![]
            } else {
                vec![audience]
            },
            expiration_seconds: Some(expiration),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: Some(pod_uid),
            }),
        },
        ..TokenRequest::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    let answer = accounts
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .map_err(|source| TokenError::Request {
            source: Box::new(source),
        })?;
    let status = answer.status.ok_or(TokenError::Empty)?;
    if status.token.is_empty() {
        return Err(TokenError::Empty);
    }
    let issued = Issued {
        token: status.token,
        refresh_at: refresh_time(now, status.expiration_timestamp.0.as_second()),
    };
    if let Ok(mut cached) = cache().lock() {
        cached.retain(|_, v| v.refresh_at > now);
        cached.insert(key, issued.clone());
    }
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_refresh_at_eighty_percent_of_their_life_or_a_day() {
        assert_eq!(refresh_time(1000, 1000 + 3600), 1000 + 2880);
        assert_eq!(refresh_time(0, 365 * 24 * 3600), 24 * 3600);
        assert_eq!(refresh_time(50, 40), 50, "an expired token is due at once");
    }
}
