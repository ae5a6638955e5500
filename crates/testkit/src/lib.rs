//! Test helpers for hoist: wrappers for real peers (skopeo, the distribution registry),
//! the in-process registry, a distribution-spec conformance harness and fixtures. Not published.

pub mod conformance;
pub mod distribution;
pub mod peers;
pub mod registry;
