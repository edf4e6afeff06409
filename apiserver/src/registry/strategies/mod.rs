//! Per-kind strategies: defaults and validation, one module per kind or
//! family, as Kubernetes' `pkg/registry/<group>/<kind>/strategy.go` with
//! `pkg/apis/<group>/v1/defaults.go` and `pkg/apis/<group>/validation`.
//!
//! Every strategy is a public unit struct the store is built with
//! (`Store::<PodStrategy>::new(...)`); [`validation`] holds the shared
//! apimachinery validators, including [`validation::validate_object_meta`]
//! that the store runs on every object.

mod batch;
mod cluster;
mod config;
mod container_validation;
mod cron;
mod daemonset;
mod deployment;
mod event;
mod gofmt;
mod lease;
mod network;
mod pod;
mod pod_defaults;
mod pod_validation;
mod quantity;
mod service;
mod statefulset;
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
pub use lease::LeaseStrategy;
pub use network::{EndpointSliceStrategy, EndpointsStrategy};
pub use pod::{POD_UPDATE_FORBIDDEN, PodStrategy, pod_qos_class};
pub use service::ServiceStrategy;
pub use statefulset::StatefulSetStrategy;
