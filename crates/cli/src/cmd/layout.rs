//! `hoist layout gc DIR`: remove the blobs of an OCI layout that `index.json` no longer reaches.

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;
use hoist_image::layout::Layout;
use hoist_image::mutate;

/// The layout verbs.
#[derive(Subcommand, Debug)]
pub enum LayoutCommand {
    /// Remove blobs not reachable from index.json (manifests, configs, layers followed).
    Gc {
        /// The layout directory.
        dir: std::path::PathBuf,
    },
}

/// Run a layout verb.
pub fn run(c: &LayoutCommand) -> anyhow::Result<()> {
    match c {
        LayoutCommand::Gc { dir } => {
            let layout = Layout::open(dir)?;
            let s = mutate::gc(&layout)
                .with_context(|| format!("collecting garbage in {}", dir.display()))?;
            writeln!(
                std::io::stdout(),
                "{}: removed {} blobs ({} bytes), kept {}",
                dir.display(),
                s.removed,
                s.removed_bytes,
                s.kept
            )?;
            Ok(())
        }
    }
}
