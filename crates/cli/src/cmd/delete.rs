//! `hoist delete REPO:TAG | REPO@DIGEST` ([`hoist_ops::delete`]): a tag deletes that tag
//! only; a digest deletes the manifest. A registry that cannot delete a tag gets an error
//! that says how to delete by digest, never a fallback to it.

use std::io::Write;

use anyhow::bail;
use hoist_ops::delete;
use hoist_remote::Repository;

use crate::options::{self, Ctx, Global, RemoteArgs};

/// The argument of `hoist delete`: a tag or a digest, nothing implied. No `--platform`:
/// deleting one child of an index would leave the index pointing at nothing.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// host[:port]/name:TAG (deletes that tag only) or host[:port]/name@DIGEST (deletes
    /// the manifest and with it every tag that points to it).
    pub reference: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Run `hoist delete`.
pub fn run(a: &DeleteArgs, g: &Global) -> anyhow::Result<()> {
    let r = options::registry_location(&a.reference, "delete")?;
    if r.tag().is_none() && r.digest().is_none() {
        bail!(
            "invalid reference {:?}: name what to delete, a tag (REPO:TAG) or a manifest (REPO@DIGEST)",
            a.reference
        );
    }
    let s = Ctx::new(g).remote(&a.remote).build()?;
    let ctx = &s.ctx;
    let deleted = delete::delete(&r, ctx);
    s.finish(None);
    match deleted {
        Ok(d) => writeln!(std::io::stdout(), "{d}")?,
        Err(e) if e.is_unsupported() && r.digest().is_none() => {
            let (repo, tag) = (Repository::from_reference(&r), r.tag().unwrap_or_default());
            match hoist_ops::inspect::manifest_digest(&r, ctx) {
                Err(found) if found.is_not_found() => {
                    bail!("{e}; and {repo}:{tag} names no manifest")
                }
                found => {
                    let digest = match found {
                        Ok(d) => d.to_string(),
                        Err(_) => "DIGEST".into(),
                    };
                    bail!(
                        "{e}; to delete the manifest instead, which removes every tag that points to it: hoist delete {repo}@{digest}"
                    )
                }
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
