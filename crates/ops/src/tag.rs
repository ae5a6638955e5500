//! Tag: give an image in a registry more tags, one manifest PUT each (none when a tag
//! already points at it).

use hoist_image::Reference;
use hoist_remote::{Repository, Target};

use crate::context::Context;
use crate::error::{Context as _, Result};
use crate::location::Location;
use crate::write::{Report, Written};

/// Point each of `tags` (in `r`'s repository) at the manifest `r` names. One
/// [`Written`] per tag.
pub fn tag(r: &Reference, tags: &[String], ctx: &Context) -> Result<Report> {
    let repo = Repository::from_reference(r);
    let targets = tags
        .iter()
        .map(|t| Target::tagged(repo.clone(), t.clone()))
        .collect::<hoist_remote::Result<Vec<_>>>()?;
    let client = ctx.client()?;
    let m = ctx
        .block_on(client.get_manifest(&repo, &r.identifier()))
        .with_context(|| format!("fetching {r}"))?;
    let mut written = Vec::new();
    for (t, name) in targets.iter().zip(tags) {
        let tag = t.tag.as_deref().expect("tagged");
        if ctx.block_on(client.manifest_digest(&repo, tag))?.as_ref() != Some(m.digest()) {
            ctx.block_on(client.put_manifest(&repo, tag, &m))
                .with_context(|| format!("tagging {t}"))?;
        }
        written.push(Written::manifest(
            Location::Registry(r.with_tag(name)?),
            m.digest().clone(),
        ));
    }
    Ok(Report {
        written,
        push: None,
        referrers: None,
    })
}
