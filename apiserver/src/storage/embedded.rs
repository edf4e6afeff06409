//! Embedded on-disk MVCC store.
