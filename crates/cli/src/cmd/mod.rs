//! One module per verb.

pub mod cache;
pub mod copy;
pub mod random;
pub mod validate;
pub mod serve;
pub mod version;
