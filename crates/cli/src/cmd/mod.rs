//! One module per verb.

pub mod random;
pub mod serve;
pub mod validate;
pub mod version;
