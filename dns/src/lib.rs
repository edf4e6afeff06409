//! Cluster DNS: serves `<svc>.<ns>.svc.<zone>` and friends from watch-fed
//! caches of Services and EndpointSlices, and forwards every other name to
//! the host's resolvers.

pub mod index;
pub mod resolve;
