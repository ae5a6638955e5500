//! One module per verb.

pub mod serve;
pub mod version;
