//! Component schemas for the served kinds, generated from k8s-openapi's
//! `schemars` impls and reshaped the way kube-apiserver publishes them.
//!
//! k8s-openapi already names every schema as Kubernetes does
//! (`io.k8s.api.core.v1.Pod`), but it drops three things kubectl relies on:
//! the `x-kubernetes-group-version-kind` extension that `kubectl explain` and
//! client-side apply use to find a kind's schema, the strategic-merge-patch
//! metadata (`x-kubernetes-patch-merge-key`/`-strategy`) that client-side
//! apply reads from the OpenAPI v3 document to compute its patch, and the
//! `...List` kinds. This module adds them back.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps, autoscaling, batch, coordination, core, discovery, events, scheduling,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use super::patch_meta::PATCH_META;

/// Where schemars puts the definitions and where every `$ref` points; the
/// OpenAPI v3 location. The v2 document rewrites it to `#/definitions/`.
pub const V3_REF_PREFIX: &str = "#/components/schemas/";

/// A group/version/kind triple as the `x-kubernetes-group-version-kind`
/// extension spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gvk {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

impl Gvk {
    pub fn to_json(self) -> Value {
        json!({"group": self.group, "kind": self.kind, "version": self.version})
    }
}

type Register = fn(&mut SchemaGenerator) -> String;

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Every kind with a schema ferrokube publishes: the served resources plus
/// the kinds their subresources speak (`Scale`, `Binding`, `Eviction`).
static KINDS: &[(Gvk, Register)] = &[
    (gvk("", "v1", "Namespace"), register::<core::v1::Namespace>),
    (gvk("", "v1", "Pod"), register::<core::v1::Pod>),
    (gvk("", "v1", "Node"), register::<core::v1::Node>),
    (gvk("", "v1", "Service"), register::<core::v1::Service>),
    (gvk("", "v1", "Endpoints"), register::<core::v1::Endpoints>),
    (gvk("", "v1", "ConfigMap"), register::<core::v1::ConfigMap>),
    (gvk("", "v1", "Secret"), register::<core::v1::Secret>),
    (
        gvk("", "v1", "ServiceAccount"),
        register::<core::v1::ServiceAccount>,
    ),
    (gvk("", "v1", "Event"), register::<core::v1::Event>),
    (
        gvk("", "v1", "PersistentVolume"),
        register::<core::v1::PersistentVolume>,
    ),
    (
        gvk("", "v1", "PersistentVolumeClaim"),
        register::<core::v1::PersistentVolumeClaim>,
    ),
    (gvk("", "v1", "Binding"), register::<core::v1::Binding>),
    (
        gvk("apps", "v1", "Deployment"),
        register::<apps::v1::Deployment>,
    ),
    (
        gvk("apps", "v1", "ReplicaSet"),
        register::<apps::v1::ReplicaSet>,
    ),
    (
        gvk("apps", "v1", "DaemonSet"),
        register::<apps::v1::DaemonSet>,
    ),
    (
        gvk("apps", "v1", "StatefulSet"),
        register::<apps::v1::StatefulSet>,
    ),
    (
        gvk("autoscaling", "v1", "Scale"),
        register::<autoscaling::v1::Scale>,
    ),
    (gvk("batch", "v1", "Job"), register::<batch::v1::Job>),
    (
        gvk("batch", "v1", "CronJob"),
        register::<batch::v1::CronJob>,
    ),
    (
        gvk("coordination.k8s.io", "v1", "Lease"),
        register::<coordination::v1::Lease>,
    ),
    (
        gvk("discovery.k8s.io", "v1", "EndpointSlice"),
        register::<discovery::v1::EndpointSlice>,
    ),
    (
        gvk("events.k8s.io", "v1", "Event"),
        register::<events::v1::Event>,
    ),
    (
        gvk("networking.k8s.io", "v1", "Ingress"),
        register::<k8s_openapi::api::networking::v1::Ingress>,
    ),
    (
        gvk("networking.k8s.io", "v1", "IngressClass"),
        register::<k8s_openapi::api::networking::v1::IngressClass>,
    ),
    (
        gvk("policy", "v1", "Eviction"),
        register::<k8s_openapi::api::policy::v1::Eviction>,
    ),
    (
        gvk("scheduling.k8s.io", "v1", "PriorityClass"),
        register::<scheduling::v1::PriorityClass>,
    ),
];

const fn gvk(group: &'static str, version: &'static str, kind: &'static str) -> Gvk {
    Gvk {
        group,
        version,
        kind,
    }
}

/// Every kind with a published schema.
pub fn all_kinds() -> impl Iterator<Item = Gvk> {
    KINDS.iter().map(|(g, _)| *g)
}

/// The Kubernetes schema name of a kind (`io.k8s.api.apps.v1.Deployment`),
/// if ferrokube knows the kind.
pub fn schema_name(group: &str, version: &str, kind: &str) -> Option<String> {
    let (_, reg) = KINDS
        .iter()
        .find(|(g, _)| g.group == group && g.version == version && g.kind == kind)?;
    let mut generator = generator();
    Some(reg(&mut generator))
}

fn generator() -> SchemaGenerator {
    // schemars' OpenAPI transforms would drop the descriptions k8s-openapi
    // puts beside each `$ref`; we reshape refs ourselves instead.
    SchemaSettings::openapi3()
        .with(|s| s.transforms.clear())
        .into_generator()
}

/// Generates the component schemas for `kinds` (and for their `...List`
/// kinds when `lists` names them), with the meta types every document needs.
/// Refs point to [`V3_REF_PREFIX`] and keep their sibling descriptions;
/// [`wrap_refs_in_all_of`] turns them into the v3 shape.
pub fn definitions(kinds: &[Gvk], lists: &[Gvk]) -> BTreeMap<String, Value> {
    let mut generator = generator();
    let mut kind_names = Vec::new();
    for want in kinds.iter().chain(lists) {
        if let Some((g, reg)) = KINDS.iter().find(|(g, _)| g == want) {
            let name = reg(&mut generator);
            if !kind_names.iter().any(|(n, _)| *n == name) {
                kind_names.push((name, *g));
            }
        }
    }
    register::<meta::Status>(&mut generator);
    register::<meta::DeleteOptions>(&mut generator);
    register::<meta::WatchEvent<k8s_openapi::apimachinery::pkg::runtime::RawExtension>>(
        &mut generator,
    );
    register::<meta::Patch>(&mut generator);
    register::<meta::ListMeta>(&mut generator);

    let mut defs: BTreeMap<String, Value> = generator.take_definitions(false).into_iter().collect();
    for (name, g) in &kind_names {
        if let Some(Value::Object(schema)) = defs.get_mut(name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([g.to_json()]),
            );
            // k8s-openapi marks `metadata` required because its Rust field is
            // not an Option; Kubernetes' schemas do not, and `kubectl explain`
            // would print `-required-` next to it.
            if let Some(Value::Array(req)) = schema.get_mut("required") {
                req.retain(|r| r != "metadata");
                if req.is_empty() {
                    schema.remove("required");
                }
            }
        }
    }
    for want in lists {
        if let Some((name, g)) = kind_names.iter().find(|(_, g)| g == want) {
            let list_name = format!("{name}List");
            defs.insert(list_name, list_schema(name, *g));
        }
    }
    for (schema, property, strategy, key) in PATCH_META {
        let Some(Value::Object(props)) =
            defs.get_mut(*schema).and_then(|s| s.get_mut("properties"))
        else {
            continue;
        };
        if let Some(Value::Object(prop)) = props.get_mut(*property) {
            prop.insert("x-kubernetes-patch-strategy".into(), (*strategy).into());
            if let Some(key) = key {
                prop.insert("x-kubernetes-patch-merge-key".into(), (*key).into());
            }
        }
    }
    defs
}

fn list_schema(item_schema: &str, item: Gvk) -> Value {
    let kind = item.kind;
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string",
            },
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("{V3_REF_PREFIX}{item_schema}")},
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string",
            },
            "metadata": {
                "$ref": format!("{V3_REF_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [{"group": item.group, "kind": format!("{kind}List"), "version": item.version}],
    })
}

/// Rewrites every `{"$ref": r, ...siblings}` into kube-apiserver's v3 shape
/// `{"allOf": [{"$ref": r}], ...siblings}`: OpenAPI 3.0 ignores the siblings
/// of a `$ref`, and `kubectl explain` reads descriptions from the wrapper.
pub fn wrap_refs_in_all_of(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.len() > 1
                && let Some(r) = map.remove("$ref")
            {
                let mut inner = Map::new();
                inner.insert("$ref".into(), r);
                map.insert("allOf".into(), Value::Array(vec![Value::Object(inner)]));
            }
            for v in map.values_mut() {
                wrap_refs_in_all_of(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(wrap_refs_in_all_of),
        _ => {}
    }
}

/// Rewrites every `$ref` from the v3 location to the swagger 2.0 one.
pub fn rewrite_refs(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::String(s) if k == "$ref" => {
                        if let Some(rest) = s.strip_prefix(from) {
                            *s = format!("{to}{rest}");
                        }
                    }
                    _ => rewrite_refs(v, from, to),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, from, to)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_defs() -> BTreeMap<String, Value> {
        let pod = gvk("", "v1", "Pod");
        definitions(&[pod], &[pod])
    }

    #[test]
    fn schemas_are_named_as_kubernetes_names_them() {
        let defs = pod_defs();
        for name in [
            "io.k8s.api.core.v1.Pod",
            "io.k8s.api.core.v1.PodList",
            "io.k8s.api.core.v1.Container",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        ] {
            assert!(defs.contains_key(name), "{name} missing");
        }
    }

    #[test]
    fn kinds_and_lists_carry_their_group_version_kind() {
        let defs = pod_defs();
        assert_eq!(
            defs["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert_eq!(
            defs["io.k8s.api.core.v1.PodList"]["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "PodList", "version": "v1"}])
        );
        assert!(
            defs["io.k8s.api.core.v1.PodSpec"]
                .get("x-kubernetes-group-version-kind")
                .is_none()
        );
    }

    #[test]
    fn metadata_is_not_required_on_top_level_kinds() {
        let defs = pod_defs();
        assert!(defs["io.k8s.api.core.v1.Pod"].get("required").is_none());
    }

    #[test]
    fn refs_point_into_components_and_every_target_exists() {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let defs = pod_defs();
        let mut all = Vec::new();
        defs.values().for_each(|v| refs(v, &mut all));
        assert!(!all.is_empty());
        for r in all {
            let name = r.strip_prefix(V3_REF_PREFIX).expect("v3 ref prefix");
            assert!(defs.contains_key(name), "dangling {r}");
        }
    }

    #[test]
    fn refs_with_descriptions_are_wrapped_in_all_of() {
        let mut pod = pod_defs().remove("io.k8s.api.core.v1.Pod").expect("pod");
        wrap_refs_in_all_of(&mut pod);
        let spec = &pod["properties"]["spec"];
        assert_eq!(
            spec["allOf"],
            json!([{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}])
        );
        assert!(
            spec["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Specification"))
        );
        assert!(spec.get("$ref").is_none());
    }

    #[test]
    fn bare_refs_are_left_alone_and_v2_refs_are_rewritten() {
        let mut v = json!({"items": {"$ref": "#/components/schemas/x.Y"}});
        wrap_refs_in_all_of(&mut v);
        assert_eq!(v, json!({"items": {"$ref": "#/components/schemas/x.Y"}}));
        rewrite_refs(&mut v, V3_REF_PREFIX, "#/definitions/");
        assert_eq!(v, json!({"items": {"$ref": "#/definitions/x.Y"}}));
    }

    #[test]
    fn containers_carry_strategic_merge_patch_metadata() {
        let defs = pod_defs();
        let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    }

    #[test]
    fn every_served_resource_has_a_schema() {
        for r in common::resources::RESOURCES {
            let name = schema_name(r.group, r.version, r.kind);
            assert!(name.is_some(), "{} has no schema", r.kind);
        }
    }
}
