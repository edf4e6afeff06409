//! The OpenAPI documents kube-apiserver publishes (`/openapi/v2`,
//! `/openapi/v3`, `/openapi/v3/<gv>`), generated from k8s-openapi's schemas,
//! and the schema walk behind `fieldValidation` ([`validate`]).
//!
//! Documents are generated once, on first request, and kept as serialized
//! bytes only; see [`cache`] for what that costs. `/openapi/v2` is also
//! served as gnostic protobuf ([`protobuf`]) for kubectl 1.27/1.28, which
//! load it before `explain`, `create` and `apply`.
//!
//! Wiring, for the HTTP layer:
//! `.merge(discovery_routes::router()).merge(openapi::router())`, and
//! on create/update `validate::strict_errors(group, version, kind, &body)`
//! when `fieldValidation` is `Strict` or `Warn` (the default).

pub mod cache;
pub mod document;
pub mod patch_meta;
pub mod paths;
pub mod protobuf;
pub mod schemas;
pub mod validate;

pub use cache::router;
