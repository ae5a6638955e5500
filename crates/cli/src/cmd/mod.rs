//! One module per verb.

pub mod auth;
pub mod cache;
pub mod copy;
pub mod demo;
pub mod push;
pub mod random;
pub mod serve;
pub mod tag;
pub mod validate;
pub mod version;
