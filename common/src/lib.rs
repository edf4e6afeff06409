//! Shared, I/O-free building blocks of ferrokube: the table of API resources
//! every component agrees on, label and field selectors, and JSON patching.
//!
//! Layering follows kube-rs: this crate holds types and pure functions; the
//! client/informer layer and the components sit above it.

pub mod lean;
pub mod patch;
pub mod resources;
pub mod selector;
pub mod strict;

pub use resources::{RESOURCES, ResourceInfo, Scope};
