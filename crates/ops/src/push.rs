//! Push: an image or index from a layout or a docker-save tarball to one or more registry
//! destinations, through the push engine: each layer sealed once (a tarball's through
//! the cache, so a re-push compresses nothing), then HEADs, mounts and parallel uploads
//! of what is missing; each extra tag or destination costs one manifest PUT.

use hoist_image::Reference;
use hoist_image::pipeline::{self, Encoding};
use hoist_remote::push::Strategy;

use crate::context::Context;
use crate::error::{Context as _, Result, bail};
use crate::location::Location;
use crate::open::{Open, open_with};
use crate::write::{Report, push_to};

/// How to push.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Upload while compressing instead of sealing first (single images only; every
    /// layer is compressed on every push).
    pub stream: bool,
    /// Upload in chunks of this many bytes (`Content-Range` PATCHes).
    pub chunk_size: Option<u64>,
    /// gzip level for layers that need compressing (a tarball's): 0-12, default
    /// [`pipeline::DEFAULT_PUSH_GZIP_LEVEL`] (the layer goes on the network now).
    pub level: Option<u32>,
    /// gzip with ISA-L's igzip (`Encoding::fast`).
    pub fast: bool,
}

impl Options {
    /// The encoding of layers that need compressing.
    pub fn encoding(&self) -> Result<Encoding> {
        let mut e = Encoding::gzip();
        e.level = Some(self.level.unwrap_or(pipeline::DEFAULT_PUSH_GZIP_LEVEL));
        if self.fast {
            e = e.fast();
        }
        e.validate().context("invalid --level")?;
        Ok(e)
    }
}

/// Push `src` (a layout or a tarball) to every destination (`latest` when one has no
/// tag). The report has one entry per destination, in order.
pub fn push(src: &Location, dsts: &[Reference], opts: &Options, ctx: &Context) -> Result<Report> {
    ctx.blocking(|| push_here(src, dsts, opts, ctx))
}

fn push_here(src: &Location, dsts: &[Reference], opts: &Options, ctx: &Context) -> Result<Report> {
    let encoding = opts.encoding()?;
    if let Location::Registry(r) = src {
        bail!(
            "docker://{r}: hoist push takes a local image; copy between registries with hoist copy docker://SRC docker://DST"
        );
    }
    let child = open_with(src, &Open::encoding(encoding.clone()), ctx)?;
    let mut popts = ctx.push_options()?;
    popts.chunk_size = opts.chunk_size;
    if opts.stream {
        popts.strategy = Strategy::Stream(encoding);
    }
    push_to(dsts, child, &popts, ctx).with_context(|| format!("pushing {src}"))
}
