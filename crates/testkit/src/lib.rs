//! Test helpers for hoist: wrappers for real peers (skopeo, the distribution registry,
//! SeaweedFS, headless Chromium), the in-process registry, a distribution-spec conformance harness, a
//! fault-injecting proxy, a token service, hand-made API requests, child processes and
//! fixtures. Not published.

pub mod api;
pub mod browser;
pub mod conformance;
pub mod counting;
pub mod distribution;
pub mod faults;
pub mod haproxy;
mod http1;
pub mod mirror;
pub mod peers;
pub mod process;
pub mod registry;
pub mod seaweedfs;
pub mod stub;
pub mod tls;
pub mod token;
