//! Aggregated discovery (`apidiscovery.k8s.io/v2` and `v2beta1`): the whole
//! of `/api` or `/apis` with every resource in one response, which kubectl
//! 1.30+ asks for first and client-go recognises by the echoed media type.

use common::resources::{RESOURCES, ResourceInfo};
use serde_json::{Value, json};

use super::{named_groups, subresource};

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
}
