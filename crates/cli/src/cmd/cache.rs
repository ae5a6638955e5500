//! `hoist cache ls | prune | path`: the content cache of compressed layers, and the size
//! values the cache options take.

use std::io::Write;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Subcommand;
use hoist_image::Cache;

use crate::options::{CacheArgs, Format, FormatArg};

/// Parse a size: `1048576`, `512k`, `100MiB`, `10G`, `1.5GiB` (k/M/G/T are binary).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid size {s:?}: expected a number with an optional unit (k, M, G, T)"
            ));
        }
    };
    let n: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number with an optional unit (k, M, G, T)")
    })?;
    Ok((n * mult as f64) as u64)
}

/// `hoist cache ...`
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// List cached layers, most recently used first: encoding, diff_id, digest, size, last
    /// use, media type.
    Ls {
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Evict least recently used layers down to a size (default: everything).
    Prune {
        /// Keep at most this much (e.g. 10GiB).
        #[arg(long, value_parser = parse_size, default_value = "0")]
        keep: u64,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Print the cache directory.
    Path {
        #[command(flatten)]
        cache: CacheArgs,
    },
}

/// Run a cache subcommand.
pub fn run(cmd: &CacheCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let opts = match cmd {
        CacheCommand::Ls { cache, .. }
        | CacheCommand::Prune { cache, .. }
        | CacheCommand::Path { cache } => cache,
    };
    let dir = opts.dir()?;
    let open = || {
        if opts.no_cache {
            bail!("--no-cache: there is no cache to look at");
        }
        Cache::open(&dir).with_context(|| format!("cannot open the cache in {}", dir.display()))
    };
    match cmd {
        CacheCommand::Path { .. } => writeln!(out, "{}", dir.display())?,
        CacheCommand::Ls { format, .. } => {
            let cache = open()?;
            let now = SystemTime::now();
            let entries = cache.entries()?;
            if format.format == Format::Json {
                let list: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "encoding": e.encoding.to_string(),
                            "diffId": e.diff_id.digest().to_string(),
                            "digest": e.sealed.digest.to_string(),
                            "size": e.sealed.size,
                            "mediaType": e.sealed.media_type.to_string(),
                            "lastUsed": e.accessed
                                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                                .map(|d| d.as_secs()),
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(list))?;
                return Ok(());
            }
            for e in entries {
                let age = e
                    .accessed
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|d| human_age(d.as_secs()))
                    .unwrap_or_else(|| "?".into());
                writeln!(
                    out,
                    "{:<12} {}  {}  {:>12}  {:>6} ago  {}",
                    e.encoding,
                    e.diff_id.digest().short(),
                    e.sealed.digest,
                    e.sealed.size,
                    age,
                    e.sealed.media_type
                )?;
            }
        }
        CacheCommand::Prune { keep, .. } => {
            let s = open()?.prune(*keep)?;
            writeln!(
                out,
                "removed {} blobs ({} bytes) and {} index entries from {}",
                s.blobs,
                s.bytes,
                s.index_entries,
                dir.display()
            )?;
        }
    }
    Ok(())
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        for (s, want) in [
            ("0", 0),
            ("1048576", 1 << 20),
            ("512k", 512 << 10),
            ("100MiB", 100 << 20),
            ("10G", 10 << 30),
            ("1.5GiB", 3 << 29),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for bad in ["", "abc", "10 parsecs", "1.2.3M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
