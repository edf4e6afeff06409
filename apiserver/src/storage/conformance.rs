//! The storage conformance suite, run against every backend.
