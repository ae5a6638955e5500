//! Rebase: replace the layers of an old base at the bottom of an image with a new base's.
//! The old base's layers must be the image's first layers (by digest and diff_id). No
//! layer is read: the image's own layers and the new base's are copied or mounted as
//! they are.

use hoist_image::mutate;
use hoist_image::pipeline::Encoding;

use crate::context::Context;
use crate::error::{Context as _, Result};
use crate::location::Location;
use crate::open::{Open, open_image};
use crate::write::{Report, write};

/// Put `new_base` under the image at `src` instead of `old_base`; write it to `dst`.
pub fn rebase(
    src: &Location,
    old_base: &Location,
    new_base: &Location,
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    ctx.blocking(|| rebase_here(src, old_base, new_base, dst, ctx))
}

fn rebase_here(
    src: &Location,
    old_base: &Location,
    new_base: &Location,
    dst: &Location,
    ctx: &Context,
) -> Result<Report> {
    let how = Open::encoding(Encoding::gzip());
    let img = open_image(src, &how, ctx)?;
    let old = open_image(old_base, &how, ctx)?;
    let new = open_image(new_base, &how, ctx)?;
    let out = mutate::rebase(img, old.as_ref(), new.as_ref())
        .with_context(|| format!("rebasing {src}"))?;
    write(dst, hoist_image::Child::Image(out), ctx)
}
