//! Helpers for hoist-ops' tests: contexts, seeded images at locations, the in-process
//! registry's locations, and the oracle.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use hoist_image::random::{self, Mode};
use hoist_image::validate::Report;
use hoist_image::{Child, Reference};
use hoist_ops::{Context, Location};
use hoist_testkit::registry::TestRegistry;

/// A context that seals into temporary files.
pub fn ctx() -> Context {
    Context::builder().retries(1).build().unwrap()
}

/// A context with the content cache in `dir`.
pub fn cached(dir: &Path) -> Context {
    Context::builder()
        .cache_dir(dir)
        .retries(1)
        .build()
        .unwrap()
}

/// A seeded image of `layers` text layers of 20 KB.
pub fn image(layers: usize, seed: u64) -> Child {
    Child::Image(
        random::image(&random::Options {
            layers,
            size: 20_000,
            mode: Mode::Text,
            seed,
            ..Default::default()
        })
        .unwrap(),
    )
}

/// A seeded index of `n` images of 2 layers.
pub fn index(n: usize, seed: u64) -> Child {
    Child::Index(
        random::index(
            &random::Options {
                layers: 2,
                size: 10_000,
                seed,
                ..Default::default()
            },
            n,
        )
        .unwrap(),
    )
}

/// `oci:DIR:NAME`.
pub fn layout(dir: &Path, name: &str) -> Location {
    Location::parse(&format!("oci:{}:{name}", dir.display())).unwrap()
}

/// `docker-archive:FILE`.
pub fn archive(file: &Path) -> Location {
    Location::parse(&format!("docker-archive:{}", file.display())).unwrap()
}

/// `docker://HOST/REPO[:TAG]` on the in-process registry.
pub fn at(reg: &TestRegistry, repo: &str) -> Location {
    Location::Registry(reference(reg, repo))
}

/// `HOST/REPO[:TAG]` on the in-process registry.
pub fn reference(reg: &TestRegistry, repo: &str) -> Reference {
    Reference::parse(&format!("{}/{repo}", reg.host())).unwrap()
}

/// Write `child` at `loc`; its digest.
pub fn put(child: Child, loc: &Location, ctx: &Context) -> hoist_image::Digest {
    hoist_ops::write(loc, child, ctx).unwrap().written[0]
        .digest
        .clone()
}

/// The oracle on what is at `loc`.
pub fn valid(loc: &Location, ctx: &Context) -> Report {
    hoist_ops::validate::validate(loc, Default::default(), ctx)
        .unwrap_or_else(|e| panic!("{loc}: {e:#}"))
}

/// The image at `loc`.
pub fn image_at(loc: &Location, ctx: &Context) -> Arc<dyn hoist_image::Image> {
    hoist_ops::open_image(loc, &Default::default(), ctx).unwrap()
}
