//! `hoist`: the command-line front end. Thin: each verb parses its arguments, makes one
//! call of [`hoist_ops`] (the verbs as a library), and formats the result.
//!
//! Conventions every verb keeps (crane's, where it has one):
//! - stdout holds results only: a verb that writes images prints `REF@DIGEST` per
//!   destination (per tag with `--all-tags`); `--format json` (`-o json`) gives JSON
//!   where a verb lists things or reports a push or copy. Everything else goes to stderr.
//! - stderr: progress (bars on a terminal, a line per blob otherwise), retries, and
//!   errors as one line `hoist: ...`; `-q` leaves only errors, `-v` adds what the cache,
//!   the push engine and the registry client did.
//! - Exit codes: 0 success (also when a reader of stdout went away, `hoist ... | head`),
//!   1 any error, 2 a usage error.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod cmd;
mod config;
mod json;
mod logging;
mod options;
mod progress;

/// The version with the commit it was built from (`build.rs`).
const LONG_VERSION: &str = env!("HOIST_LONG_VERSION");

/// Move container images without waste: copy, push, pull, change and inspect images in
/// registries, OCI layouts and tarballs, and serve a registry.
#[derive(Parser, Debug)]
#[command(name = "hoist", version = LONG_VERSION, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: options::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Copy an image or index between any two locations (registries, OCI layouts,
    /// oci-archives, docker-save tarballs), compressing each layer at most once.
    Copy(cmd::copy::Args),
    /// Push an image or index from a layout or an archive to one or more registry
    /// destinations.
    Push(cmd::push::Args),
    /// Pull an image or index from a registry into an OCI layout, an oci-archive or a
    /// docker-save tarball.
    Pull(cmd::pull::Args),
    /// Mirror repositories and tags registry to registry: tag and platform filters,
    /// referrers (signatures, SBOMs), resumable, nothing copied twice.
    Sync(cmd::sync::Args),
    /// Give an image in a registry more tags (one manifest PUT each).
    Tag(cmd::tag::Args),
    /// Print the digest of an image's (or index's) manifest.
    Digest(cmd::inspect::DigestArgs),
    /// Print an image's (or index's) manifest, as stored (raw JSON).
    Manifest(cmd::inspect::RefArgs),
    /// Print an image's config, as stored (raw JSON); of an index, this machine's
    /// platform's image unless --platform.
    Config(cmd::inspect::RefArgs),
    /// List the tags of a registry repository.
    Ls(cmd::inspect::LsArgs),
    /// List the repositories of a registry.
    Catalog(cmd::inspect::CatalogArgs),
    /// Write a blob of a registry repository (REPO@DIGEST) to stdout, verified.
    Blob(cmd::inspect::BlobArgs),
    /// List the referrers of a manifest in a registry (signatures, SBOMs, attestations).
    Referrers(cmd::inspect::ReferrersArgs),
    /// Delete a tag (REPO:TAG, the tag only) or a manifest (REPO@DIGEST, with every tag
    /// that points to it) from a registry.
    Delete(cmd::delete::DeleteArgs),
    /// Add layers (tar files or directories) on top of an image or of nothing.
    Append(cmd::append::Args),
    /// Change an image's config and annotations without touching its layers.
    Mutate(cmd::mutate::Args),
    /// Make an image's merged filesystem its only layer.
    Flatten(cmd::flatten::Args),
    /// Swap the base layers of an image for another base's.
    Rebase(cmd::rebase::Args),
    /// Write an image's merged filesystem as one tar (to a file or `-`).
    Export(cmd::export::Args),
    /// Multi-platform indexes: create, append, filter, list.
    #[command(subcommand)]
    Index(cmd::index::IndexCommand),
    /// Recompute and check every digest, size and diff_id of an image or index.
    Validate(cmd::validate::Args),
    /// Write a seeded, deterministic random image (for tests and benchmarks).
    Random(cmd::random::Args),
    /// Run the embedded OCI registry.
    Serve(cmd::serve::ServeArgs),
    /// Maintain a registry's storage offline (garbage collection).
    #[command(subcommand)]
    Registry(cmd::registry::RegistryCommand),
    /// Log in to a registry (hoist auth login).
    Login(cmd::auth::LoginArgs),
    /// Log out of a registry (hoist auth logout).
    Logout(cmd::auth::LogoutArgs),
    /// Manage registry credentials (docker's config.json; containers' auth.json is read too).
    Auth {
        #[command(subcommand)]
        verb: cmd::auth::Verb,
    },
    /// The content cache of compressed layers.
    #[command(subcommand)]
    Cache(cmd::cache::CacheCommand),
    /// OCI layout maintenance.
    #[command(subcommand)]
    Layout(cmd::layout::LayoutCommand),
    /// The main job in one command: embedded registry, seeded image, cold push, re-push,
    /// second tag, validate, a table of times; then clean up.
    Demo(cmd::demo::Args),
    /// Print a shell completion script: `hoist completion bash > /etc/bash_completion.d/hoist`.
    Completion(cmd::completion::Args),
    /// Write the man pages (hoist.1 and one per verb, hoist-copy.1, ...) into a directory.
    Man(cmd::completion::ManArgs),
    /// Print the version and the commit it was built from.
    Version,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Copy(a) => cmd::copy::run(&a, g),
        Command::Push(a) => cmd::push::run(&a, g),
        Command::Pull(a) => cmd::pull::run(&a, g),
        Command::Sync(a) => cmd::sync::run(&a, g),
        Command::Tag(a) => cmd::tag::run(&a, g),
        Command::Digest(a) => cmd::inspect::digest(&a, g),
        Command::Manifest(a) => cmd::inspect::manifest(&a, g),
        Command::Config(a) => cmd::inspect::config(&a, g),
        Command::Ls(a) => cmd::inspect::ls(&a, g),
        Command::Catalog(a) => cmd::inspect::catalog(&a, g),
        Command::Blob(a) => cmd::inspect::blob(&a, g),
        Command::Referrers(a) => cmd::inspect::referrers(&a, g),
        Command::Delete(a) => cmd::delete::run(&a, g),
        Command::Append(a) => cmd::append::run(&a, g),
        Command::Mutate(a) => cmd::mutate::run(&a, g),
        Command::Flatten(a) => cmd::flatten::run(&a, g),
        Command::Rebase(a) => cmd::rebase::run(&a, g),
        Command::Export(a) => cmd::export::run(&a, g),
        Command::Index(c) => cmd::index::run(&c, g),
        Command::Validate(a) => cmd::validate::run(&a, g),
        Command::Random(a) => cmd::random::run(&a),
        Command::Serve(a) => cmd::serve::run(a, g.log.as_deref()),
        Command::Registry(c) => cmd::registry::run(&c),
        Command::Login(a) => cmd::auth::login(&a),
        Command::Logout(a) => cmd::auth::logout(&a),
        Command::Auth { verb } => cmd::auth::run(&verb),
        Command::Cache(c) => cmd::cache::run(&c),
        Command::Layout(c) => cmd::layout::run(&c),
        Command::Demo(a) => cmd::demo::run(&a),
        Command::Completion(a) => cmd::completion::completion(&a, Cli::command()),
        Command::Man(a) => cmd::completion::man(&a, Cli::command()),
        Command::Version => cmd::version::run(LONG_VERSION),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets up its own logging, once its configuration (log format) is known.
    if !matches!(cli.command, Command::Serve(_)) {
        logging::init(
            cli.global.log.as_deref().unwrap_or(logging::DEFAULT),
            logging::Format::Text,
        );
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "hoist: {e:#}{}", hint(&e));
            ExitCode::from(1)
        }
    }
}

/// The CLI's flags for what the library's error says to do.
fn hint(e: &anyhow::Error) -> &'static str {
    let cause = e.chain().find_map(|c| {
        c.downcast_ref::<hoist_ops::Error>()
            .and_then(hoist_ops::Error::as_remote)
            .or_else(|| c.downcast_ref::<hoist_remote::Error>())
            .and_then(hoist_remote::Error::transport_cause)
    });
    match cause {
        Some(hoist_remote::TransportCause::UntrustedCertificate) => {
            " [--ca-file FILE, or --skip-tls-verify]"
        }
        Some(hoist_remote::TransportCause::WrongProtocol) => " [--insecure HOST]",
        _ => "",
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
