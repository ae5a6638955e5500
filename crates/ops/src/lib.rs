//! # hoist-ops: hoist's verbs as library calls
//!
//! What go-containerregistry's `pkg/crane` is to its `pkg/v1`: one call per verb over
//! the image model ([`hoist_image`]) and the registry client ([`hoist_remote`]), so a
//! program (and the `hoist` CLI, which is argument parsing plus one call of this crate
//! plus output formatting) copies, pulls, pushes, changes and checks images in a line.
//!
//! - [`Location`]: where an image is or goes — `oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]`,
//!   `docker-archive:FILE[:REF]` (`-` is stdout), `docker://REF`, or a bare path or
//!   reference, parsed as skopeo does; [`Platforms`] picks images of an index.
//! - [`Context`]: registry options (credentials, insecure hosts, CA files, retries,
//!   transfers in flight), where layers are sealed (the content cache, temporary files, a store of
//!   yours), a progress sink, and the async runtime — made when first needed, owned by
//!   the context, invisible to synchronous callers.
//! - [`open`] any location as an image or index ([`Child`](hoist_image::Child)); [`write()`]
//!   one to any location (layout, tarball, or the push engine, mounting layers read from
//!   a repository of the destination's registry instead of uploading them). Verbs that
//!   write return a [`Report`]: the digest written at each destination.
//! - One module per verb: [`copy`], [`pull`], [`push`], [`append`], [`mutate`],
//!   [`flatten`], [`rebase`], [`export`], [`index`] (create, append, filter, list),
//!   [`validate`], [`tag`], [`delete`], [`sync`] (many repositories and tags, registry
//!   to registry), and the [`inspect`] verbs (digest, manifest, config, ls, catalog,
//!   blob, referrers).
//!
//! ## Glossary
//! - **digest**: `sha256:<hex>` of bytes as stored or sent (a compressed layer, a config,
//!   a manifest's raw bytes). A manifest's digest is what registries and layouts address.
//! - **diff_id**: the digest of a layer's *uncompressed* tar (the config's
//!   `rootfs.diff_ids`). A docker-save tarball's layers are plain tars, so its images are
//!   named by their config's digest, the **image ID**.
//!
//! ## Example
//! ```no_run
//! use hoist_ops::{Context, Location, copy};
//! let ctx = Context::builder().default_cache().build()?;
//! let src = Location::parse("docker-archive:app.tar")?;
//! let dst = Location::parse("docker://localhost:5000/team/app:v1")?;
//! let report = copy::copy(&src, &dst, &copy::Options::default(), &ctx)?;
//! println!("{}", report.written[0]); // docker://localhost:5000/team/app:v1: sha256:...
//! # Ok::<(), hoist_ops::Error>(())
//! ```
#![warn(missing_docs)]

pub mod append;
mod context;
pub mod copy;
pub mod delete;
mod error;
pub mod export;
pub mod flatten;
pub mod index;
pub mod inspect;
mod location;
pub mod mutate;
mod oci_archive;
mod open;
pub mod pull;
pub mod push;
pub mod rebase;
pub mod sync;
pub mod tag;
pub mod validate;
mod watch;
mod write;

pub use context::{Context, ContextBuilder, Stores};
pub use error::{Context as ResultExt, Error, ErrorKind, Result};
pub use location::{Location, PathKind, STDOUT};
pub use open::{Open, Platforms, open, open_image, open_index, open_with, select};
pub use write::{DigestKind, Report, Written, binary_stdout, write, write_tarball};
