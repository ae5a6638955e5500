//! One module per verb.

pub mod cache;
pub mod copy;
pub mod version;
