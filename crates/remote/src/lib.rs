//! # hoist-remote: the async registry client (transport, auth, push, pull, copy)
#![warn(missing_docs)]
