//! Per-kind strategies: defaults and validation, one module per kind.
pub mod validation;
