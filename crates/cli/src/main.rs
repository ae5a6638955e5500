//! `hoist`: the command-line front end. Thin: each verb parses its arguments, makes one
//! call of [`hoist_ops`] (the verbs as a library), and formats the result. Exit codes: 0
//! success, 1 any error (one line on stderr), 2 usage error.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod config;
mod logging;
mod options;
mod progress;

/// Move container images without waste.
#[derive(Parser, Debug)]
#[command(name = "hoist", version, about, propagate_version = true)]
struct Cli {
    /// Log filter for diagnostics on stderr (error, warn, info, debug, trace, or
    /// target=level lists) [default: warn; for `serve`: info, which includes the access log].
    #[arg(long, global = true, env = "HOIST_LOG")]
    log: Option<String>,
    /// The content cache directory [default: $XDG_CACHE_HOME/hoist, else ~/.cache/hoist].
    #[arg(long, global = true, env = "HOIST_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<std::path::PathBuf>,
    /// Do not use the content cache: compress into temporary files.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Keep the content cache under this size, evicting least recently used layers (e.g. 20GiB).
    #[arg(long, global = true, env = "HOIST_CACHE_MAX", value_name = "SIZE", value_parser = cmd::cache::parse_size)]
    cache_max: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the version.
    Version,
    /// Copy an image between local locations, compressing each layer at most once.
    Copy(cmd::copy::Args),
    /// The content cache of compressed layers.
    #[command(subcommand)]
    Cache(cmd::cache::CacheCommand),
    /// Recompute and check every digest, size and diff_id of an image or index.
    Validate(cmd::validate::Args),
    /// Write a seeded, deterministic random image (for tests and benchmarks).
    Random(cmd::random::Args),
    /// Run the embedded OCI registry.
    Serve(cmd::serve::ServeArgs),
    /// The main job in one command: embedded registry, seeded image, cold push, re-push,
    /// second tag, validate, a table of times; then clean up.
    Demo(cmd::demo::Args),
    /// Pull an image or index from a registry into an OCI layout or a docker-save tarball.
    Pull(cmd::pull::Args),
    /// Print the digest of an image's manifest (registry, layout or tarball).
    Digest(cmd::inspect::RefArgs),
    /// Print an image's manifest, as stored (raw JSON).
    Manifest(cmd::inspect::RefArgs),
    /// Print an image's config, as stored (raw JSON).
    Config(cmd::inspect::RefArgs),
    /// List the tags of a registry repository.
    Ls(cmd::inspect::RepoArgs),
    /// List the repositories of a registry.
    Catalog(cmd::inspect::RegistryArgs),
    /// Write a blob to stdout (REPO@DIGEST), verified.
    Blob(cmd::inspect::RefArgs),
    /// Delete a tag (REPO:TAG, the tag only) or a manifest (REPO@DIGEST, with every tag
    /// that points to it) from a registry.
    Delete(cmd::delete::DeleteArgs),
    /// List the referrers of a manifest (the OCI referrers index, as JSON).
    Referrers(cmd::inspect::RefArgs),
    /// Push an image from a layout or tarball to one or more registry destinations.
    Push(cmd::push::Args),
    /// Give an image in a registry more tags (one manifest PUT each).
    Tag(cmd::tag::Args),
    /// Add layers (tar files or directories) on top of an image or `scratch`.
    Append(cmd::append::Args),
    /// Change an image's config and annotations without touching its layers.
    Mutate(cmd::mutate::Args),
    /// Make an image's merged filesystem its only layer.
    Flatten(cmd::flatten::Args),
    /// Swap the base layers of an image for another base's.
    Rebase(cmd::rebase::Args),
    /// Write an image's merged filesystem as a tar (to a file or `-`).
    Export(cmd::export::Args),
    /// Multi-platform indexes: create, append, filter, list.
    #[command(subcommand)]
    Index(cmd::index::IndexCommand),
    /// OCI layout maintenance.
    #[command(subcommand)]
    Layout(cmd::layout::LayoutCommand),
    /// Manage registry credentials (docker's config.json).
    Auth {
        #[command(subcommand)]
        verb: cmd::auth::Verb,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cache = options::CacheOpts {
        dir: cli.cache_dir,
        disabled: cli.no_cache,
        max: cli.cache_max,
    };
    match cli.command {
        Command::Version => cmd::version::run(),
        Command::Copy(args) => cmd::copy::run(&args, &cache),
        Command::Cache(c) => cmd::cache::run(&c, &cache),
        Command::Validate(a) => cmd::validate::run(&a, &cache),
        Command::Pull(args) => cmd::pull::run(&args, &cache),
        Command::Digest(a) => cmd::inspect::digest(&a, &cache),
        Command::Manifest(a) => cmd::inspect::manifest(&a, &cache),
        Command::Config(a) => cmd::inspect::config(&a, &cache),
        Command::Ls(a) => cmd::inspect::ls(&a, &cache),
        Command::Catalog(a) => cmd::inspect::catalog(&a, &cache),
        Command::Blob(a) => cmd::inspect::blob(&a, &cache),
        Command::Delete(a) => cmd::delete::run(&a, &cache),
        Command::Referrers(a) => cmd::inspect::referrers(&a, &cache),
        Command::Random(args) => cmd::random::run(&args),
        Command::Serve(args) => cmd::serve::run(args, cli.log.as_deref()),
        Command::Push(args) => cmd::push::run(&args, &cache),
        Command::Tag(args) => cmd::tag::run(&args, &cache),
        Command::Auth { verb } => cmd::auth::run(&verb),
        Command::Append(args) => cmd::append::run(&args, &cache),
        Command::Mutate(args) => cmd::mutate::run(&args, &cache),
        Command::Flatten(args) => cmd::flatten::run(&args, &cache),
        Command::Rebase(args) => cmd::rebase::run(&args, &cache),
        Command::Export(args) => cmd::export::run(&args, &cache),
        Command::Index(c) => cmd::index::run(&c, &cache),
        Command::Layout(c) => cmd::layout::run(&c),
        Command::Demo(args) => cmd::demo::run(&args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets up its own logging, once its configuration (log format) is known.
    if !matches!(cli.command, Command::Serve(_)) {
        logging::init(cli.log.as_deref().unwrap_or("warn"), logging::Format::Text);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "hoist: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A closed stdout (`hoist ... | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        if c.downcast_ref::<hoist_ops::Error>()
            .is_some_and(|e| e.is_broken_pipe())
        {
            return true;
        }
        let io = c.downcast_ref::<io::Error>().or_else(|| {
            match c.downcast_ref::<hoist_image::Error>().map(|e| e.kind()) {
                Some(hoist_image::ErrorKind::Io { source, .. }) => Some(source),
                _ => None,
            }
        });
        io.is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
