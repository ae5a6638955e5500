//! `hoist append BASE --layer FILE_OR_DIR... -t DST [--time T] [--owner UID:GID]
//! [--compression gzip|zstd|none]`: new layers on top of an image (or of `scratch`). A
//! directory becomes a deterministic tar (sorted entries, mtime from `--time` or the epoch,
//! owner 0:0 unless `--owner`); a tar file (plain, gzip or zstd) is taken as it is, its paths
//! checked. Each new layer is compressed once, through the content cache; the base's layers
//! are never read.

use anyhow::{Context, bail};
use hoist_image::mutate::{self, Addendum, DirOptions};
use hoist_image::pipeline::Encoding;

use super::cache::CacheOpts;
use super::mutate::{NewLayerCompression, open_image, parse_time, write_image};

/// Arguments of `hoist append`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The base image (oci:DIR[:NAME], docker-archive:FILE[:REF], a path), or `scratch`.
    pub base: String,
    /// A tar file (plain, gzip or zstd) or a directory; repeat for several layers, base first.
    #[arg(long, required = true, value_name = "FILE_OR_DIR")]
    pub layer: Vec<std::path::PathBuf>,
    /// Destination: oci:DIR[:NAME], docker-archive:FILE[:REF], or a registry reference.
    #[arg(short = 't', long = "tag", value_name = "DST")]
    pub dst: String,
    /// Time of the new history entries, `created`, and directory entries' mtimes:
    /// seconds since 1970 or YYYY-MM-DDTHH:MM:SSZ. Default: mtimes 0, times unset.
    #[arg(long)]
    pub time: Option<String>,
    /// Owner of directory layers' entries.
    #[arg(long, default_value = "0:0", value_name = "UID:GID")]
    pub owner: String,
    /// Compression of the new layers.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: NewLayerCompression,
    /// The platform of `scratch`: os/arch[/variant].
    #[arg(long)]
    pub platform: Option<String>,
}

fn parse_owner(s: &str) -> anyhow::Result<(u64, u64)> {
    let parsed = s
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)));
    parsed.with_context(|| format!("invalid --owner {s:?}: expected UID:GID, numbers"))
}

/// Run `hoist append`.
pub fn run(args: &Args, cache: &CacheOpts) -> anyhow::Result<()> {
    let (uid, gid) = parse_owner(&args.owner)?;
    let time = parse_time(args.time.as_deref())?;
    let stores = cache.store()?;
    let encoding = args.compression.encoding();
    let mut opened = None;
    let base = if args.base == "scratch" {
        let p = args
            .platform
            .as_deref()
            .map(hoist_image::Platform::parse)
            .transpose()?;
        mutate::scratch(p.as_ref())? as std::sync::Arc<dyn hoist_image::Image>
    } else {
        if args.platform.is_some() {
            bail!(
                "--platform is for `scratch` bases; use hoist mutate --platform to change an image's"
            );
        }
        let o = open_image(&args.base, &Encoding::gzip(), &stores, None)?;
        let img = o.image.clone();
        opened = Some(o);
        img
    };
    let mt = mutate::layer_media_type(base.as_ref(), encoding.compression)?;
    let dir = DirOptions {
        mtime: time.unwrap_or(0),
        uid,
        gid,
    };
    let mut add = Vec::new();
    for p in &args.layer {
        let layer = mutate::layer_from_path(p, dir, &encoding, mt.clone(), stores.store.clone())
            .with_context(|| format!("layer {}", p.display()))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string());
        add.push(Addendum {
            layer,
            created_by: format!("hoist append {name}"),
        });
    }
    let out =
        mutate::append(base, add, time).with_context(|| format!("appending to {}", args.base))?;
    write_image(&args.dst, out, &stores, &opened.iter().collect::<Vec<_>>())
}
