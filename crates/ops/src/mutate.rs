//! Mutate: change an image's config (and manifest annotations) without touching its
//! layers. The destination gets one new config and one new manifest; every layer is
//! copied, mounted or found present as it is — never read, recompressed or re-uploaded.
//! An index (a layout's, or a registry's multi-platform image) has each of its images
//! edited, and a new index made of them.

use hoist_image::mutate::{self, Edits};
use hoist_image::pipeline::Encoding;
use hoist_image::{Child, Image};

use crate::context::Context;
use crate::error::{Context as _, Error, Result, bail};
use crate::location::Location;
use crate::open::{Open, open_with};
use crate::write::{Report, write};

/// Apply `edits` to the image (or every image of the index) at `src`; write the result
/// to `dst`.
pub fn mutate(src: &Location, edits: &Edits, dst: &Location, ctx: &Context) -> Result<Report> {
    ctx.blocking(|| mutate_here(src, edits, dst, ctx))
}

fn mutate_here(src: &Location, edits: &Edits, dst: &Location, ctx: &Context) -> Result<Report> {
    let how = Open::encoding(Encoding::gzip());
    let child = match src {
        Location::Registry(_) => open_with(src, &how, ctx)?,
        _ => open_with(src, &how, ctx).with_context(|| format!("opening {src}"))?,
    };
    let out = match child {
        Child::Image(img) => {
            Child::Image(mutate::edit(img, edits).with_context(|| format!("mutating {src}"))?)
        }
        Child::Index(index) => {
            if edits.platform.is_some() {
                bail!("--platform: {src} is an index of several platforms; edit one of its images");
            }
            let m = index.manifest()?;
            let entries = m
                .as_index()
                .ok_or_else(|| Error::invalid(format!("{src}: not an index")))?;
            let mut children = Vec::new();
            for d in &entries.manifests {
                let Child::Image(img) = index.child(d)? else {
                    bail!(
                        "{src}: nested indexes are not supported by mutate ({})",
                        d.digest
                    );
                };
                let out: std::sync::Arc<dyn Image> = mutate::edit(img, edits)
                    .with_context(|| format!("mutating {src} ({})", d.digest))?;
                children.push(Child::Image(out));
            }
            Child::Index(mutate::index::create(children)?)
        }
    };
    write(dst, out, ctx)
}
