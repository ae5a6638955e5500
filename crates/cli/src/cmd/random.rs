//! `hoist random DST --layers N --size BYTES [--mode random|text] [--seed S]`: write a
//! seeded, deterministic image to an OCI layout or a docker-save tarball.

use std::io::Write;

use hoist_image::Compression;
use hoist_image::pipeline::Encoding;
use hoist_image::random::{self, Mode};

use hoist_ops::Location;

use crate::options::not_local;

/// Arguments of `hoist random`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Destination: oci:DIR[:NAME], oci-archive:FILE[:NAME], docker-archive:FILE[:REF] or
    /// `-`, or a new path (ending in .tar: a docker-save tarball; else a layout).
    pub dst: String,
    /// Number of layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Bytes of file content per layer; suffixes k, M, G (powers of 1024) are accepted.
    #[arg(long, value_parser = parse_size)]
    pub size: u64,
    /// random (incompressible) or text (about 3-4x compressible).
    #[arg(long, default_value = "random", value_parser = parse_mode)]
    pub mode: Mode,
    /// Seed: the same arguments give the same image, byte for byte.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a multi-platform index of this many images (seeds S, S+1, ...; at most 7)
    /// instead of a single image; OCI layouts only.
    #[arg(long)]
    pub index: Option<usize>,
    /// Layer compression in an OCI layout: gzip, zstd or none.
    #[arg(long, default_value = "gzip", value_parser = parse_compression)]
    pub compression: Compression,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse().map_err(|e: hoist_image::Error| e.to_string())
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    match s {
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        "none" => Ok(Compression::None),
        _ => Err(format!("compression {s:?}: expected gzip, zstd or none")),
    }
}

/// `123`, `4k`, `10M`, `1G` (also `KiB`, `MiB`, `GiB`), in bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "size {s:?}: unknown unit {unit:?} (expected k, M or G)"
            ));
        }
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("size {s:?}: expected a number of bytes like 1048576 or 1M"))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let loc = hoist_ops::pull::destination(&args.dst)?;
    if let Location::Registry(r) = &loc {
        return Err(not_local(r));
    }
    let encoding = match args.compression {
        Compression::Gzip => Encoding::gzip(),
        Compression::Zstd => Encoding::zstd(),
        Compression::None => Encoding::none(),
    };
    let opts = random::Options {
        layers: args.layers,
        size: args.size,
        mode: args.mode,
        seed: args.seed,
        encoding,
        store: None,
    };
    let source = match args.index {
        Some(n) => hoist_image::Child::Index(random::index(&opts, n)?),
        None => hoist_image::Child::Image(random::image(&opts)?),
    };
    // Layers are sealed into a temporary spool of the image's own, not the cache.
    let report = hoist_ops::write(&loc, source, &hoist_ops::Context::default())?;
    let line = format!("{}\n", report.written[0].digest);
    if loc.is_stdout() {
        std::io::stderr().write_all(line.as_bytes())?;
    } else {
        std::io::stdout().write_all(line.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        for (s, n) in [
            ("0", 0),
            ("123", 123),
            ("4k", 4096),
            ("10M", 10 << 20),
            ("1GiB", 1 << 30),
            ("2mb", 2 << 20),
        ] {
            assert_eq!(parse_size(s).unwrap(), n, "{s}");
        }
        for s in ["", "x", "1T", "-1", "1.5M", "99999999999999999999G"] {
            assert!(parse_size(s).is_err(), "{s}");
        }
    }
}
