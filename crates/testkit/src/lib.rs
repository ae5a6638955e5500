//! Test helpers: in-process registry, fixtures, wrappers for real peers (skopeo, distribution).
