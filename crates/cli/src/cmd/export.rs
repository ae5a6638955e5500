//! `hoist export SRC FILE|-`: the image's merged filesystem (whiteouts and opaque
//! directories applied) as one tar, streamed to a file or stdout.

use std::io::{BufWriter, Write};

use anyhow::Context;
use hoist_image::mutate;
use hoist_image::output::{Named, Output};
use hoist_image::pipeline::Encoding;

use super::cache::CacheOpts;
use super::mutate::open_image;

/// Arguments of `hoist export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: oci:DIR[:NAME], docker-archive:FILE[:REF], or a path.
    pub src: String,
    /// Where the tar goes: a file (a device or fifo is written as a stream), or `-` for stdout.
    pub out: String,
}

/// Run `hoist export`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let stores = cache.store()?;
    let opened = open_image(&args.src, &Encoding::none(), &stores, None)?;
    let (src, img) = (&opened.loc, opened.image.clone());
    let what = || format!("exporting {src} to {}", args.out);
    if args.out == crate::location::STDOUT {
        let mut w = BufWriter::new(Named::new(crate::location::binary_stdout()?, "stdout"));
        mutate::export(img.as_ref(), &mut w).with_context(what)?;
        w.flush()
            .map_err(|e| hoist_image::Error::from_io("stdout", e))?;
        return Ok(());
    }
    // A regular file is replaced only once complete (a failed export leaves no partial
    // tar); a device or fifo is written as a stream.
    let path = std::path::Path::new(&args.out);
    let mut out = Output::create(path).with_context(what)?;
    {
        let mut w = BufWriter::new(Named::new(out.file(), path.display()));
        mutate::export(img.as_ref(), &mut w).with_context(what)?;
        w.flush()
            .map_err(|e| hoist_image::Error::from_io(path.display(), e))
            .with_context(what)?;
    }
    out.commit().with_context(what)?;
    Ok(())
}
