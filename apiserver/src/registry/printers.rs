//! Table printers: the `kubectl get` columns of every kind.
