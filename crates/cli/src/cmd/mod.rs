//! One module per verb.

pub mod random;
pub mod validate;
pub mod version;
