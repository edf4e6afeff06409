//! The ferrokube scheduler: watches unscheduled pods and nodes through the
//! API server, runs kube-scheduler's framework of filter and score plugins
//! to pick a node, and binds. Also hollow nodes to schedule onto in tests
//! and benchmarks.

pub mod cache;
pub mod explain;
pub mod framework;
pub mod hollow;
pub mod plugins;
pub mod preemption;
pub mod quantity;
pub mod queue;
pub mod report;
pub mod resources;
pub mod scheduler;
