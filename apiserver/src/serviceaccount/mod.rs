//! Service accounts beyond their storage: the `serviceaccounts/<name>/token`
//! subresource (TokenRequest, `authentication.k8s.io/v1`) that issues bound
//! tokens, as Kubernetes' `pkg/registry/core/serviceaccount/storage/token.go`
//! does: the service account must exist, a `boundObjectRef` pod must exist
//! with the given uid, the lifetime is at least 10 minutes (default 1 h),
//! and the audiences default to the API server's own.

pub mod token;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::registry::rest::Registry;
pub use token::{ISSUER, TokenClaims, TokenError, TokenSigner};

/// Kubernetes' default and minimum TokenRequest lifetimes.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

type Registries = HashMap<(&'static str, &'static str, &'static str), Arc<dyn Registry>>;

fn invalid(name: &str, field: &str, value: &Value, detail: &str) -> ApiError {
    let mut e = ApiError::unprocessable(format!(
        "TokenRequest.authentication.k8s.io \"{name}\" is invalid: {field}: Invalid value: {value}: {detail}"
    ));
    e.details = Some(json!({
        "name": name, "group": "authentication.k8s.io", "kind": "TokenRequest",
        "causes": [{"reason": "FieldValueInvalid", "message": format!("Invalid value: {value}: {detail}"), "field": field}],
    }));
    e
}

/// `POST serviceaccounts/<name>/token`: the TokenRequest with its status.
pub async fn create_token(
    registries: &Registries,
    signer: &TokenSigner,
    namespace: &str,
    name: &str,
    request: Value,
) -> Result<Value, ApiError> {
    let accounts = registries
        .get(&("", "v1", "serviceaccounts"))
        .ok_or_else(|| ApiError::bad_request("serviceaccounts are not served"))?;
    let account = accounts.get(Some(namespace), name, None).await?;
    let spec = &request["spec"];
    let expiration = match &spec["expirationSeconds"] {
        Value::Null => DEFAULT_EXPIRATION_SECONDS,
        v => v.as_i64().ok_or_else(|| {
            invalid(
                name,
                "spec.expirationSeconds",
                v,
                "must be an integer number of seconds",
            )
        })?,
    };
    if expiration < MIN_EXPIRATION_SECONDS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION_SECONDS {
        return Err(invalid(
            name,
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let audiences: Vec<String> = spec["audiences"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![ISSUER.to_string()]);
    let bound = &spec["boundObjectRef"];
    let pod = match bound["kind"].as_str() {
        None => None,
        Some("Pod") => {
            let pod_name = bound["name"].as_str().unwrap_or_default();
            let pods = registries
                .get(&("", "v1", "pods"))
                .ok_or_else(|| ApiError::bad_request("pods are not served"))?;
            let object = pods.get(Some(namespace), pod_name, None).await?;
            let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
            if let Some(want) = bound["uid"].as_str().filter(|u| !u.is_empty())
                && want != uid
            {
                return Err(ApiError::conflict_msg(
                    pods.info(),
                    pod_name,
                    &format!(
                        "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                    ),
                ));
            }
            Some((pod_name.to_string(), uid.to_string()))
        }
        Some(other) => {
            return Err(invalid(
                name,
                "spec.boundObjectRef.kind",
                &json!(other),
                "supported values: \"Pod\"",
            ));
        }
    };
    let now = jiff::Timestamp::now().as_second();
    let claims = TokenClaims {
        namespace: namespace.to_string(),
        service_account: name.to_string(),
        service_account_uid: account["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        audiences: audiences.clone(),
        issued_at: now,
        expiration_seconds: expiration,
        pod,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let token = signer
        .sign(&claims)
        .map_err(|e| ApiError::bad_request(format!("cannot sign the token: {e}")))?;
    let expires = jiff::Timestamp::from_second(claims.expires_at())
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut spec_out = json!({"audiences": audiences, "expirationSeconds": expiration});
    if !bound.is_null() {
        spec_out["boundObjectRef"] = bound.clone();
    }
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": null},
        "spec": spec_out,
        "status": {"token": token, "expirationTimestamp": expires},
    }))
}
