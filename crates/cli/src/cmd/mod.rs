//! One module per verb.

pub mod append;
pub mod auth;
pub mod cache;
pub mod completion;
pub mod copy;
pub mod delete;
pub mod demo;
pub mod export;
pub mod flatten;
pub mod index;
pub mod inspect;
pub mod layout;
pub mod mutate;
pub mod pull;
pub mod push;
pub mod random;
pub mod rebase;
pub mod registry;
pub mod serve;
pub mod sync;
pub mod tag;
pub mod validate;
pub mod version;
