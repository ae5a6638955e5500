//! Flatten: one layer holding the image's merged filesystem (whiteouts applied),
//! compressed once through the context's store.

use hoist_image::mutate;
use hoist_image::pipeline::Encoding;

use crate::context::Context;
use crate::error::{Context as _, Result};
use crate::location::Location;
use crate::open::{Open, open_image};
use crate::write::{Report, write};

/// Flatten the image at `src` into one layer compressed with `encoding` (`time` stamps
/// `created` and the history entry); write it to `dst`.
pub fn flatten(
    src: &Location,
    encoding: &Encoding,
    time: Option<u64>,
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    ctx.blocking(|| flatten_here(src, encoding, time, dst, ctx))
}

fn flatten_here(
    src: &Location,
    encoding: &Encoding,
    time: Option<u64>,
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    // A tarball's layers are read as they are: no need to compress them on the way.
    let img = open_image(src, &Open::default(), ctx)?;
    let out = mutate::flatten(img, encoding, ctx.store()?, time)
        .with_context(|| format!("flattening {src}"))?;
    write(dst, hoist_image::Child::Image(out), ctx)
}
