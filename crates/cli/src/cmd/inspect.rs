//! Inspect verbs, crane-style: `digest`, `manifest`, `config` (registry, layout or
//! tarball), `ls`, `catalog`, `blob`, `referrers` (registry), each one call of
//! [`hoist_ops::inspect`]. Plain output one item a line; JSON objects printed as stored
//! (raw bytes).

use std::io::Write;

use hoist_ops::{Location, inspect};

use crate::options::{self, CacheOpts, Ctx, RemoteArgs};

/// A location argument.
#[derive(clap::Args, Debug)]
pub struct RefArgs {
    /// docker://REF (or a bare registry reference), oci:DIR[:NAME], docker-archive:FILE[:REF].
    pub location: String,
    /// For an index: the image of this platform (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// A repository argument.
#[derive(clap::Args, Debug)]
pub struct RepoArgs {
    /// host[:port]/name
    pub repository: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// A registry argument.
#[derive(clap::Args, Debug)]
pub struct RegistryArgs {
    /// host[:port]
    pub registry: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

impl RefArgs {
    fn parse(&self) -> anyhow::Result<(Location, Option<hoist_image::Platform>)> {
        Ok((
            Location::parse(&self.location)?,
            options::platform(self.platform.as_deref())?,
        ))
    }
}

/// `hoist digest`.
pub fn digest(a: &RefArgs, cache: &CacheOpts) -> anyhow::Result<()> {
    let (loc, platform) = a.parse()?;
    let ctx = Ctx::new(cache).remote(&a.remote).build()?;
    let d = inspect::digest(&loc, platform.as_ref(), &ctx)?;
    writeln!(std::io::stdout(), "{d}")?;
    Ok(())
}

/// `hoist manifest`.
pub fn manifest(a: &RefArgs, cache: &CacheOpts) -> anyhow::Result<()> {
    let (loc, platform) = a.parse()?;
    let ctx = Ctx::new(cache).remote(&a.remote).build()?;
    let m = inspect::manifest(&loc, platform.as_ref(), &ctx)?;
    let mut out = std::io::stdout().lock();
    out.write_all(m.raw())?;
    out.flush()?;
    Ok(())
}

/// `hoist config`.
pub fn config(a: &RefArgs, cache: &CacheOpts) -> anyhow::Result<()> {
    let (loc, platform) = a.parse()?;
    let ctx = Ctx::new(cache).remote(&a.remote).build()?;
    let c = inspect::config(&loc, platform.as_ref(), &ctx)?;
    let mut out = std::io::stdout().lock();
    out.write_all(c.raw())?;
    out.flush()?;
    Ok(())
}

/// `hoist ls`.
pub fn ls(a: &RepoArgs, cache: &CacheOpts) -> anyhow::Result<()> {
    let r = options::reference(&a.repository, "source")?;
    let ctx = Ctx::new(cache).remote(&a.remote).build()?;
    let tags = inspect::ls(&r, &ctx)?;
    let mut out = std::io::stdout().lock();
    for t in tags {
        writeln!(out, "{t}")?;
    }
    Ok(())
}

/// `hoist catalog`.
pub fn catalog(a: &RegistryArgs, cache: &CacheOpts) -> anyhow::Result<()> {
    let ctx = Ctx::new(cache).remote(&a.remote).build()?;
    let repos = inspect::catalog(&a.registry, &ctx)?;
    let mut out = std::io::stdout().lock();
    for r in repos {
        writeln!(out, "{r}")?;
    }
    Ok(())
}

/// `hoist blob REPO@DIGEST`: the blob to stdout. Verified as it streams; on a mismatch
/// the command fails (what was written before the end cannot be taken back).
pub fn blob(a: &RefArgs, cache: &CacheOpts) -> anyhow::Result<()> {
    let r = options::registry_location(&a.location, "blob")?;
    if r.digest().is_none() {
        anyhow::bail!(
            "invalid blob reference {:?}: expected REPO@DIGEST",
            a.location
        );
    }
    let ctx = Ctx::new(cache).remote(&a.remote).build()?;
    inspect::blob(&r, &mut std::io::stdout(), &ctx)?;
    Ok(())
}

/// `hoist referrers REF`: the referrers index (JSON).
pub fn referrers(a: &RefArgs, cache: &CacheOpts) -> anyhow::Result<()> {
    let r = options::registry_location(&a.location, "referrers")?;
    let ctx = Ctx::new(cache).remote(&a.remote).build()?;
    let m = inspect::referrers(&r, &ctx)?;
    let mut out = std::io::stdout().lock();
    out.write_all(m.raw())?;
    out.flush()?;
    Ok(())
}
