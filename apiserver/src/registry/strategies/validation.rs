//! TEMPORARY until the strategies branch lands.
use crate::registry::{FieldError, NameRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
pub fn validate_object_meta(
    _meta: &ObjectMeta,
    _namespaced: bool,
    _rule: NameRule,
) -> Vec<FieldError> {
    Vec::new()
}
