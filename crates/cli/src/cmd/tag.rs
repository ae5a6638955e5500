//! `hoist tag REF TAG...`: give an image in a registry more tags, one manifest PUT each
//! (none when the tag already points at it). Prints `REPO:TAG@DIGEST` per tag.

use std::io::Write;

use anyhow::Context;
use hoist_image::Reference;
use hoist_remote::{Repository, Target};

use crate::cmd::push::{RemoteArgs, runtime};

/// Arguments of `hoist tag`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: host[:port]/name[:tag|@digest].
    pub reference: String,
    /// New tags, in the same repository.
    #[arg(required = true)]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let s = args
        .reference
        .strip_prefix("docker://")
        .unwrap_or(&args.reference);
    let r = Reference::parse(s).with_context(|| format!("invalid reference {s:?}"))?;
    let repo = Repository::new(r.api_host(), r.repository())?;
    let targets = args
        .tags
        .iter()
        .map(|t| Target::tagged(repo.clone(), t.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let client = args.remote.client()?;
    let rt = runtime()?;
    let out = rt.block_on(async {
        let m = client
            .get_manifest(&repo, &r.identifier())
            .await
            .with_context(|| format!("fetching {r}"))?;
        let mut out = Vec::new();
        for t in &targets {
            let tag = t.tag.as_deref().expect("tagged");
            if client.manifest_digest(&repo, tag).await?.as_ref() != Some(m.digest()) {
                client
                    .put_manifest(&repo, tag, &m)
                    .await
                    .with_context(|| format!("tagging {t}"))?;
            }
            out.push(format!("{t}@{}", m.digest()));
        }
        anyhow::Ok(out)
    })?;
    let mut stdout = std::io::stdout().lock();
    for line in out {
        writeln!(stdout, "{line}")?;
    }
    Ok(())
}
