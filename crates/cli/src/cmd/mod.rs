//! One module per verb.

pub mod cache;
pub mod copy;
pub mod random;
pub mod serve;
pub mod validate;
pub mod version;
