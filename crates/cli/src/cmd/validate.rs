//! `hoist validate LOCATION [--fast]`: recompute and check every digest, size and diff_id.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use hoist_image::pipeline::Encoding;
use hoist_image::tarball::{self, Archive};
use hoist_image::validate::{self, Report};
use hoist_image::{Image as _, SpoolStore, Store};

use crate::location::Location;

/// Validate what is at `location`; prints a one-line summary.
pub fn run(location: &str, fast: bool) -> anyhow::Result<()> {
    let loc = Location::parse(location)?;
    let opts = validate::Options { fast };
    let report = match &loc {
        Location::Layout { .. } => match loc.open_local(&Encoding::none(), None)? {
            hoist_image::Child::Image(i) => validate::image(i.as_ref(), opts),
            hoist_image::Child::Index(i) => validate::index(i.as_ref(), opts),
        }
        .with_context(|| format!("{loc} is not valid"))?,
        Location::Archive { file, reference } => {
            let archive = Archive::open(file)?;
            // Layers are only checked, never kept: seal them uncompressed into a spool
            // (no compression work), shared by all images of the archive.
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
                if fast {
                    // A tarball's digests exist only once its layers are read and hashed:
                    // with --fast there is nothing more to check without reading them.
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
            total
        }
        Location::Registry(r) => {
            let remote = crate::cmd::push::RemoteArgs::default();
            let (_rt, child) = crate::cmd::pull::open_registry(r, &remote, None)?;
            match child {
                hoist_image::Child::Image(i) => validate::image(i.as_ref(), opts),
                hoist_image::Child::Index(i) => validate::index(i.as_ref(), opts),
            }
            .with_context(|| format!("{loc} is not valid"))?
        }
    };
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if report.indexes > 0 {
        parts.push(plural(report.indexes, "index", "indexes"));
    }
    parts.push(plural(report.images, "image", "images"));
    parts.push(plural(report.layers, "layer", "layers"));
    parts.push(if fast {
        "layer bytes not read (--fast)".to_string()
    } else {
        format!(
            "{} bytes hashed, {} uncompressed",
            report.bytes, report.uncompressed_bytes
        )
    });
    writeln!(std::io::stdout(), "{loc}: valid ({})", parts.join(", "))?;
    Ok(())
}
