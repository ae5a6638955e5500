//! Copy an image (or a multi-platform index) from one registry to another.
//!
//! ```text
//! cargo run -p hoist-examples --example copy_between_registries -- docker://SRC docker://DST [--insecure HOST]...
//! ```
//!
//! Blobs stream from the source into the destination's uploads (nothing on disk); when
//! both are repositories of one registry, every blob is mounted instead of copied.

use hoist_ops::{Context, Location, Report, copy};

/// Copy `src` to `dst`, every layer as it is.
pub fn run(src: &str, dst: &str, ctx: &Context) -> hoist_ops::Result<Report> {
    let src = Location::parse(src)?;
    let dst = Location::parse(dst)?;
    copy::copy(&src, &dst, &copy::Options::default(), ctx)
}

#[allow(dead_code)] // the test calls `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(src), Some(dst)) = (args.next(), args.next()) else {
        return Err("usage: copy_between_registries SRC DST [--insecure HOST]...".into());
    };
    let mut ctx = Context::builder();
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--insecure", Some(host)) => ctx = ctx.insecure(host),
            _ => return Err(format!("unexpected argument {a:?}").into()),
        }
    }
    let report = run(&src, &dst, &ctx.build()?)?;
    println!("{}", report.written[0]);
    Ok(())
}
