//! `hoist`: the command-line front end. Thin: each verb parses its arguments and calls a
//! library function. Exit codes: 0 success, 1 any error (one line on stderr), 2 usage error.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod location;

/// Move container images without waste.
#[derive(Parser, Debug)]
#[command(name = "hoist", version, about, propagate_version = true)]
struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "HOIST_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the version.
    Version,
    /// Run the embedded OCI registry.
    Serve(cmd::serve::ServeArgs),
    /// Recompute and check every digest, size and diff_id of an image or index.
    Validate {
        /// oci:DIR[:NAME], docker-archive:FILE[:REF], docker://REF, or a path.
        location: String,
        /// Check manifests, configs and reported facts only; do not read layer bytes.
        #[arg(long)]
        fast: bool,
    },
    /// Write a seeded, deterministic random image (for tests and benchmarks).
    Random(cmd::random::Args),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Version => cmd::version::run(),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Validate { location, fast } => cmd::validate::run(&location, fast),
        Command::Random(args) => cmd::random::run(&args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(io::stderr)
        .init();
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
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
