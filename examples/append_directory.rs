//! Add a directory as a new layer on top of an image (or of nothing: `scratch`), and write
//! the result anywhere: a layout, a tarball or a registry.
//!
//! ```text
//! cargo run -p hoist-examples --example append_directory -- BASE|scratch DIR DST
//! ```
//!
//! The directory becomes a reproducible tar (sorted entries, mtime 0, owner 0:0): the same
//! directory gives the same digest. The base's layers are never read: in a registry, they
//! are mounted into the destination repository.

use std::path::PathBuf;

use hoist_ops::append::{self, Base};
use hoist_ops::{Context, Location, Report};

/// Append `dir` to `base` (`scratch` for none) and write the image to `dst`.
pub fn run(base: &str, dir: &str, dst: &str, ctx: &Context) -> hoist_ops::Result<Report> {
    let base = match base {
        "scratch" => Base::Scratch(None),
        b => Base::Image(Location::parse(b)?),
    };
    let opts = append::Options {
        time: Some(0),
        ..append::Options::default()
    };
    append::append(
        &base,
        &[PathBuf::from(dir)],
        &opts,
        &Location::parse(dst)?,
        ctx,
    )
}

#[allow(dead_code)] // the test calls `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, dir, dst] = args.as_slice() else {
        return Err("usage: append_directory BASE|scratch DIR DST".into());
    };
    let ctx = Context::builder().default_cache().build()?;
    println!("{}", run(base, dir, dst, &ctx)?.written[0]);
    Ok(())
}
