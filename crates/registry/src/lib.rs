//! # hoist-registry: the OCI distribution server, with a storage trait and a filesystem backend
#![warn(missing_docs)]
