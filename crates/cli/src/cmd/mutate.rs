//! `hoist mutate SRC [-t DST] [--label K=V] [--annotation K=V] [--env K=V] [--entrypoint ..]
//! [--cmd ..] [--user U] [--workdir D] [--expose P] [--platform OS/ARCH] [--time T]`:
//! change an image's config (and manifest annotations) without touching its layers
//! ([`hoist_ops::mutate`]). Without `-t` the result replaces the source (its tag, as
//! crane does). Prints `DST@DIGEST`. Also the `--compression` choice of the verbs that
//! make new layers (append, flatten).

use anyhow::Context;
use clap::ValueEnum;
use hoist_image::mutate::{self, Edits};
use hoist_image::pipeline::Encoding;
use hoist_image::{Compression, Platform};
use hoist_ops::Location;

use crate::options::{self, CacheArgs, Ctx, FormatArg, Global, RemoteArgs, print_report};

/// Compression of new layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NewLayerCompression {
    /// gzip (deterministic, parallel).
    Gzip,
    /// zstd (OCI `tar+zstd`).
    Zstd,
    /// Plain tar.
    None,
}

impl NewLayerCompression {
    /// The encoding.
    pub fn encoding(self) -> Encoding {
        Encoding::of(match self {
            NewLayerCompression::Gzip => Compression::Gzip,
            NewLayerCompression::Zstd => Compression::Zstd,
            NewLayerCompression::None => Compression::None,
        })
    }
}

/// Split `--entrypoint` / `--cmd`: a JSON array (`["/bin/sh","-c"]`) or comma-separated
/// words (`/bin/sh,-c`); an empty string clears.
pub fn parse_command(flag: &str, s: &str) -> anyhow::Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        return serde_json::from_str(s)
            .with_context(|| format!("invalid {flag} {s:?}: expected a JSON array of strings"));
    }
    if s.is_empty() {
        return Ok(Vec::new());
    }
    Ok(s.split(',').map(str::to_string).collect())
}

/// Arguments of `hoist mutate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image (or index): docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME], docker-archive:FILE[:REF], or an existing path.
    pub src: String,
    /// Destination: docker://REF (or a bare registry reference), oci:DIR[:NAME],
    /// oci-archive:FILE[:NAME] or docker-archive:FILE[:REF]. Default: the source itself
    /// (its registry tag, its layout name, its docker-archive file).
    #[arg(short = 't', long = "tag", value_name = "DST")]
    pub dst: Option<String>,
    /// Set a label (config Labels): KEY=VALUE.
    #[arg(long, short = 'l', value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Set a manifest annotation: KEY=VALUE.
    #[arg(long, short = 'a', value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Set an environment variable: KEY=VALUE.
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// The entrypoint: a JSON array or comma-separated words; "" clears it.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// The command: a JSON array or comma-separated words; "" clears it.
    #[arg(long)]
    pub cmd: Option<String>,
    /// The user (name, uid or uid:gid).
    #[arg(long)]
    pub user: Option<String>,
    /// The working directory.
    #[arg(long)]
    pub workdir: Option<String>,
    /// Expose a port: PORT[/tcp|udp|sctp].
    #[arg(long, visible_alias = "exposed-ports", value_name = "PORT")]
    pub expose: Vec<String>,
    /// The platform the config claims: os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
    /// Set `created` and every history entry's time: seconds since 1970 or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    pub time: Option<String>,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub cache: CacheArgs,
}

impl Args {
    fn time(&self) -> anyhow::Result<Option<u64>> {
        options::time(self.time.as_deref())
    }

    /// The edits asked for; bad values are errors naming the flag.
    pub fn edits(&self) -> anyhow::Result<Edits> {
        let pairs = |v: &[String], what: &str| -> anyhow::Result<Vec<(String, String)>> {
            v.iter()
                .map(|s| mutate::parse_pair(s, what).map_err(anyhow::Error::from))
                .collect()
        };
        let edits = Edits {
            labels: pairs(&self.label, "--label")?,
            annotations: pairs(&self.annotation, "--annotation")?,
            env: pairs(&self.env, "--env")?,
            entrypoint: self
                .entrypoint
                .as_deref()
                .map(|s| parse_command("--entrypoint", s))
                .transpose()?,
            cmd: self
                .cmd
                .as_deref()
                .map(|s| parse_command("--cmd", s))
                .transpose()?,
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            expose: self.expose.clone(),
            platform: self.platform.as_deref().map(Platform::parse).transpose()?,
            time: self.time()?,
        };
        for p in &edits.expose {
            mutate::parse_port(p).map_err(|e| anyhow::anyhow!("invalid --expose: {e}"))?;
        }
        Ok(edits)
    }
}

/// Where `hoist mutate` writes without `-t`: the source, when it names one image's place.
fn replace_source(src: &Location, arg: &str) -> anyhow::Result<Location> {
    match src {
        Location::Registry(r) if r.tag().is_none() && r.digest().is_some() => anyhow::bail!(
            "{arg} is pinned by digest: name the destination with -t (a tag, or another place)"
        ),
        Location::Registry(_) | Location::Archive { .. } => Ok(src.clone()),
        Location::Layout { name: Some(n), .. } if !n.starts_with("sha256:") => Ok(src.clone()),
        _ => anyhow::bail!(
            "{arg} names no tag to replace: name the destination with -t (e.g. oci:DIR:NAME)"
        ),
    }
}

/// Run `hoist mutate`.
pub fn run(args: &Args, g: &Global) -> anyhow::Result<()> {
    let edits = args.edits()?;
    let src = Location::parse(&args.src)?;
    let dst = match &args.dst {
        Some(d) => Location::parse_destination(d)?,
        None => replace_source(&src, &args.src)?,
    };
    let s = Ctx::new(g)
        .cache(&args.cache)
        .remote(&args.remote)
        .build()?;
    let report = hoist_ops::mutate::mutate(&src, &edits, &dst, &s.ctx);
    s.finish(report.as_ref().ok());
    print_report(Some(&dst), &report?, args.format.format)
}
