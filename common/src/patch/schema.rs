//! The little schema knowledge strategic merge patch and server-side apply
//! need about built-in kinds: which lists merge by key (and on which keys),
//! which primitive lists are sets, and which maps are atomic.
//!
//! Kubernetes takes this from the `patchStrategy`/`patchMergeKey` struct
//! tags (`k8s.io/api/*/types.go`) for strategic merge patch and from the
//! OpenAPI `x-kubernetes-list-type`/`-list-map-keys`/`-map-type` extensions
//! for server-side apply. Both are derived from the same Go types, so one
//! table serves both here: a field is looked up by the schema node of its
//! parent (reached by walking field names from the object root) and its
//! name. Anything not in the table is a plain map (merged key by key) or an
//! atomic list (replaced whole), which is also how Kubernetes treats
//! custom resources without list extensions.

/// Where in a built-in object a value sits, as far as merging cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// No knowledge: maps merge per key, lists are atomic.
    Untyped,
    /// Top level of an object of an unknown kind: only `metadata` is known.
    UnknownRoot,
    Meta,
    PodRoot,
    PodTemplateRoot,
    /// Deployment, ReplicaSet, StatefulSet, DaemonSet, ReplicationController.
    WorkloadRoot,
    WorkloadSpec,
    JobRoot,
    CronJobRoot,
    CronJobSpec,
    JobTemplate,
    ServiceRoot,
    ServiceSpec,
    ServiceStatus,
    ClusterNodeRoot,
    ClusterNodeSpec,
    ClusterNodeStatus,
    ServiceAccountRoot,
    PodDisruptionBudgetRoot,
    PodDisruptionBudgetSpec,
    /// A kind whose `status.conditions` merge by `type` and nothing else.
    ConditionsRoot,
    ConditionsStatus,
    PodTemplate,
    PodSpec,
    PodStatus,
    Container,
    EnvVar,
    EnvVarSource,
    Affinity,
    /// `affinity.nodeAffinity`.
    HostAffinity,
}

/// How a field's value merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Maps merge key by key; lists are atomic.
    Plain,
    /// A map server-side apply owns as one value (`+mapType=atomic`, e.g.
    /// label selectors) but strategic merge patch still merges key by key,
    /// because the Go type carries no `patchStrategy`.
    AtomicMap,
    /// A map both strategies replace whole (`patchStrategy:"replace"`).
    ReplaceMap,
    /// A list of objects merged by key. The first key is the strategic
    /// merge patch `patchMergeKey`; all of them are the apply list-map keys.
    Keyed(&'static [&'static str]),
    /// A list of scalars merged as a set (`patchStrategy:"merge"` on a
    /// primitive list, `+listType=set`).
    Set,
}

/// A schema position: a node plus the shape of the value found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    pub node: Node,
    pub shape: Shape,
}

impl Field {
    pub(crate) const UNTYPED: Field = Field {
        node: Node::Untyped,
        shape: Shape::Plain,
    };
}

use Node as N;
use Shape as S;

const NAME: &[&str] = &["name"];
const TYPE: &[&str] = &["type"];
const IP: &[&str] = &["ip"];

/// `(parent, field, child node, shape)`: every non-default field of the
/// built-in kinds ferrokube serves, from the struct tags and the
/// `+listType`/`+mapType`/`+structType` markers in
/// `staging/src/k8s.io/api/{core,apps,batch,policy}/v1/types.go`.
const FIELDS: &[(Node, &str, Node, Shape)] = &[
    // metav1.ObjectMeta
    (N::Meta, "ownerReferences", N::Untyped, S::Keyed(&["uid"])),
    (N::Meta, "finalizers", N::Untyped, S::Set),
    // Pod
    (N::PodRoot, "spec", N::PodSpec, S::Plain),
    (N::PodRoot, "status", N::PodStatus, S::Plain),
    (N::PodTemplateRoot, "template", N::PodTemplate, S::Plain),
    (N::PodTemplate, "spec", N::PodSpec, S::Plain),
    (N::PodSpec, "containers", N::Container, S::Keyed(NAME)),
    (N::PodSpec, "initContainers", N::Container, S::Keyed(NAME)),
    (
        N::PodSpec,
        "ephemeralContainers",
        N::Container,
        S::Keyed(NAME),
    ),
    (N::PodSpec, "volumes", N::Untyped, S::Keyed(NAME)),
    (N::PodSpec, "imagePullSecrets", N::Untyped, S::Keyed(NAME)),
    (N::PodSpec, "hostAliases", N::Untyped, S::Keyed(IP)),
    (
        N::PodSpec,
        "topologySpreadConstraints",
        N::Untyped,
        S::Keyed(&["topologyKey", "whenUnsatisfiable"]),
    ),
    (N::PodSpec, "schedulingGates", N::Untyped, S::Keyed(NAME)),
    (N::PodSpec, "resourceClaims", N::Untyped, S::Keyed(NAME)),
    (N::PodSpec, "nodeSelector", N::Untyped, S::AtomicMap),
    (N::PodSpec, "affinity", N::Affinity, S::Plain),
    (N::Affinity, "nodeAffinity", N::HostAffinity, S::Plain),
    (
        N::HostAffinity,
        "requiredDuringSchedulingIgnoredDuringExecution",
        N::Untyped,
        S::AtomicMap,
    ),
    (
        N::Container,
        "ports",
        N::Untyped,
        S::Keyed(&["containerPort", "protocol"]),
    ),
    (N::Container, "env", N::EnvVar, S::Keyed(NAME)),
    (N::EnvVar, "valueFrom", N::EnvVarSource, S::Plain),
    (N::EnvVarSource, "configMapKeyRef", N::Untyped, S::AtomicMap),
    (N::EnvVarSource, "secretKeyRef", N::Untyped, S::AtomicMap),
    (N::EnvVarSource, "fieldRef", N::Untyped, S::AtomicMap),
    (
        N::EnvVarSource,
        "resourceFieldRef",
        N::Untyped,
        S::AtomicMap,
    ),
    (N::EnvVarSource, "fileKeyRef", N::Untyped, S::AtomicMap),
    (
        N::Container,
        "volumeMounts",
        N::Untyped,
        S::Keyed(&["mountPath"]),
    ),
    (
        N::Container,
        "volumeDevices",
        N::Untyped,
        S::Keyed(&["devicePath"]),
    ),
    (N::PodStatus, "conditions", N::Untyped, S::Keyed(TYPE)),
    (N::PodStatus, "podIPs", N::Untyped, S::Keyed(IP)),
    (N::PodStatus, "hostIPs", N::Untyped, S::Keyed(IP)),
    (
        N::PodStatus,
        "resourceClaimStatuses",
        N::Untyped,
        S::Keyed(NAME),
    ),
    // apps/v1 workloads and core/v1 ReplicationController
    (N::WorkloadRoot, "spec", N::WorkloadSpec, S::Plain),
    (N::WorkloadRoot, "status", N::ConditionsStatus, S::Plain),
    (N::WorkloadSpec, "template", N::PodTemplate, S::Plain),
    (N::WorkloadSpec, "selector", N::Untyped, S::AtomicMap),
    // batch/v1
    (N::JobRoot, "spec", N::WorkloadSpec, S::Plain),
    (N::JobRoot, "status", N::ConditionsStatus, S::Plain),
    (N::CronJobRoot, "spec", N::CronJobSpec, S::Plain),
    (N::CronJobSpec, "jobTemplate", N::JobTemplate, S::Plain),
    (N::JobTemplate, "spec", N::WorkloadSpec, S::Plain),
    // core/v1 Service
    (N::ServiceRoot, "spec", N::ServiceSpec, S::Plain),
    (N::ServiceRoot, "status", N::ServiceStatus, S::Plain),
    (
        N::ServiceSpec,
        "ports",
        N::Untyped,
        S::Keyed(&["port", "protocol"]),
    ),
    (N::ServiceSpec, "selector", N::Untyped, S::AtomicMap),
    (N::ServiceStatus, "conditions", N::Untyped, S::Keyed(TYPE)),
    // core/v1 Node
    (N::ClusterNodeRoot, "spec", N::ClusterNodeSpec, S::Plain),
    (N::ClusterNodeRoot, "status", N::ClusterNodeStatus, S::Plain),
    (N::ClusterNodeSpec, "podCIDRs", N::Untyped, S::Set),
    (
        N::ClusterNodeStatus,
        "conditions",
        N::Untyped,
        S::Keyed(TYPE),
    ),
    (
        N::ClusterNodeStatus,
        "addresses",
        N::Untyped,
        S::Keyed(TYPE),
    ),
    // core/v1 ServiceAccount
    (N::ServiceAccountRoot, "secrets", N::Untyped, S::Keyed(NAME)),
    // policy/v1 PodDisruptionBudget
    (
        N::PodDisruptionBudgetRoot,
        "spec",
        N::PodDisruptionBudgetSpec,
        S::Plain,
    ),
    (
        N::PodDisruptionBudgetRoot,
        "status",
        N::ConditionsStatus,
        S::Plain,
    ),
    (
        N::PodDisruptionBudgetSpec,
        "selector",
        N::Untyped,
        S::ReplaceMap,
    ),
    // Kinds whose only keyed list is status.conditions.
    (N::ConditionsRoot, "status", N::ConditionsStatus, S::Plain),
    (
        N::ConditionsStatus,
        "conditions",
        N::Untyped,
        S::Keyed(TYPE),
    ),
];

/// Nodes whose `metadata` field is an `ObjectMeta` (objects and the
/// templates embedded in them).
fn has_object_meta(node: Node) -> bool {
    !matches!(
        node,
        N::Untyped
            | N::Meta
            | N::WorkloadSpec
            | N::CronJobSpec
            | N::ServiceSpec
            | N::ServiceStatus
            | N::ClusterNodeSpec
            | N::ClusterNodeStatus
            | N::PodDisruptionBudgetSpec
            | N::ConditionsStatus
            | N::PodSpec
            | N::PodStatus
            | N::Container
            | N::EnvVar
            | N::EnvVarSource
            | N::Affinity
            | N::HostAffinity
    )
}

/// The schema position of `name` inside a map at `parent`.
pub(crate) fn field(parent: Node, name: &str) -> Field {
    if name == "metadata" && has_object_meta(parent) {
        return Field {
            node: N::Meta,
            shape: S::Plain,
        };
    }
    fields_of(parent)
        .iter()
        .find(|(f, _)| *f == name)
        .map(|&(_, field)| field)
        .unwrap_or(Field::UNTYPED)
}

/// The table's fields of one parent node. Every member of every object
/// written is looked up here, so the table is split by parent once instead
/// of searched whole each time.
fn fields_of(parent: Node) -> &'static [(&'static str, Field)] {
    static BY_PARENT: std::sync::OnceLock<Vec<Vec<(&'static str, Field)>>> =
        std::sync::OnceLock::new();
    let by_parent = BY_PARENT.get_or_init(|| {
        let mut by_parent: Vec<Vec<(&'static str, Field)>> = Vec::new();
        for &(p, name, node, shape) in FIELDS {
            let at = p as usize;
            if by_parent.len() <= at {
                by_parent.resize_with(at + 1, Vec::new);
            }
            by_parent[at].push((name, Field { node, shape }));
        }
        by_parent
    });
    by_parent.get(parent as usize).map_or(&[], Vec::as_slice)
}

/// Which schema to merge an object with: built-in kinds get their merge
/// keys, everything else only `metadata`'s. Kinds without keyed lists
/// (ConfigMap, Secret…) need nothing more. Kubernetes refuses strategic
/// merge patch for custom resources (415); that decision belongs to the
/// API server, which knows which kinds are custom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeHint {
    root: Node,
}

impl TypeHint {
    /// An object of a kind with no known list semantics, such as a custom
    /// resource: only `metadata` (finalizers, ownerReferences) is typed.
    pub const UNKNOWN: TypeHint = TypeHint {
        root: N::UnknownRoot,
    };

    /// The schema for a built-in `kind` (e.g. `"Deployment"`); unknown kinds
    /// get [`TypeHint::UNKNOWN`].
    pub fn for_kind(kind: &str) -> TypeHint {
        let root = match kind {
            "Pod" => N::PodRoot,
            "PodTemplate" => N::PodTemplateRoot,
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "ReplicationController" => {
                N::WorkloadRoot
            }
            "Job" => N::JobRoot,
            "CronJob" => N::CronJobRoot,
            "Service" => N::ServiceRoot,
            "Node" => N::ClusterNodeRoot,
            "ServiceAccount" => N::ServiceAccountRoot,
            "PodDisruptionBudget" => N::PodDisruptionBudgetRoot,
            "Namespace"
            | "PersistentVolumeClaim"
            | "HorizontalPodAutoscaler"
            | "ComponentStatus"
            | "ServiceCIDR" => N::ConditionsRoot,
            _ => N::UnknownRoot,
        };
        TypeHint { root }
    }

    pub(crate) fn root(&self) -> Field {
        Field {
            node: self.root,
            shape: S::Plain,
        }
    }
}

/// The default Kubernetes gives a list-map key field when an element omits
/// it, so `{containerPort: 80}` and `{containerPort: 80, protocol: TCP}`
/// name the same element (OpenAPI `default` on `protocol`).
pub(crate) fn key_default(key: &str) -> Option<&'static str> {
    (key == "protocol").then_some("TCP")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_in_a_deployment_template_merge_by_name() {
        let root = TypeHint::for_kind("Deployment").root();
        let spec = field(root.node, "spec");
        let template = field(spec.node, "template");
        let pod = field(template.node, "spec");
        assert_eq!(field(pod.node, "containers").shape, S::Keyed(&["name"]));
        assert_eq!(field(template.node, "metadata").node, N::Meta);
    }

    #[test]
    fn unknown_kinds_only_know_metadata() {
        let root = TypeHint::for_kind("Widget").root();
        let meta = field(root.node, "metadata");
        assert_eq!(field(meta.node, "finalizers").shape, S::Set);
        assert_eq!(field(root.node, "spec"), Field::UNTYPED);
    }

    #[test]
    fn untyped_values_have_no_object_meta() {
        assert_eq!(field(N::Untyped, "metadata"), Field::UNTYPED);
    }
}
