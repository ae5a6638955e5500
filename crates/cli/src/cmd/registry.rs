//! `hoist registry`: maintenance of a registry's storage, offline.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;

use crate::config::{Dur, Settings, Storage};

/// The registry maintenance verbs.
#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Remove blobs no manifest reaches (and, with --delete-untagged, manifests no tag
    /// reaches) from a registry's storage (a directory or an S3 bucket). Meant for a
    /// stopped registry, or with --grace; a running one collects with `hoist serve
    /// --gc-interval`.
    Gc(GcArgs),
}

/// Arguments of `hoist registry gc`.
#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// The registry's storage directory [default: the config file's `root`, else
    /// $XDG_DATA_HOME/hoist/registry].
    #[arg(long, env = "HOIST_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// The registry's storage: fs:DIR (the same as --root) or s3://BUCKET[/PREFIX]
    /// [default: the config file's `storage`, else --root's default].
    #[arg(
        long,
        env = "HOIST_STORAGE",
        value_name = "fs:DIR|s3://BUCKET[/PREFIX]"
    )]
    storage: Option<String>,
    /// S3 endpoint URL [default: the config file's, else AWS_ENDPOINT_URL, else AWS itself].
    #[arg(long, env = "HOIST_S3_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region [default: the config file's, else AWS_REGION, else us-east-1].
    #[arg(long, env = "HOIST_S3_REGION", value_name = "REGION")]
    s3_region: Option<String>,
    /// S3 access key id [default: the config file's, else AWS_ACCESS_KEY_ID].
    #[arg(long, env = "HOIST_S3_ACCESS_KEY_ID", value_name = "ID")]
    s3_access_key_id: Option<String>,
    /// S3 secret access key [default: the config file's, else AWS_SECRET_ACCESS_KEY].
    #[arg(
        long,
        env = "HOIST_S3_SECRET_ACCESS_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    s3_secret_access_key: Option<String>,
    /// Allow a plain-http S3 endpoint that is not a loopback address.
    #[arg(long, env = "HOIST_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    s3_allow_http: Option<bool>,
    /// How long the S3 store may keep a request waiting [default: the config file's, else 30s].
    #[arg(long, env = "HOIST_S3_TIMEOUT", value_name = "DURATION")]
    s3_timeout: Option<Dur>,
    /// The registry's config file (for `root` or `storage`, the s3 settings, and
    /// `delete-untagged`).
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
        storage: a.storage.clone(),
        s3_endpoint: a.s3_endpoint.clone(),
        s3_region: a.s3_region.clone(),
        s3_access_key_id: a.s3_access_key_id.clone(),
        s3_secret_access_key: a.s3_secret_access_key.clone(),
        s3_allow_http: a.s3_allow_http,
        s3_timeout: a.s3_timeout,
        delete_untagged: a.delete_untagged,
        ..Settings::default()
    };
    let s = super::serve::settings(flags, a.config.as_ref(), None)?;
    let mut opts = super::serve::gc_options(&s, a.dry_run);
    opts.grace = a.grace.map_or(Duration::ZERO, |g| g.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (storage, name): (Box<dyn hoist_registry::Storage>, String) = match s.storage()? {
        Storage::Fs(root) => {
            if !root.join("blobs").is_dir() {
                anyhow::bail!(
                    "{}: not a registry's storage (no blobs/ in it)",
                    root.display()
                );
            }
            let fs = hoist_registry::FsStorage::open(&root)
                .with_context(|| format!("storage root {}", root.display()))?;
            (Box::new(fs), root.display().to_string())
        }
        Storage::S3(config) => {
            let store = hoist_registry::ObjectStorage::s3(&config)?;
            let name = store.name().to_string();
            // Removal is safe against pushes only through conditional writes.
            rt.block_on(store.check_conditional_writes())
                .with_context(|| format!("storage {name}"))?;
            (Box::new(store), name)
        }
    };
    let r = rt
        .block_on(hoist_registry::collect(storage.as_ref(), &opts))
        .with_context(|| format!("collecting garbage in {name}"))?;
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
