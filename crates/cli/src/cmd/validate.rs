//! `hoist validate LOCATION [--fast]`: recompute and check every digest, size and diff_id
//! ([`hoist_ops::validate`]).

use std::io::Write;

use hoist_image::validate::Options;
use hoist_ops::Location;

use crate::options::{Ctx, Global, RemoteArgs};

/// Arguments of `hoist validate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME], docker-archive:FILE[:REF], or an existing path.
    pub location: String,
    /// Check manifests, configs and reported facts only; do not read layer bytes.
    #[arg(long)]
    pub fast: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Validate what is at the location; prints a one-line summary.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let fast = args.fast;
    let loc = Location::parse(&args.location)?;
    let s = Ctx::new(g).remote(&args.remote).build()?;
    let report = hoist_ops::validate::validate(&loc, Options { fast }, &s.ctx);
    s.finish(None);
    let report = report?;
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
