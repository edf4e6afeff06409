//! Per-kind strategies: defaults and validation, one module per kind or
//! family, as Kubernetes' `pkg/registry/<group>/<kind>/strategy.go` with
//! `pkg/apis/<group>/v1/defaults.go` and `pkg/apis/<group>/validation`.
//!
//! Every strategy is a public unit struct the store is built with
//! (`Store::<PodStrategy>::new(...)`); [`validation`] holds the shared
//! apimachinery validators, including [`validation::validate_object_meta`]
//! that the store runs on every object.
//!
//! | resource | strategy | name rule |
//! |---|---|---|
//! | `namespaces` | [`NamespaceStrategy`] | DNS-1123 label |
//! | `pods` | [`PodStrategy`] | subdomain |
//! | `nodes` | [`NodeStrategy`] | subdomain |
//! | `services` | [`ServiceStrategy`] | DNS-1035 label (label rule + leading letter in `validate`) |
//! | `endpoints` | [`EndpointsStrategy`] | subdomain |
//! | `configmaps`, `secrets`, `serviceaccounts` | [`ConfigMapStrategy`], [`SecretStrategy`], [`ServiceAccountStrategy`] | subdomain |
//! | `events` | [`EventStrategy`] | path segment |
//! | `apps/deployments`, `replicasets`, `daemonsets` | [`DeploymentStrategy`], [`ReplicaSetStrategy`], [`DaemonSetStrategy`] | subdomain |
//! | `apps/statefulsets` | [`StatefulSetStrategy`] | DNS-1123 label |
//! | `batch/jobs`, `cronjobs` | [`JobStrategy`], [`CronJobStrategy`] | subdomain (CronJob ≤ 52 chars in `validate`) |
//! | `coordination.k8s.io/leases` | [`LeaseStrategy`] | subdomain |
//! | `discovery.k8s.io/endpointslices` | [`EndpointSliceStrategy`] | subdomain |
//! | `events.k8s.io/events` | [`EventsV1EventStrategy`] | subdomain |
//! | `networking.k8s.io/ingresses`, `ingressclasses` | [`IngressStrategy`], [`IngressClassStrategy`] | subdomain |
//! | `scheduling.k8s.io/priorityclasses` | [`PriorityClassStrategy`] | subdomain |
//! | `persistentvolumes`, `persistentvolumeclaims` | [`PersistentVolumeStrategy`], [`PersistentVolumeClaimStrategy`] | subdomain |
//!
//! Ordering: `default` is idempotent and may run before or after
//! `prepare_for_create`/`prepare_for_update`; the strategies that compare
//! with defaulted values (QoS class, DaemonSet template generation,
//! Deployment generation) default a copy themselves.

mod batch;
mod cluster;
mod config;
mod container_validation;
mod cron;
mod daemonset;
mod deployment;
mod event;
mod gofmt;
mod ingress;
mod lease;
mod network;
mod pod;
mod pod_defaults;
mod pod_serviceaccount;
mod pod_validation;
mod quantity;
mod service;
mod statefulset;
mod storage;
#[cfg(test)]
mod testutil;
pub mod validation;
mod workload;

pub use batch::{CronJobStrategy, JobStrategy};
pub use cluster::{NamespaceStrategy, NodeStrategy, PriorityClassStrategy};
pub use config::{ConfigMapStrategy, SecretStrategy, ServiceAccountStrategy};
pub use daemonset::DaemonSetStrategy;
pub use deployment::{DeploymentStrategy, ReplicaSetStrategy};
pub use event::{EventStrategy, EventsV1EventStrategy};
pub use ingress::{INGRESS_CLASS_ANNOTATION, IngressClassStrategy, IngressStrategy};
pub use lease::LeaseStrategy;
pub use network::{EndpointSliceStrategy, EndpointsStrategy};
pub use pod::{POD_UPDATE_FORBIDDEN, PodStrategy, apply_default_admission, pod_qos_class};
pub use service::ServiceStrategy;
pub use statefulset::StatefulSetStrategy;
pub use storage::{PersistentVolumeClaimStrategy, PersistentVolumeStrategy};

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::registry::{NameRule, Strategy};

    /// The watch cache's index decode (the metadata and the kind's
    /// FIELD_SOURCES) gives every selectable field the full decode gives.
    fn assert_index_decode_serves_the_field_selectors<S: Strategy>(strategy: &S, object: Value) {
        let bytes = serde_json::to_vec(&object).expect("encodes");
        let full: S::Object = serde_json::from_slice(&bytes).expect("decodes");
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let indexed: S::Object =
            common::lean::for_index(&mut de, S::FIELD_SOURCES).expect("decodes");
        let expected = strategy.selectable_fields(&full);
        assert!(
            expected
                .iter()
                .all(|(_, v)| !v.is_empty() && v != "0" && v != "false"),
            "the sample sets every field: {expected:?}"
        );
        assert_eq!(strategy.selectable_fields(&indexed), expected, "{object}");
        let meta = |o: &S::Object| k8s_openapi::Metadata::metadata(o).clone();
        let mut full_meta = meta(&full);
        full_meta.managed_fields = None;
        assert_eq!(meta(&indexed), full_meta);
    }

    #[test]
    fn the_watch_cache_decodes_what_field_selectors_read() {
        let metadata = json!({"name": "x", "namespace": "default", "labels": {"app": "web"},
            "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {}}}]});
        assert_index_decode_serves_the_field_selectors(
            &PodStrategy::DEFAULT,
            json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"nodeName": "n1", "restartPolicy": "Never", "schedulerName": "s",
                "serviceAccountName": "sa", "hostNetwork": true,
                "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.2"}], "podIP": "10.0.0.1",
                "nominatedNodeName": "n2"}}),
        );
        assert_index_decode_serves_the_field_selectors(
            &NamespaceStrategy,
            json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"},
            "status": {"phase": "Terminating"}}),
        );
        assert_index_decode_serves_the_field_selectors(
            &NodeStrategy,
            json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"unschedulable": true, "podCIDR": "10.0.0.0/24"}}),
        );
        assert_index_decode_serves_the_field_selectors(
            &JobStrategy,
            json!({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
            "spec": {"template": {"spec": {"containers": []}}},
            "status": {"succeeded": 2, "active": 1}}),
        );
        assert_index_decode_serves_the_field_selectors(
            &ReplicaSetStrategy,
            json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata,
            "spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": 1}}),
        );
        assert_index_decode_serves_the_field_selectors(
            &EventStrategy,
            json!({
            "apiVersion": "v1", "kind": "Event", "metadata": metadata,
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u",
                "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec.containers{c}"},
            "reason": "Started", "reportingComponent": "kubelet", "source": {"component": "kubelet"},
            "type": "Normal", "message": "m", "count": 2}),
        );
        assert_index_decode_serves_the_field_selectors(
            &EventsV1EventStrategy,
            json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": metadata,
            "eventTime": "2026-12-05T00:00:00.000000Z",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "p", "uid": "u",
                "apiVersion": "v1", "resourceVersion": "7", "fieldPath": "spec"},
            "reason": "Started", "reportingController": "kubelet", "type": "Normal", "note": "n"}),
        );
        assert_index_decode_serves_the_field_selectors(
            &SecretStrategy,
            json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": metadata,
            "type": "Opaque", "data": {"k": "dmFsdWU="}}),
        );
        assert_index_decode_serves_the_field_selectors(
            &ServiceStrategy,
            json!({
            "apiVersion": "v1", "kind": "Service", "metadata": metadata,
            "spec": {"clusterIP": "10.96.0.10", "type": "ClusterIP", "ports": [{"port": 53}]}}),
        );
    }

    #[test]
    fn each_kind_validates_names_with_its_kubernetes_rule() {
        let cases = [
            (
                "namespaces",
                NamespaceStrategy.name_rule(),
                NameRule::Dns1123Label,
            ),
            (
                "services",
                ServiceStrategy.name_rule(),
                NameRule::Dns1123Label,
            ),
            (
                "statefulsets",
                StatefulSetStrategy.name_rule(),
                NameRule::Dns1123Label,
            ),
            ("events", EventStrategy.name_rule(), NameRule::PathSegment),
            (
                "pods",
                PodStrategy::DEFAULT.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "nodes",
                NodeStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "endpoints",
                EndpointsStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "configmaps",
                ConfigMapStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "secrets",
                SecretStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "serviceaccounts",
                ServiceAccountStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "deployments",
                DeploymentStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "replicasets",
                ReplicaSetStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "daemonsets",
                DaemonSetStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            ("jobs", JobStrategy.name_rule(), NameRule::Dns1123Subdomain),
            (
                "cronjobs",
                CronJobStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "leases",
                LeaseStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "endpointslices",
                EndpointSliceStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "events.k8s.io",
                EventsV1EventStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
            (
                "priorityclasses",
                PriorityClassStrategy.name_rule(),
                NameRule::Dns1123Subdomain,
            ),
        ];
        for (resource, got, want) in cases {
            assert_eq!(got, want, "{resource}");
        }
    }
}
