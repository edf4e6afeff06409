//! Resource discovery: every resource the server serves (core and each
//! group's preferred version), with the names a user may type for it —
//! plural, singular, kind or short name, optionally `.group`-qualified —
//! as kubectl's RESTMapper resolves them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::discovery::ApiResource;

use crate::CtlError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
}

impl Resource {
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pod` or `deployment.apps`, as kubectl names objects in its output.
    pub fn display(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }

    /// The collection's URL path, in `namespace` or across all.
    pub fn path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }

    fn answers_to(&self, name: &str) -> bool {
        let singular = if self.singular.is_empty() {
            self.kind.to_lowercase()
        } else {
            self.singular.clone()
        };
        name == self.plural
            || name == singular
            || name == self.kind.to_lowercase()
            || self.short_names.iter().any(|s| s == name)
    }
}

/// What the server serves.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub resources: Vec<Resource>,
}

fn add_list(out: &mut Vec<Resource>, group: &str, version: &str, list: APIResourceList) {
    for r in list.resources {
        // Subresources (`pods/status`) are not types of their own.
        if r.name.contains('/') {
            continue;
        }
        out.push(Resource {
            group: group.to_string(),
            version: version.to_string(),
            kind: r.kind,
            plural: r.name,
            singular: r.singular_name,
            short_names: r.short_names.unwrap_or_default(),
            namespaced: r.namespaced,
        });
    }
}

impl Discovery {
    pub async fn run(client: &kube::Client) -> Result<Discovery, CtlError> {
        let mut resources = Vec::new();
        let core = client.list_core_api_versions().await?;
        for v in core.versions {
            let list = client.list_core_api_resources(&v).await?;
            add_list(&mut resources, "", &v, list);
        }
        let groups = client.list_api_groups().await?;
        for g in groups.groups {
            let Some(gv) = g
                .preferred_version
                .clone()
                .or_else(|| g.versions.first().cloned())
            else {
                continue;
            };
            let list = client.list_api_group_resources(&gv.group_version).await?;
            add_list(&mut resources, &g.name, &gv.version, list);
        }
        Ok(Discovery { resources })
    }

    /// The resource a user means by `name` (`po`, `pods`, `Deployment`,
    /// `deployments.apps`); core resources win over groups, as in kubectl.
    pub fn resolve(&self, name: &str) -> Result<&Resource, CtlError> {
        let lower = name.to_lowercase();
        let plain = self.resources.iter().find(|r| r.answers_to(&lower));
        let qualified = || {
            let (n, group) = lower.split_once('.')?;
            self.resources
                .iter()
                .find(|r| r.group == group && r.answers_to(n))
        };
        plain
            .or_else(qualified)
            .ok_or_else(|| CtlError::UnknownResource(name.to_string()))
    }

    /// The resource serving `kind` in `apiVersion` (manifests name both).
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind && r.version == version)
            .or_else(|| {
                // Another version of the same group serves the kind: the
                // server converts (kubectl maps through the group too).
                self.resources
                    .iter()
                    .find(|r| r.group == group && r.kind == kind)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(group: &str, kind: &str, plural: &str, short: &[&str]) -> Resource {
        Resource {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            namespaced: true,
        }
    }

    #[test]
    fn names_resolve_like_kubectl() {
        let d = Discovery {
            resources: vec![
                r("", "Pod", "pods", &["po"]),
                r("apps", "Deployment", "deployments", &["deploy"]),
                r("example.com", "Pod", "pods", &[]),
            ],
        };
        for (name, want_group, want_plural) in [
            ("po", "", "pods"),
            ("pods", "", "pods"),
            ("Pod", "", "pods"),
            ("deploy", "apps", "deployments"),
            ("deployments.apps", "apps", "deployments"),
            ("pods.example.com", "example.com", "pods"),
        ] {
            let got = d.resolve(name).expect(name);
            assert_eq!((got.group.as_str(), got.plural.as_str()), (want_group, want_plural), "{name}");
        }
        assert!(matches!(d.resolve("gadgets"), Err(CtlError::UnknownResource(_))));
        assert_eq!(
            d.for_kind("apps/v1", "Deployment").map(|r| r.display()),
            Some("deployment.apps".to_string())
        );
        assert_eq!(d.resources[0].path(Some("ns")), "/api/v1/namespaces/ns/pods");
        assert_eq!(d.resources[1].path(None), "/apis/apps/v1/deployments");
    }
}
