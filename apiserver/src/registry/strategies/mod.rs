//! Per-kind strategies: defaults and validation, one module per kind.
