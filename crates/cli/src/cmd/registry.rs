//! `hoist registry`: maintenance of a registry's storage, offline.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;

use crate::config::{Dur, Settings};

/// The registry maintenance verbs.
#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Remove blobs no manifest reaches (and, with --delete-untagged, manifests no tag
    /// reaches) from a registry's storage. Meant for a stopped registry; a running one
    /// collects with `hoist serve --gc-interval`.
    Gc(GcArgs),
}

/// Arguments of `hoist registry gc`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// The registry's storage directory [default: the config file's `root`, else
    /// $XDG_DATA_HOME/hoist/registry].
    #[arg(long, env = "HOIST_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// The registry's config file (for `root` and `delete-untagged`).
    #[arg(long, env = "HOIST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// List what would be removed and how many bytes; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove manifests no tag reaches (not the children of tagged indexes, nor the
    /// referrers of kept manifests).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    delete_untagged: Option<bool>,
    /// Keep whatever was uploaded or referenced less than DURATION ago (a push that was
    /// in progress when the registry stopped) [default: none, everything unreached goes].
    #[arg(long, value_name = "DURATION")]
    grace: Option<Dur>,
}

pub fn run(c: &RegistryCommand) -> anyhow::Result<()> {
    match c {
        RegistryCommand::Gc(a) => gc(a),
    }
}

fn gc(a: &GcArgs) -> anyhow::Result<()> {
    let flags = Settings {
        root: a.root.clone(),
        delete_untagged: a.delete_untagged,
        ..Settings::default()
    };
    let s = super::serve::settings(flags, a.config.as_ref(), None)?;
    // The object-storage backend does not collect garbage: said, not guessed at.
    let Some(root) = s.root.clone() else {
        anyhow::bail!(
            "storage {}: garbage collection works on fs: storage only",
            s.storage.as_deref().unwrap_or_default()
        );
    };
    let mut opts = super::serve::gc_options(&s, a.dry_run);
    opts.grace = a.grace.map_or(Duration::ZERO, |g| g.0);
    if !root.join("blobs").is_dir() {
        anyhow::bail!(
            "{}: not a registry's storage (no blobs/ in it)",
            root.display()
        );
    }
    let storage = hoist_registry::FsStorage::open(&root)
        .with_context(|| format!("storage root {}", root.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let r = rt
        .block_on(hoist_registry::collect(&storage, &opts))
        .with_context(|| format!("collecting garbage in {}", root.display()))?;
    let verb = if a.dry_run { "would remove" } else { "removed" };
    for (repo, d) in &r.removed_manifests {
        println!("{verb} manifest {repo}@{d}");
    }
    for (d, n) in &r.removed_blobs {
        println!("{verb} blob {d} ({n} bytes)");
    }
    println!(
        "{verb} {} blobs ({} bytes) and {} manifests; {} blobs ({} bytes) and {} manifests were stored; {} unreached blobs kept as younger than {}",
        r.removed_blobs.len(),
        r.freed,
        r.removed_manifests.len(),
        r.blobs,
        r.bytes,
        r.manifests,
        r.kept_fresh + r.kept_touched,
        a.grace.map_or_else(|| "0s".to_string(), |g| g.to_string()),
    );
    Ok(())
}
