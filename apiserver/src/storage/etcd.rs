//! etcd backend.
