//! Export: an image's merged filesystem (whiteouts and opaque directories applied) as one
//! tar, streamed to a file, a device or fifo (written in place), or stdout (`-`).

use std::io::{BufWriter, Write};
use std::path::Path;

use hoist_image::mutate;
use hoist_image::output::{Named, Output};

use crate::context::Context;
use crate::error::{Context as _, Result};
use crate::location::{Location, STDOUT};
use crate::open::{Open, open_image};
use crate::write::binary_stdout;

/// Write the merged filesystem of the image at `src` to `out` (`-`: stdout). A regular
/// file is replaced only once the tar is complete.
pub fn export(src: &Location, out: &Path, ctx: &Context) -> Result<()> {
    ctx.blocking(|| export_here(src, out, ctx))
}

fn export_here(src: &Location, out: &Path, ctx: &Context) -> Result<()> {
    let img = open_image(src, &Open::default(), ctx)?;
    let what = || format!("exporting {src} to {}", out.display());
    if out.as_os_str() == STDOUT {
        let mut w = BufWriter::new(Named::new(binary_stdout()?, "stdout"));
        mutate::export(img.as_ref(), &mut w).with_context(what)?;
        w.flush()
            .map_err(|e| hoist_image::Error::from_io("stdout", e))?;
        return Ok(());
    }
    let mut file = Output::create(out).with_context(what)?;
    {
        let mut w = BufWriter::new(Named::new(file.file(), out.display()));
        mutate::export(img.as_ref(), &mut w).with_context(what)?;
        w.flush()
            .map_err(|e| hoist_image::Error::from_io(out.display(), e))
            .with_context(what)?;
    }
    file.commit().with_context(what)?;
    Ok(())
}

/// Write the merged filesystem of the image at `src` to `w`.
pub fn export_to(src: &Location, w: &mut (dyn Write + Send), ctx: &Context) -> Result<()> {
    ctx.blocking(|| export_to_here(src, w, ctx))
}

fn export_to_here(src: &Location, w: &mut (dyn Write + Send), ctx: &Context) -> Result<()> {
    let img = open_image(src, &Open::default(), ctx)?;
    mutate::export(img.as_ref(), w).with_context(|| format!("exporting {src}"))?;
    Ok(())
}
