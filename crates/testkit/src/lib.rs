//! Test helpers for hoist: wrappers for real peers (skopeo, the distribution registry),
//! the in-process registry and fixtures. Not published.

pub mod distribution;
pub mod peers;
