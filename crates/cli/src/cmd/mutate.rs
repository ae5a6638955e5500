//! `hoist mutate SRC -t DST [--label K=V] [--annotation K=V] [--env K=V] [--entrypoint ..]
//! [--cmd ..] [--user U] [--workdir D] [--expose P] [--platform OS/ARCH] [--time T]`:
//! change an image's config (and manifest annotations) without touching its layers
//! ([`hoist_ops::mutate`]). Also the `--compression` choice of the verbs that make new
//! layers (append, flatten).

use anyhow::Context;
use clap::ValueEnum;
use hoist_image::mutate::{self, Edits};
use hoist_image::pipeline::Encoding;
use hoist_image::{Compression, Platform};
use hoist_ops::Location;

use crate::options::{self, CacheOpts, Ctx, say};

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
    /// The image: oci:DIR[:NAME], docker-archive:FILE[:REF], or a path.
    pub src: String,
    /// Destination: oci:DIR[:NAME], docker-archive:FILE[:REF], or a registry reference.
    #[arg(short = 't', long = "tag", value_name = "DST")]
    pub dst: String,
    /// Set a label (config Labels): KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Set a manifest annotation: KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Set an environment variable: KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE")]
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
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// The platform the config claims: os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
    /// Set `created` and every history entry's time: seconds since 1970 or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    pub time: Option<String>,
    #[command(flatten)]
    pub remote: crate::options::RemoteArgs,
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

/// Run `hoist mutate`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let edits = args.edits()?;
    let src = Location::parse(&args.src)?;
    let dst = Location::parse(&args.dst)?;
    let ctx = Ctx::new(cache).remote(&args.remote).build()?;
    let report = hoist_ops::mutate::mutate(&src, &edits, &dst, &ctx)?;
    say(&dst, &report.written[0])?;
    Ok(())
}
