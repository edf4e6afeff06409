//! The ferrokube API server: the Kubernetes REST API, served from a watch
//! cache and persisted through [`storage::Storage`] to etcd or to the
//! embedded store.

pub mod cache;
pub mod discovery;
pub mod error;
pub mod openapi;
pub mod registry;
pub mod storage;
