//! Inspect verbs, crane-style: `digest`, `manifest`, `config` (any location), `ls`,
//! `catalog`, `blob`, `referrers` (registry only), each one call of
//! [`hoist_ops::inspect`]. Plain output one item a line; manifests and configs as stored
//! (raw bytes); `--format json` where a verb lists things.

use std::io::Write;

use hoist_ops::{Location, inspect};
use hoist_remote::Repository;

use crate::options::{self, Ctx, Format, FormatArg, Global, RemoteArgs, print_json};

/// A location argument.
#[derive(clap::Args, Debug)]
pub struct RefArgs {
    /// docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME], docker-archive:FILE[:REF], or an existing path.
    pub location: String,
    /// For an index: the image of this platform (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `hoist digest`'s arguments.
#[derive(clap::Args, Debug)]
pub struct DigestArgs {
    #[command(flatten)]
    pub at: RefArgs,
    #[command(flatten)]
    pub format: FormatArg,
}

/// `hoist ls`'s arguments.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// The repository: host[:port]/name.
    pub repository: String,
    /// Print each tag as a full reference (host/name:tag), as crane ls --full-ref does.
    #[arg(long)]
    pub full_ref: bool,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `hoist catalog`'s arguments.
#[derive(clap::Args, Debug)]
pub struct CatalogArgs {
    /// The registry: host[:port].
    pub registry: String,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `hoist blob`'s arguments.
#[derive(clap::Args, Debug)]
pub struct BlobArgs {
    /// The blob: host[:port]/name@sha256:... (docker:// optional).
    pub blob: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `hoist referrers`' arguments.
#[derive(clap::Args, Debug)]
pub struct ReferrersArgs {
    /// The manifest: host[:port]/name:tag or host[:port]/name@sha256:... (docker://
    /// optional).
    pub reference: String,
    /// text: a line per referrer (digest, artifact type, size); json: the referrers index
    /// as the registry serves it.
    #[command(flatten)]
    pub format: FormatArg,
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
pub fn digest(a: &DigestArgs, g: &Global) -> anyhow::Result<()> {
    let (loc, platform) = a.at.parse()?;
    let s = Ctx::new(g).remote(&a.at.remote).build()?;
    let m = inspect::manifest(&loc, platform.as_ref(), &s.ctx);
    s.finish(None);
    let m = m?;
    match a.format.format {
        Format::Text => writeln!(std::io::stdout(), "{}", m.digest())?,
        Format::Json => print_json(&serde_json::json!({
            "location": loc.to_string(),
            "digest": m.digest().to_string(),
            "mediaType": m.media_type().to_string(),
            "size": m.raw().len(),
        }))?,
    }
    Ok(())
}

/// `hoist manifest`.
pub fn manifest(a: &RefArgs, g: &Global) -> anyhow::Result<()> {
    let (loc, platform) = a.parse()?;
    let s = Ctx::new(g).remote(&a.remote).build()?;
    let m = inspect::manifest(&loc, platform.as_ref(), &s.ctx);
    s.finish(None);
    let mut out = std::io::stdout().lock();
    out.write_all(m?.raw())?;
    out.flush()?;
    Ok(())
}

/// `hoist config`.
pub fn config(a: &RefArgs, g: &Global) -> anyhow::Result<()> {
    let (loc, platform) = a.parse()?;
    let s = Ctx::new(g).remote(&a.remote).build()?;
    let c = inspect::config(&loc, platform.as_ref(), &s.ctx);
    s.finish(None);
    let mut out = std::io::stdout().lock();
    out.write_all(c?.raw())?;
    out.flush()?;
    Ok(())
}

/// `hoist ls`.
pub fn ls(a: &LsArgs, g: &Global) -> anyhow::Result<()> {
    let r = options::reference(&a.repository, "repository")?;
    let s = Ctx::new(g).remote(&a.remote).build()?;
    let tags = inspect::ls(&r, &s.ctx);
    s.finish(None);
    let tags = tags?;
    let repo = format!("{}/{}", r.registry(), r.repository());
    match a.format.format {
        Format::Json => {
            let tags: Vec<String> = if a.full_ref {
                tags.iter().map(|t| format!("{repo}:{t}")).collect()
            } else {
                tags
            };
            print_json(&serde_json::json!({ "name": repo, "tags": tags }))?;
        }
        Format::Text => {
            let mut out = std::io::stdout().lock();
            for t in tags {
                if a.full_ref {
                    writeln!(out, "{repo}:{t}")?;
                } else {
                    writeln!(out, "{t}")?;
                }
            }
        }
    }
    Ok(())
}

/// `hoist catalog`.
pub fn catalog(a: &CatalogArgs, g: &Global) -> anyhow::Result<()> {
    let s = Ctx::new(g).remote(&a.remote).build()?;
    let repos = inspect::catalog(&a.registry, &s.ctx);
    s.finish(None);
    let repos = repos?;
    match a.format.format {
        Format::Json => print_json(&serde_json::json!({ "repositories": repos }))?,
        Format::Text => {
            let mut out = std::io::stdout().lock();
            for r in repos {
                writeln!(out, "{r}")?;
            }
        }
    }
    Ok(())
}

/// `hoist blob REPO@DIGEST`: the blob to stdout. Verified as it streams; on a mismatch
/// the command fails (what was written before the end cannot be taken back).
pub fn blob(a: &BlobArgs, g: &Global) -> anyhow::Result<()> {
    let r = options::registry_location(&a.blob, "blob")?;
    if r.digest().is_none() {
        anyhow::bail!("invalid blob reference {:?}: expected REPO@DIGEST", a.blob);
    }
    // The bytes go to stdout: no progress to mix with them on a terminal.
    let quiet = Global {
        quiet: true,
        ..g.clone()
    };
    let s = Ctx::new(&quiet).remote(&a.remote).build()?;
    let r = inspect::blob(&r, &mut std::io::stdout(), &s.ctx);
    s.finish(None);
    r?;
    Ok(())
}

/// `hoist referrers REF`: a line per referrer, or the referrers index (JSON).
pub fn referrers(a: &ReferrersArgs, g: &Global) -> anyhow::Result<()> {
    let r = options::registry_location(&a.reference, "referrers")?;
    let s = Ctx::new(g).remote(&a.remote).build()?;
    let m = inspect::referrers(&r, &s.ctx);
    s.finish(None);
    let m = m?;
    let mut out = std::io::stdout().lock();
    match a.format.format {
        Format::Json => {
            out.write_all(m.raw())?;
            if !m.raw().ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        }
        Format::Text => {
            let repo = Repository::from_reference(&r);
            let index = m.as_index().ok_or_else(|| {
                anyhow::anyhow!(
                    "referrers of {repo}: the registry answered something that is not an index"
                )
            })?;
            for d in &index.manifests {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    d.digest,
                    d.artifact_type.as_deref().unwrap_or("-"),
                    d.size
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
