//! Diagnostics on stderr through `tracing`: plain text (coloured only on a terminal) or
//! one JSON object per line.

use std::io::{self, IsTerminal as _};

/// How log lines are written.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

/// Install the process's subscriber: `filter` is an `EnvFilter` directive list
/// (`info`, `warn,hoist::access=info`).
pub fn init(filter: &str, format: Format) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(io::stderr);
    match format {
        Format::Text => builder.with_ansi(io::stderr().is_terminal()).init(),
        Format::Json => builder.json().with_ansi(false).init(),
    }
}
