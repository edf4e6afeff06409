//! The discovery documents clients read before anything else: `/api`,
//! `/apis`, `/apis/<group>`, each group/version's `APIResourceList`, the
//! aggregated discovery (`apidiscovery.k8s.io`) form kubectl 1.30+ asks for
//! first, and `/version`.
//!
//! Everything is derived from [`common::resources::RESOURCES`], so routing,
//! storage and what clients see cannot drift apart.

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

fn named_groups() -> Vec<(&'static str, Vec<&'static str>)> {
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
fn subresource(
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

/// Which aggregated discovery version a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregatedVersion {
    V2,
    V2Beta1,
}

impl AggregatedVersion {
    pub fn version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "v2",
            AggregatedVersion::V2Beta1 => "v2beta1",
        }
    }

    /// The `Content-Type` the response must carry: client-go only decodes
    /// the body as aggregated discovery when the type echoes `g`, `v` and
    /// `as` (kube-apiserver also sets `Vary: Accept`).
    pub fn content_type(self) -> String {
        format!(
            "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
            self.version()
        )
    }
}

/// Negotiates the `Accept` header of a `/api` or `/apis` request: `Some`
/// when the best acceptable media type is aggregated discovery, `None` when
/// it is the plain `APIVersions`/`APIGroupList` JSON (or nothing we serve).
///
/// Media ranges are ranked by `q` (highest first, order breaking ties);
/// ranges with `q=0` are refused, as HTTP says.
pub fn wants_aggregated(accept: &str) -> Option<AggregatedVersion> {
    let mut ranges: Vec<(f32, usize, Option<AggregatedVersion>, bool)> = Vec::new();
    for (i, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut g, mut v, mut as_, mut q) = (None, None, None, 1.0f32);
        for p in parts {
            let Some((k, val)) = p.split_once('=') else {
                continue;
            };
            let val = val.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "g" => g = Some(val.to_string()),
                "v" => v = Some(val.to_string()),
                "as" => as_ = Some(val.to_string()),
                "q" => q = val.parse().unwrap_or(0.0),
                _ => {}
            }
        }
        if q <= 0.0 {
            continue;
        }
        let json_like = matches!(media.as_str(), "application/json" | "application/*" | "*/*");
        let aggregated = match (g.as_deref(), v.as_deref(), as_.as_deref()) {
            (Some("apidiscovery.k8s.io"), Some("v2"), Some("APIGroupDiscoveryList")) => {
                Some(AggregatedVersion::V2)
            }
            (Some("apidiscovery.k8s.io"), Some("v2beta1"), Some("APIGroupDiscoveryList")) => {
                Some(AggregatedVersion::V2Beta1)
            }
            _ => None,
        };
        let plain = g.is_none() && v.is_none() && as_.is_none();
        if media == "application/json" && aggregated.is_some() {
            ranges.push((q, i, aggregated, true));
        } else if json_like && plain {
            ranges.push((q, i, None, true));
        }
    }
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges.first().and_then(|r| r.2)
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|sub| {
            let (group, version, kind, verbs) = subresource(r, sub);
            json!({
                "subresource": sub,
                "responseKind": {"group": group, "version": version, "kind": kind},
                "verbs": verbs,
            })
        })
        .collect();
    let mut out = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if !r.short_names.is_empty() {
        out["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        out["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        out["subresources"] = Value::Array(subresources);
    }
    out
}

fn aggregated_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == group && r.version == *v)
                .map(aggregated_resource)
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    let mut metadata = json!({"creationTimestamp": null});
    if !group.is_empty() {
        metadata["name"] = group.into();
    }
    json!({"metadata": metadata, "versions": versions})
}

fn discovery_list(version: AggregatedVersion, items: Vec<Value>) -> Value {
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{}", version.version()),
        "metadata": {},
        "items": items,
    })
}

/// `/api` in aggregated form: one nameless group holding `v1`.
pub fn aggregated_legacy(version: AggregatedVersion) -> Value {
    discovery_list(version, vec![aggregated_group("", &["v1"])])
}

/// `/apis` in aggregated form: every named group, versions preferred first.
pub fn aggregated_groups(version: AggregatedVersion) -> Value {
    let items = named_groups()
        .iter()
        .map(|(g, vs)| aggregated_group(g, vs))
        .collect();
    discovery_list(version, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    #[test]
    fn accept_headers_choose_the_discovery_form() {
        let cases: &[(&str, Option<AggregatedVersion>)] = &[
            (KUBECTL_ACCEPT, Some(AggregatedVersion::V2)),
            (
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
                Some(AggregatedVersion::V2Beta1),
            ),
            ("application/json", None),
            ("*/*", None),
            ("", None),
            (
                "application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                None,
            ),
            (
                "application/json;q=0.5, application/json;as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io",
                Some(AggregatedVersion::V2),
            ),
            (
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0, application/json",
                None,
            ),
            (
                "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList",
                None,
            ),
            (
                "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
                None,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(wants_aggregated(accept), *want, "{accept}");
        }
    }

    #[test]
    fn aggregated_content_type_echoes_the_chosen_version() {
        assert_eq!(
            AggregatedVersion::V2.content_type(),
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        assert!(
            AggregatedVersion::V2Beta1
                .content_type()
                .contains("v=v2beta1")
        );
    }

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
    fn aggregated_discovery_covers_every_resource_once() {
        let legacy = aggregated_legacy(AggregatedVersion::V2);
        assert_eq!(legacy["apiVersion"], "apidiscovery.k8s.io/v2");
        assert!(legacy["items"][0]["metadata"].get("name").is_none());
        let groups = aggregated_groups(AggregatedVersion::V2Beta1);
        assert_eq!(groups["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let mut seen = 0;
        for list in [&legacy, &groups] {
            for item in list["items"].as_array().expect("items") {
                for v in item["versions"].as_array().expect("versions") {
                    assert_eq!(v["freshness"], "Current");
                    seen += v["resources"].as_array().expect("resources").len();
                }
            }
        }
        assert_eq!(seen, RESOURCES.len());
        let apps = groups["items"]
            .as_array()
            .and_then(|i| i.iter().find(|g| g["metadata"]["name"] == "apps"))
            .expect("apps");
        let deploy = &apps["versions"][0]["resources"][0];
        assert_eq!(deploy["resource"], "deployments");
        assert_eq!(deploy["scope"], "Namespaced");
        let scale = deploy["subresources"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["subresource"] == "scale"))
            .expect("scale");
        assert_eq!(
            scale["responseKind"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
        );
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
