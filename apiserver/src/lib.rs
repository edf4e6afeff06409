//! The ferrokube API server: the Kubernetes REST API, served from a watch
//! cache and persisted through [`storage::Storage`] to etcd or to the
//! embedded store.

pub mod admission;
pub mod cache;
pub mod discovery;
pub mod discovery_routes;
pub mod encoded;
pub mod error;
pub mod http;
pub mod kinds;
pub mod openapi;
pub mod protobuf;
pub mod registry;
pub mod server;
pub mod serviceaccount;
pub mod storage;
pub mod testing;
