//! Push a `docker save` tarball to one or more registry destinations.
//!
//! ```text
//! cargo run -p hoist-examples --example push_tarball -- app.tar localhost:5000/team/app:v1 [DST...]
//! ```
//!
//! Each layer is compressed once, into the content cache: run it twice and the second push
//! compresses nothing and uploads nothing (every blob is found present with a HEAD).

use hoist_image::Reference;
use hoist_ops::{Context, Location, Report, push};

/// Push the tarball at `tarball` to `destinations`.
pub fn run(tarball: &str, destinations: &[String], ctx: &Context) -> hoist_ops::Result<Report> {
    let src = Location::parse(&format!("docker-archive:{tarball}"))?;
    let dsts = destinations
        .iter()
        .map(|d| Reference::parse(d).map_err(hoist_ops::Error::from))
        .collect::<hoist_ops::Result<Vec<_>>>()?;
    push::push(&src, &dsts, &push::Options::default(), ctx)
}

#[allow(dead_code)] // the test calls `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tarball, destinations @ ..] = args.as_slice() else {
        return Err("usage: push_tarball IMAGE.tar REGISTRY/REPO[:TAG]...".into());
    };
    let ctx = Context::builder().default_cache().build()?;
    let report = run(tarball, destinations, &ctx)?;
    for w in &report.written {
        println!("{}", w.pinned().unwrap_or_default());
    }
    if let Some(p) = report.push {
        eprintln!(
            "{} blobs uploaded ({} bytes), {} mounted, {} already there",
            p.blobs_uploaded, p.bytes_uploaded, p.blobs_mounted, p.blobs_present
        );
    }
    Ok(())
}
