//! Validate: the one oracle ([`hoist_image::validate`]) run on any location: every
//! digest, size and diff_id recomputed, each blob read once (with `fast`, manifests,
//! configs and reported facts only). A docker-save tarball holds plain layers and no
//! manifest: each of its images (or the one its reference names) is checked by sealing
//! its layers uncompressed into a temporary spool (disk, never RAM) — its structure
//! only, with `fast`.

use std::sync::Arc;

use hoist_image::pipeline::Encoding;
use hoist_image::tarball::{self, Archive};
use hoist_image::validate::{self, Options, Report};
use hoist_image::{Child, Image as _, SpoolStore, Store};

use crate::context::Context;
use crate::error::{Context as _, Result};
use crate::location::Location;
use crate::open::open;

/// Check what is at `loc`.
pub fn validate(loc: &Location, opts: Options, ctx: &Context) -> Result<Report> {
    ctx.blocking(|| validate_here(loc, opts, ctx))
}

fn validate_here(loc: &Location, opts: Options, ctx: &Context) -> Result<Report> {
    let check = |child: Child| match child {
        Child::Image(i) => validate::image(i.as_ref(), opts),
        Child::Index(i) => validate::index(i.as_ref(), opts),
    };
    let Location::Archive { file, reference } = loc else {
        let child = open(loc, ctx)?;
        return check(child).with_context(|| format!("{loc} is not valid"));
    };
    let archive = Archive::open(file)?;
    // Layers are only checked, never kept: seal them uncompressed into a spool (no
    // compression work), shared by all images of the archive.
    let store: Arc<dyn Store> = Arc::new(SpoolStore::new()?);
    let topts = tarball::Options {
        tag: None,
        encoding: Encoding::none(),
        store: Some(store),
    };
    let which: Vec<usize> = match reference {
        Some(r) => vec![archive.find(Some(&r.to_string()))?],
        None => (0..archive.manifest().len()).collect(),
    };
    let mut total = Report::default();
    for i in which {
        // Opening checks the structure: config parsed, one member per diff_id.
        let image = archive.image(i, &topts)?;
        if opts.fast {
            // A tarball's digests exist only once its layers are read and hashed: with
            // `fast` there is nothing more to check without reading them.
            total.images += 1;
            total.layers += image.layers()?.len();
            continue;
        }
        let r = validate::image(&image, opts)
            .with_context(|| format!("{loc}: image {i} is not valid"))?;
        total.images += r.images;
        total.layers += r.layers;
        total.bytes += r.bytes;
        total.uncompressed_bytes += r.uncompressed_bytes;
    }
    Ok(total)
}
