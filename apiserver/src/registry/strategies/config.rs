//! ConfigMap, Secret and ServiceAccount strategies: data key validation,
//! the 1 MiB size limit, typed Secret requirements and `immutable`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};

use super::validation::{invalid_all, is_config_map_key};
use crate::registry::{FieldError, FieldPath, Strategy};

pub struct ConfigMapStrategy;
pub struct SecretStrategy;
pub struct ServiceAccountStrategy;

/// `corev1.MaxSecretSize`, also the ConfigMap limit.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;
const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

fn validate_keys<'a>(keys: impl Iterator<Item = &'a String>, path: &FieldPath) -> Vec<FieldError> {
    keys.flat_map(|k| invalid_all(&path.key(k), k, is_config_map_key(k)))
        .collect()
}

fn immutable_errors(
    was_immutable: Option<bool>,
    now_immutable: Option<bool>,
    unchanged: &[(&str, bool)],
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if was_immutable != Some(true) {
        return errs;
    }
    if now_immutable != Some(true) {
        errs.push(FieldError::forbidden(
            &FieldPath::new("immutable"),
            IMMUTABLE_SET,
        ));
    }
    for (field, same) in unchanged {
        if !same {
            errs.push(FieldError::forbidden(&FieldPath::new(field), IMMUTABLE_SET));
        }
    }
    errs
}

fn validate_config_map(cm: &ConfigMap) -> Vec<FieldError> {
    let data_path = FieldPath::new("data");
    let binary_path = FieldPath::new("binaryData");
    let empty = BTreeMap::new();
    let data = cm.data.as_ref().unwrap_or(&empty);
    let mut errs = validate_keys(data.keys(), &data_path);
    let mut total: usize = data.values().map(String::len).sum();
    for (key, value) in cm.binary_data.iter().flatten() {
        errs.extend(invalid_all(
            &binary_path.key(key),
            key,
            is_config_map_key(key),
        ));
        if data.contains_key(key) {
            errs.push(FieldError::invalid(
                &binary_path.key(key),
                key,
                "duplicate of key present in data",
            ));
        }
        total += value.0.len();
    }
    if total > MAX_SECRET_SIZE {
        // Kubernetes reports the whole object, at the empty path.
        errs.push(FieldError::too_long(&FieldPath::new(""), MAX_SECRET_SIZE));
    }
    errs
}

impl Strategy for ConfigMapStrategy {
    type Object = ConfigMap;

    fn validate(&self, cm: &ConfigMap) -> Vec<FieldError> {
        validate_config_map(cm)
    }

    fn validate_update(&self, new: &ConfigMap, old: &ConfigMap) -> Vec<FieldError> {
        let mut errs = immutable_errors(
            old.immutable,
            new.immutable,
            &[
                ("data", new.data == old.data),
                ("binaryData", new.binary_data == old.binary_data),
            ],
        );
        errs.extend(validate_config_map(new));
        errs
    }
}

fn has_key(data: &BTreeMap<String, ByteString>, key: &str) -> bool {
    data.contains_key(key)
}

fn validate_secret(s: &Secret) -> Vec<FieldError> {
    let data_path = FieldPath::new("data");
    let empty = BTreeMap::new();
    let data = s.data.as_ref().unwrap_or(&empty);
    let mut errs = validate_keys(data.keys(), &data_path);
    let total: usize = data.values().map(|v| v.0.len()).sum();
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long(&data_path, MAX_SECRET_SIZE));
    }
    let required = |key: &str| FieldError::required(&data_path.key(key), "");
    match s.type_.as_deref().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let name = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .filter(|v| !v.is_empty());
            if name.is_none() {
                errs.push(FieldError::required(
                    &FieldPath::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        ty @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let key = if ty == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.get(key) {
                None => errs.push(required(key)),
                Some(bytes) => {
                    if let Err(e) = serde_json::from_slice::<
                        serde_json::Map<String, serde_json::Value>,
                    >(&bytes.0)
                    {
                        errs.push(FieldError::invalid(
                            &data_path.key(key),
                            "<secret contents redacted>",
                            &e.to_string(),
                        ));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" if !has_key(data, "username") && !has_key(data, "password") => {
            errs.push(required("username"));
            errs.push(required("password"));
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errs.push(required("ssh-privatekey"));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has_key(data, key) {
                    errs.push(required(key));
                }
            }
        }
        _ => {}
    }
    errs
}

impl Strategy for SecretStrategy {
    const FIELD_SOURCES: &'static [&'static str] = &["type"];

    type Object = Secret;

    /// `SetDefaults_Secret`, and the v1 conversion that folds the
    /// write-only `stringData` into `data` (stringData wins).
    fn default(&self, s: &mut Secret) {
        if s.type_.as_deref().unwrap_or("").is_empty() {
            s.type_ = Some("Opaque".to_string());
        }
        if let Some(string_data) = s.string_data.take() {
            let data = s.data.get_or_insert_with(BTreeMap::new);
            for (k, v) in string_data {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
    }

    fn validate(&self, s: &Secret) -> Vec<FieldError> {
        validate_secret(s)
    }

    fn validate_update(&self, new: &Secret, old: &Secret) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if new.type_ != old.type_ {
            errs.push(FieldError::invalid(
                &FieldPath::new("type"),
                new.type_.clone().unwrap_or_default(),
                "field is immutable",
            ));
        }
        errs.extend(immutable_errors(
            old.immutable,
            new.immutable,
            &[("data", new.data == old.data)],
        ));
        errs.extend(validate_secret(new));
        errs
    }

    fn selectable_fields(&self, s: &Secret) -> Vec<(&'static str, String)> {
        vec![("type", s.type_.clone().unwrap_or_default())]
    }
}

/// ServiceAccounts carry nothing beyond metadata that Kubernetes checks.
impl Strategy for ServiceAccountStrategy {
    type Object = ServiceAccount;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::strategies::testutil::{messages, meta};

    fn secret(ty: Option<&str>, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: meta("s"),
            type_: ty.map(str::to_string),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn secrets_default_to_opaque_and_fold_string_data_into_data() {
        let mut s = secret(None, &[("a", "1"), ("b", "2")]);
        s.string_data = Some([("b".to_string(), "3".to_string())].into());
        SecretStrategy.default(&mut s);
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(s.string_data, None);
        assert_eq!(
            s.data
                .as_ref()
                .and_then(|d| d.get("b"))
                .map(|b| b.0.clone()),
            Some(b"3".to_vec())
        );
        assert_eq!(
            SecretStrategy.selectable_fields(&s),
            vec![("type", "Opaque".to_string())]
        );
    }

    #[test]
    fn secret_validation_reports_kubernetes_messages() {
        let cases = [
            (
                secret(Some("Opaque"), &[("bad key", "x")]),
                "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ),
            (
                secret(Some("kubernetes.io/tls"), &[("tls.crt", "x")]),
                "data[tls.key]: Required value",
            ),
            (
                secret(Some("kubernetes.io/basic-auth"), &[]),
                "data[username]: Required value",
            ),
            (
                secret(Some("kubernetes.io/ssh-auth"), &[]),
                "data[ssh-privatekey]: Required value",
            ),
            (
                secret(Some("kubernetes.io/dockerconfigjson"), &[]),
                "data[.dockerconfigjson]: Required value",
            ),
            (
                secret(Some("kubernetes.io/service-account-token"), &[]),
                "metadata.annotations[kubernetes.io/service-account.name]: Required value",
            ),
            (
                secret(Some("Opaque"), &[("..a", "x")]),
                "data[..a]: Invalid value: \"..a\": must not start with '..'",
            ),
        ];
        for (s, want) in cases {
            let got = messages(&SecretStrategy.validate(&s));
            assert!(got.contains(&want.to_string()), "{want}: {got:#?}");
        }
        let big = "x".repeat(MAX_SECRET_SIZE + 1);
        let got = messages(&SecretStrategy.validate(&secret(Some("Opaque"), &[("k", &big)])));
        assert_eq!(
            got,
            vec!["data: Too long: may not be more than 1048576 bytes"]
        );
    }

    #[test]
    fn immutable_secrets_and_config_maps_refuse_changes() {
        let mut old = secret(Some("Opaque"), &[("a", "1")]);
        old.immutable = Some(true);
        let mut new = secret(
            Some("kubernetes.io/tls"),
            &[("a", "2"), ("tls.crt", ""), ("tls.key", "")],
        );
        new.immutable = Some(false);
        assert_eq!(
            messages(&SecretStrategy.validate_update(&new, &old)),
            vec![
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let old_cm = ConfigMap {
            metadata: meta("c"),
            immutable: Some(true),
            data: Some([("a".to_string(), "1".to_string())].into()),
            ..Default::default()
        };
        let mut new_cm = old_cm.clone();
        new_cm.data = Some([("a".to_string(), "2".to_string())].into());
        assert_eq!(
            messages(&ConfigMapStrategy.validate_update(&new_cm, &old_cm)),
            vec!["data: Forbidden: field is immutable when `immutable` is set"]
        );
    }

    #[test]
    fn config_map_keys_are_unique_across_data_and_binary_data_and_bounded_in_size() {
        let cm = ConfigMap {
            metadata: meta("c"),
            data: Some([("a".to_string(), "x".repeat(MAX_SECRET_SIZE))].into()),
            binary_data: Some([("a".to_string(), ByteString(vec![1]))].into()),
            ..Default::default()
        };
        assert_eq!(
            messages(&ConfigMapStrategy.validate(&cm)),
            vec![
                "binaryData[a]: Invalid value: \"a\": duplicate of key present in data",
                ": Too long: may not be more than 1048576 bytes",
            ]
        );
    }
}
