//! The ferrokube scheduler: watches unscheduled pods and nodes through the
//! API server, runs kube-scheduler's framework of filter and score plugins
//! to pick a node, and binds. Also hollow nodes to schedule onto in tests
//! and benchmarks.

pub mod framework;
pub mod plugins;
pub mod quantity;
pub mod resources;
pub mod cache;
pub mod queue;
pub mod explain;
pub mod preemption;
pub mod report;
pub mod scheduler;
pub mod hollow;
