//! The shape of the generated protobuf schema ([`super::schema_gen`]): one
//! [`Message`] per Kubernetes type, each field with its tag, JSON name and
//! what the Go struct says about zero values and inlining.

use super::schema_gen::MESSAGES;

/// The type of a field's values (a map field's value type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Bytes,
    Bool,
    I32,
    I64,
    F64,
    /// A message, by its OpenAPI name (`io.k8s.api.core.v1.Container`).
    Msg(&'static str),
}

/// How many values a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    One,
    Many,
    /// `map<string, Ty>`: entries are messages `{1: key, 2: value}`.
    Map,
}

/// One field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub tag: u32,
    /// The JSON name, from the Go struct's `json:` tag.
    pub json: &'static str,
    pub ty: Ty,
    pub card: Card,
    /// gogo-protobuf writes every non-pointer scalar, zero or not, so a zero
    /// on the wire usually means "unset" and kubectl's JSON would have
    /// omitted it (`omitempty`). It is a real value when the Go field is a
    /// pointer (`replicas: 0`) or has no `omitempty`.
    pub keep_zero: bool,
    /// An embedded Go struct whose fields JSON flattens into the parent
    /// (`Volume.VolumeSource`), while protobuf nests it.
    pub inline: bool,
}

/// Builds a [`Field`]; the generated table's shorthand.
pub const fn f(
    tag: u32,
    json: &'static str,
    ty: Ty,
    card: Card,
    keep_zero: bool,
    inline: bool,
) -> Field {
    Field {
        tag,
        json,
        ty,
        card,
        keep_zero,
        inline,
    }
}

/// One message type.
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    pub fn field(&self, tag: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.tag == tag)
    }
}

/// The message named `name` (the table is sorted by name).
pub fn message(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &MESSAGES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_table_is_sorted_and_every_reference_resolves() {
        assert!(MESSAGES.windows(2).all(|w| w[0].name < w[1].name));
        for m in MESSAGES {
            for field in m.fields {
                if let Ty::Msg(name) = field.ty {
                    assert!(
                        message(name).is_some(),
                        "{}.{} -> {name}",
                        m.name,
                        field.json
                    );
                }
            }
        }
    }

    #[test]
    fn go_struct_facts_reach_the_table() {
        let volume = message("io.k8s.api.core.v1.Volume").expect("Volume");
        assert!(volume.field(2).expect("volumeSource").inline);
        let spec = message("io.k8s.api.apps.v1.DeploymentSpec").expect("DeploymentSpec");
        let replicas = spec.field(1).expect("replicas");
        assert_eq!((replicas.json, replicas.keep_zero), ("replicas", true));
        let meta = message("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta").expect("meta");
        assert!(!meta.field(7).expect("generation").keep_zero);
        let aws = message("io.k8s.api.core.v1.AWSElasticBlockStoreVolumeSource").expect("AWS");
        assert_eq!(aws.field(1).expect("volumeID").json, "volumeID");
    }
}

#[cfg(test)]
mod openapi_tests {
    use super::*;
    use crate::openapi::schemas;

    /// Fields k8s-pb and the Go structs have but k8s-openapi's `v1_33`
    /// schemas do not: added in Kubernetes 1.34 and later.
    const NEWER_THAN_OPENAPI: &[&str] = &[
        "io.k8s.api.core.v1.Container.restartPolicyRules",
        "io.k8s.api.core.v1.EnvVarSource.fileKeyRef",
        "io.k8s.api.core.v1.NodeStatus.declaredFeatures",
        "io.k8s.api.core.v1.PodSpec.hostnameOverride",
        "io.k8s.api.core.v1.PodSpec.workloadRef",
        "io.k8s.api.core.v1.PodStatus.extendedResourceClaimStatus",
        "io.k8s.api.core.v1.PodStatus.allocatedResources",
        "io.k8s.api.core.v1.PodStatus.resources",
        "io.k8s.api.core.v1.VolumeProjection.podCertificate",
    ];

    #[test]
    fn json_names_match_the_openapi_properties() {
        let kinds: Vec<_> = schemas::all_kinds().collect();
        let defs = schemas::definitions(&kinds, &[]);
        let mut missing = Vec::new();
        for m in MESSAGES {
            let Some(props) = defs.get(m.name).and_then(|d| d.get("properties")) else {
                continue;
            };
            for field in m.fields.iter().filter(|f| !f.inline) {
                let name = format!("{}.{}", m.name, field.json);
                if props.get(field.json).is_none() && !NEWER_THAN_OPENAPI.contains(&name.as_str()) {
                    missing.push(name);
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
