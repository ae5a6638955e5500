//! `hoist export SRC FILE|-`: the image's merged filesystem (whiteouts and opaque
//! directories applied) as one tar, streamed to a file or stdout.

use std::io::Write;

use anyhow::Context;
use hoist_image::mutate;
use hoist_image::pipeline::Encoding;

use super::cache::CacheOpts;
use super::mutate::open_image;

/// Arguments of `hoist export`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: oci:DIR[:NAME], docker-archive:FILE[:REF], or a path.
    pub src: String,
    /// Where the tar goes: a file, or `-` for stdout.
    pub out: String,
}

/// Run `hoist export`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let stores = cache.store()?;
    let opened = open_image(&args.src, &Encoding::none(), &stores, None)?;
    let (src, img) = (&opened.loc, opened.image.clone());
    if args.out == "-" {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::new(stdout.lock());
        mutate::export(img.as_ref(), &mut w).with_context(|| format!("exporting {src}"))?;
        w.flush()?;
        return Ok(());
    }
    let path = std::path::Path::new(&args.out);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    // A temporary file renamed into place: a failed export leaves no partial tar.
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut w = std::io::BufWriter::new(tmp);
    mutate::export(img.as_ref(), &mut w).with_context(|| format!("exporting {src}"))?;
    let tmp = w.into_inner().map_err(|e| e.into_error())?;
    // tempfile creates 0600; an exported tar is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
