//! The discovery documents clients read before anything else: `/api`,
//! `/apis`, `/apis/<group>`, each group/version's `APIResourceList`, the
//! aggregated discovery (`apidiscovery.k8s.io`) form kubectl 1.30+ asks for
//! first ([`aggregated`]), and `/version`; `discovery_routes` serves them.
//!
//! Everything is derived from [`common::resources::RESOURCES`], so routing,
//! storage and what clients see cannot drift apart.

pub mod aggregated;

pub use aggregated::{AggregatedVersion, aggregated_groups, aggregated_legacy, wants_aggregated};

use common::resources::{RESOURCES, ResourceInfo};
use serde_json::{Value, json};

/// `gitVersion` of `/version`; major/minor follow the k8s-openapi API level
/// (`v1_33`) so clients' version-skew checks see a matching server.
pub const GIT_VERSION: &str = "v1.33.0-ferrokube";

/// The `/version` body.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none (rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `/api`: the legacy group's versions and where clients reach the server.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    })
}

pub(super) fn named_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(|v| gv(v)),
    })
}

/// `/apis`: every named group with its versions, the first preferred.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = named_groups()
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, or `None` for a group not served.
pub fn api_group(group: &str) -> Option<Value> {
    let (name, versions) = named_groups().into_iter().find(|(g, _)| *g == group)?;
    let mut out = group_json(name, &versions);
    out["kind"] = "APIGroup".into();
    out["apiVersion"] = "v1".into();
    Some(out)
}

/// What a subresource answers with and which verbs it takes, as
/// kube-apiserver registers them.
pub(super) fn subresource(
    r: &ResourceInfo,
    sub: &str,
) -> (&'static str, &'static str, String, &'static [&'static str]) {
    const GPU: &[&str] = &["get", "patch", "update"];
    match sub {
        "scale" => ("autoscaling", "v1", "Scale".into(), GPU),
        "binding" => ("", "v1", "Binding".into(), &["create"]),
        "eviction" => ("policy", "v1", "Eviction".into(), &["create"]),
        "log" => (r.group, r.version, r.kind.into(), &["get"]),
        "exec" => ("", "v1", "PodExecOptions".into(), &["create", "get"]),
        "attach" => ("", "v1", "PodAttachOptions".into(), &["create", "get"]),
        "portforward" => ("", "v1", "PodPortForwardOptions".into(), &["create", "get"]),
        "proxy" => (
            "",
            "v1",
            format!("{}ProxyOptions", r.kind),
            &["create", "delete", "get", "patch", "update"],
        ),
        "token" => (
            "authentication.k8s.io",
            "v1",
            "TokenRequest".into(),
            &["create"],
        ),
        _ => (r.group, r.version, r.kind.into(), GPU),
    }
}

fn resource_json(r: &ResourceInfo) -> Value {
    let mut out = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced(),
        "kind": r.kind,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    out
}

fn subresource_json(r: &ResourceInfo, sub: &str) -> Value {
    let (group, version, kind, verbs) = subresource(r, sub);
    let mut out = json!({
        "name": format!("{}/{sub}", r.plural),
        "singularName": "",
        "namespaced": r.namespaced(),
        "kind": kind,
        "verbs": verbs,
    });
    // Only set when the subresource speaks another group's kind, as
    // kube-apiserver does (deployments/scale → autoscaling/v1 Scale).
    if (group, version) != (r.group, r.version) {
        out["group"] = group.into();
        out["version"] = version.into();
    }
    out
}

/// `/api/v1` or `/apis/<group>/<version>`: the `APIResourceList`, or `None`
/// for a group/version not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(resource_json(r));
        for sub in r.subresources {
            resources.push(subresource_json(r, sub));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut out =
        json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources});
    // kube-apiserver omits apiVersion on the legacy list only.
    if !group.is_empty() {
        out["apiVersion"] = "v1".into();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_name_v1_and_the_server_address() {
        let v = api_versions("10.0.0.1:6443");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(
            v["serverAddressByClientCIDRs"][0]["serverAddress"],
            "10.0.0.1:6443"
        );
    }

    #[test]
    fn group_list_prefers_the_first_version_and_excludes_core() {
        let v = api_group_list();
        let groups = v["groups"].as_array().expect("groups");
        assert!(groups.iter().all(|g| g["name"] != ""));
        let apps = groups.iter().find(|g| g["name"] == "apps").expect("apps");
        assert_eq!(
            apps["preferredVersion"],
            json!({"groupVersion": "apps/v1", "version": "v1"})
        );
        assert_eq!(api_group("apps").expect("apps")["kind"], "APIGroup");
        assert!(api_group("nope.example.com").is_none());
    }

    #[test]
    fn resource_lists_carry_subresources_with_their_kinds_and_verbs() {
        let core = resource_list("", "v1").expect("core");
        assert_eq!(core["groupVersion"], "v1");
        assert!(core.get("apiVersion").is_none());
        let find = |list: &Value, name: &str| {
            list["resources"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["name"] == name).cloned())
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        let pods = find(&core, "pods");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["namespaced"], true);
        assert_eq!(find(&core, "pods/binding")["verbs"], json!(["create"]));
        assert_eq!(find(&core, "pods/binding")["kind"], "Binding");
        assert_eq!(find(&core, "pods/status")["kind"], "Pod");
        assert_eq!(find(&core, "namespaces")["namespaced"], false);

        let apps = resource_list("apps", "v1").expect("apps");
        assert_eq!(apps["apiVersion"], "v1");
        let scale = find(&apps, "deployments/scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
        assert!(find(&apps, "deployments/status").get("group").is_none());
        assert!(resource_list("apps", "v1beta1").is_none());
    }

    #[test]
    fn version_matches_the_api_level() {
        let v = version_info();
        assert_eq!(
            (v["major"].as_str(), v["minor"].as_str()),
            (Some("1"), Some("33"))
        );
        assert!(
            v["gitVersion"]
                .as_str()
                .is_some_and(|s| s.starts_with("v1.33."))
        );
    }
}
