//! The API resources ferrokube serves, described once so that the API server
//! (routing, discovery, storage keys) and the clients (CLI, tests) agree.

/// Whether a resource lives inside a namespace or at cluster scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// One served resource, as discovery (`/api/v1`, `/apis/<g>/<v>`) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the legacy core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Plural resource name used in URLs and storage keys.
    pub plural: &'static str,
    pub singular: &'static str,
    pub scope: Scope,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources besides the main resource (`status`, `scale`, `binding`).
    pub subresources: &'static [&'static str],
}

impl ResourceInfo {
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// `v1` for core, `apps/v1` otherwise: the `apiVersion` field value.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage key prefix as kube-apiserver lays it out in etcd.
    ///
    /// Kubernetes keys most resources by plural name alone; a few groups
    /// get a prefix to avoid clashes (events.k8s.io events share core's
    /// `events` data in Kubernetes; we keep them apart because we store
    /// each version's own JSON).
    pub fn storage_prefix(&self) -> String {
        match (self.group, self.plural) {
            ("events.k8s.io", "events") => "/registry/events.k8s.io/events/".to_string(),
            ("", "services") => "/registry/services/specs/".to_string(),
            ("", "endpoints") => "/registry/services/endpoints/".to_string(),
            ("", "nodes") => "/registry/minions/".to_string(),
            (_, "deployments") => "/registry/deployments/".to_string(),
            (_, p) => format!("/registry/{p}/"),
        }
    }

    /// Verbs discovery advertises for the main resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $scope:ident,
     [$($short:expr),*], [$($cat:expr),*], [$($sub:expr),*]) => {
        ResourceInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            scope: Scope::$scope,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
        }
    };
}

/// Every resource ferrokube serves, in discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    res!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        Cluster,
        ["ns"],
        [],
        ["status"]
    ),
    res!(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        Namespaced,
        ["po"],
        ["all"],
        ["status", "binding", "log", "exec", "attach", "portforward"]
    ),
    res!(
        "",
        "v1",
        "Node",
        "nodes",
        "node",
        Cluster,
        ["no"],
        [],
        ["status", "proxy"]
    ),
    res!(
        "",
        "v1",
        "Service",
        "services",
        "service",
        Namespaced,
        ["svc"],
        ["all"],
        ["status"]
    ),
    res!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        "endpoints",
        Namespaced,
        ["ep"],
        [],
        []
    ),
    res!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        Namespaced,
        ["cm"],
        [],
        []
    ),
    res!(
        "",
        "v1",
        "Secret",
        "secrets",
        "secret",
        Namespaced,
        [],
        [],
        []
    ),
    res!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        Namespaced,
        ["sa"],
        [],
        ["token"]
    ),
    res!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        Cluster,
        ["pv"],
        [],
        ["status"]
    ),
    res!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        Namespaced,
        ["pvc"],
        [],
        ["status"]
    ),
    res!(
        "",
        "v1",
        "Event",
        "events",
        "event",
        Namespaced,
        ["ev"],
        [],
        []
    ),
    res!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        Namespaced,
        ["deploy"],
        ["all"],
        ["status", "scale"]
    ),
    res!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        Namespaced,
        ["rs"],
        ["all"],
        ["status", "scale"]
    ),
    res!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        Namespaced,
        ["ds"],
        ["all"],
        ["status"]
    ),
    res!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        Namespaced,
        ["sts"],
        ["all"],
        ["status", "scale"]
    ),
    res!(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        Namespaced,
        [],
        ["all"],
        ["status"]
    ),
    res!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        Namespaced,
        ["cj"],
        ["all"],
        ["status"]
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        Namespaced,
        [],
        [],
        []
    ),
    res!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        Namespaced,
        [],
        [],
        []
    ),
    res!(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        Namespaced,
        ["ev"],
        [],
        []
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        Namespaced,
        ["ing"],
        [],
        ["status"]
    ),
    res!(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        "ingressclass",
        Cluster,
        [],
        [],
        []
    ),
    res!(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        Cluster,
        ["pc"],
        [],
        []
    ),
];

/// Looks a resource up by group, version and plural name.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by `apiVersion` and `kind`, as found in a manifest.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The API groups served, in discovery order, each with its versions.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_is_found_by_its_url_and_by_its_kind() {
        for r in RESOURCES {
            assert_eq!(find(r.group, r.version, r.plural), Some(r));
            assert_eq!(find_kind(&r.api_version(), r.kind), Some(r));
        }
    }

    #[test]
    fn storage_prefixes_are_distinct_and_do_not_nest() {
        for a in RESOURCES {
            for b in RESOURCES {
                if a != b {
                    assert!(
                        !a.storage_prefix().starts_with(&b.storage_prefix()),
                        "{a:?} {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn groups_list_named_groups_once() {
        let g = groups();
        assert!(g.contains(&("apps", "v1")));
        assert!(!g.iter().any(|(g, _)| g.is_empty()));
        assert_eq!(g.iter().filter(|(g, _)| *g == "apps").count(), 1);
    }
}
