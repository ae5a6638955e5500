//! Append: new layers on top of an image (or of an empty one, `scratch`). A directory
//! becomes a deterministic tar (sorted entries, the given mtime and owner); a tar file
//! (plain, gzip or zstd) is taken as it is, its paths checked. Each new layer is
//! compressed once, through the context's store; the base's layers are never read.

use std::path::PathBuf;
use std::sync::Arc;

use hoist_image::mutate::{self, Addendum, DirOptions};
use hoist_image::pipeline::Encoding;
use hoist_image::{Image, Platform};

use crate::context::Context;
use crate::error::{Context as _, Result, bail};
use crate::location::Location;
use crate::open::{Open, open_image};
use crate::write::{Report, write};

/// What the new layers go on.
#[derive(Debug, Clone)]
pub enum Base {
    /// An image at a location.
    Image(Location),
    /// No layers at all, of this platform (default [`mutate::SCRATCH_PLATFORM`]).
    Scratch(Option<Platform>),
}

/// How to make the new layers.
#[derive(Debug, Clone)]
pub struct Options {
    /// Compression of the new layers.
    pub encoding: Encoding,
    /// Time of the new history entries and `created`, and the mtime of directory
    /// layers' entries (seconds since 1970). `None`: mtimes 0, times unset.
    pub time: Option<u64>,
    /// Owner (uid, gid) of directory layers' entries.
    pub owner: (u64, u64),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            encoding: Encoding::gzip(),
            time: None,
            owner: (0, 0),
        }
    }
}

/// Add `layers` (tar files or directories, base first) on top of `base`; write the
/// result to `dst`.
pub fn append(
    base: &Base,
    layers: &[PathBuf],
    opts: &Options,
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    ctx.blocking(|| append_here(base, layers, opts, dst, ctx))
}

fn append_here(
    base: &Base,
    layers: &[PathBuf],
    opts: &Options,
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    let (base, shown): (Arc<dyn Image>, String) = match base {
        Base::Scratch(p) => (mutate::scratch(p.as_ref())?, "scratch".into()),
        Base::Image(loc) => (
            open_image(loc, &Open::encoding(Encoding::gzip()), ctx)?,
            loc.to_string(),
        ),
    };
    if layers.is_empty() {
        bail!("append: no layer given");
    }
    let store = ctx.store()?;
    let mt = mutate::layer_media_type(base.as_ref(), opts.encoding.compression)?;
    let dir = DirOptions {
        mtime: opts.time.unwrap_or(0),
        uid: opts.owner.0,
        gid: opts.owner.1,
    };
    let mut add = Vec::new();
    for p in layers {
        let layer = mutate::layer_from_path(p, dir, &opts.encoding, mt.clone(), store.clone())
            .with_context(|| format!("layer {}", p.display()))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string());
        add.push(Addendum {
            layer,
            created_by: format!("hoist append {name}"),
        });
    }
    let out =
        mutate::append(base, add, opts.time).with_context(|| format!("appending to {shown}"))?;
    write(dst, hoist_image::Child::Image(out), ctx)
}
