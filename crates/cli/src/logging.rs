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

/// The filter of every verb but `serve` unless `--log` says otherwise: warnings, without
/// the certificate verifier's own report of a failure (the error hoist prints names it).
pub const DEFAULT: &str = "warn,rustls_platform_verifier=off";

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Check a `--log` value: comma-separated directives, each a level or `target=level`
/// (targets like `hoist::access`, `hoist_remote`). A bare word that is not a level is
/// refused: tracing would take it for a target and quietly log nothing else.
pub fn parse_filter(s: &str) -> Result<String, String> {
    let expected = "expected a level (error, warn, info, debug, trace, off) or target=level pairs, comma-separated";
    if s.trim().is_empty() {
        return Err(format!("empty filter: {expected}"));
    }
    for d in s.split(',').map(str::trim) {
        let ok = match d.split_once('=') {
            None => LEVELS.contains(&d.to_ascii_lowercase().as_str()),
            Some((target, level)) => {
                !target.is_empty()
                    && target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_:-.[]{}".contains(c))
                    && LEVELS.contains(&level.to_ascii_lowercase().as_str())
            }
        };
        if !ok {
            return Err(format!("invalid directive {d:?}: {expected}"));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map_err(|e| format!("{e}: {expected}"))?;
    Ok(s.to_string())
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

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn filters() {
        for good in [
            "warn",
            "INFO",
            "warn,hoist::access=info",
            "hoist_remote=debug",
            "off",
        ] {
            assert!(parse_filter(good).is_ok(), "{good}");
        }
        for bad in ["bogus", "", "warn,", "=info", "hoist=loud", "info bogus"] {
            let e = parse_filter(bad).expect_err(bad);
            assert!(e.contains("expected a level"), "{bad}: {e}");
        }
    }
}
