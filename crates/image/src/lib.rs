//! # hoist-image: the container image model, local formats and the layer pipeline
//!
//! Synchronous (`std::io::Read` / `Write`), no HTTP, no async: everything here can be
//! tested and benchmarked without a runtime.
//!
//! ## Glossary
//! - **digest** ([`Digest`]): `sha256:<hex>` of bytes as stored or sent — a compressed
//!   layer blob, a config, a manifest's raw bytes.
//! - **diff_id** ([`DiffId`]): the digest of a layer's *uncompressed* tar, listed in the
//!   config's `rootfs.diff_ids`. A distinct type, so the two cannot be confused.
//! - **sealing**: the one pass that reads an uncompressed layer once, hashes it (diff_id),
//!   compresses it once and hashes the output (digest, size): see [`pipeline::seal`].
//!
//! ## Example
//! ```
//! use hoist_image::{pipeline, Digest, MediaType};
//! let tar = b"not really a tar, but bytes all the same";
//! let mut blob = Vec::new();
//! let sealed = pipeline::seal(&tar[..], &pipeline::Encoding::gzip(), MediaType::OciLayerGzip, &mut blob).unwrap();
//! assert_eq!(sealed.diff_id.digest(), &Digest::sha256(tar));
//! assert_eq!(sealed.digest, Digest::sha256(&blob));
//! ```
#![warn(missing_docs)]

mod cache;
pub mod compress;
mod digest;
mod direct;
mod error;
mod image;
mod layer;
pub mod layout;
mod manifest;
mod media_type;
pub mod mutate;
pub mod output;
pub mod partial;
pub mod pipeline;
mod quote;
pub mod random;
mod reference;
pub mod tarball;
pub mod validate;

pub use cache::{Cache, CacheEntry, CacheStats, MemoryStore, PruneStats};
pub use digest::{
    Algorithm, DiffId, Digest, Hasher, HashingReader, HashingWriter, VerifyingReader,
};
pub use error::{Error, ErrorKind, Result};
pub use image::{Child, Image, ImageIndex};
pub use layer::{
    BoxRead, CompressedSource, FromCompressed, FromUncompressed, Layer, Sealed, SpoolStore, Store,
    UncompressedSource,
};
pub use manifest::{
    ANNOTATION_REF_NAME, Config, ConfigFile, Descriptor, ImageManifest, IndexManifest,
    MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Manifest, Parsed, Platform, RootFs,
};
pub use media_type::{Compression, MediaType};
pub use quote::{MAX_QUOTED_CHARS, Quoted, quote};
pub use reference::{
    DEFAULT_TAG, DOCKER_HUB, DOCKER_HUB_API, NAME_MAX_LEN, Reference, TAG_MAX_LEN, is_loopback,
    validate_registry, validate_repository, validate_tag,
};
