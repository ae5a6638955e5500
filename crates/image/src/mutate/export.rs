//! The merged filesystem of an image: [`export`] writes it as one tar, [`flatten`] makes
//! it an image's only layer. Whiteouts are applied as the OCI image spec says
//! (`layer.md`, "Whiteouts"): `.wh.NAME` deletes NAME (and everything below it) from the
//! layers beneath; `.wh..wh..opq` hides everything the layers beneath have in its
//! directory; neither marker appears in the result.
//!
//! Layers are read top-down, once each, streaming: a path is emitted from the highest layer
//! that has it, unless a higher layer deleted it, deleted or made opaque one of its
//! directories, or replaced one of its directories with a non-directory. Only paths are
//! kept in memory, never contents. A directory re-created above a deletion holds only what
//! the layers above the deletion put in it.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::layer::{BoxRead, FromUncompressed, Layer, Store, UncompressedSource};
use crate::pipeline::Encoding;

use super::layers::clean_path;
use super::{assemble, history_entry, is_docker, layer_media_type, pipe, set_time};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Write the merged filesystem of `image` to `w` as a tar. Entries come top layer first;
/// each keeps its header (mode, owner, times, link target) from the layer that provides it.
pub fn export(image: &dyn Image, w: impl Write) -> Result<()> {
    let layers = image.layers()?;
    let mut out = tar::Builder::new(w);
    // Paths a higher layer emitted or deleted: lower copies are shadowed.
    let mut seen: HashSet<PathBuf> = HashSet::new();
    // Paths whose lower *descendants* are hidden: deleted paths, opaque directories,
    // non-directories (a file over a directory).
    let mut hidden_below: HashSet<PathBuf> = HashSet::new();
    for (i, layer) in layers.iter().enumerate().rev() {
        let what = format!("layer {i} ({})", layer_name(layer.as_ref()));
        let io = |e| Error::from_io(&what, crate::quote::untrusted_io(e));
        // This layer's markers apply to the layers beneath it only.
        let mut pending_seen = Vec::new();
        let mut pending_hidden = Vec::new();
        let mut a = tar::Archive::new(layer.uncompressed()?);
        for entry in a.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            let path = clean_path(&entry.path().map_err(io)?, &what)?;
            if path.as_os_str().is_empty() {
                continue; // the root directory itself
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == OPAQUE {
                let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
                pending_hidden.push(dir);
                continue;
            }
            if let Some(victim) = name.strip_prefix(WHITEOUT) {
                let p = path.with_file_name(victim);
                pending_seen.push(p.clone());
                pending_hidden.push(p);
                continue;
            }
            if seen.contains(&path) || ancestor_in(&path, &hidden_below) {
                continue;
            }
            let kind = entry.header().entry_type();
            if !kind.is_dir() {
                pending_hidden.push(path.clone());
            }
            seen.insert(path.clone());
            let mut h = entry.header().clone();
            if kind.is_hard_link() || kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(io)?
                    .ok_or_else(|| {
                        Error::invalid_input(
                            format!(
                                "{what}: tar entry {}",
                                crate::quote(path.as_os_str().as_encoded_bytes())
                            ),
                            "a link without a target",
                        )
                    })?
                    .into_owned();
                let target = if kind.is_hard_link() {
                    clean_path(&target, &what)?
                } else {
                    target
                };
                out.append_link(&mut h, &path, &target).map_err(io)?;
            } else {
                out.append_data(&mut h, &path, &mut entry).map_err(io)?;
            }
        }
        seen.extend(pending_seen);
        hidden_below.extend(pending_hidden);
    }
    out.finish().map_err(|e| Error::from_io("export", e))?;
    Ok(())
}

fn layer_name(l: &dyn Layer) -> String {
    l.digest()
        .map(|d| d.to_string())
        .unwrap_or_else(|_| "new layer".into())
}

fn ancestor_in(path: &Path, set: &HashSet<PathBuf>) -> bool {
    !set.is_empty() && path.ancestors().skip(1).any(|a| set.contains(a))
}

/// The merged filesystem of an image as an uncompressed layer source (streamed by a
/// producer thread on each open).
#[derive(Debug, Clone)]
pub struct Merge {
    image: Arc<dyn Image>,
}

impl Merge {
    /// The merge of `image`'s layers.
    pub fn new(image: Arc<dyn Image>) -> Merge {
        Merge { image }
    }
}

impl UncompressedSource for Merge {
    fn open(&self) -> Result<BoxRead> {
        let image = self.image.clone();
        Ok(pipe::spawn(move |w| export(image.as_ref(), w)))
    }
}

/// `image` with one layer holding its merged filesystem, sealed once with `encoding` into
/// `store`. The config keeps everything but `rootfs` and `history` (one entry now);
/// `time` sets `created`.
pub fn flatten(
    image: Arc<dyn Image>,
    encoding: &Encoding,
    store: Arc<dyn Store>,
    time: Option<u64>,
) -> Result<Arc<dyn Image>> {
    let mt = layer_media_type(image.as_ref(), encoding.compression)?;
    let docker = is_docker(image.as_ref())?;
    let mut config = image.config()?.parsed().clone();
    let layer: Arc<dyn Layer> = Arc::new(FromUncompressed::new(
        Merge::new(image.clone()),
        encoding.clone(),
        mt,
        store,
    ));
    config.rootfs.diff_ids = vec![layer.diff_id()?];
    config.history = vec![history_entry("hoist flatten", time, false)];
    if let Some(t) = time {
        set_time(&mut config, t);
    }
    let annotations = image
        .manifest()?
        .as_image()
        .map(|m| m.annotations.clone())
        .unwrap_or_default();
    Ok(Arc::new(assemble(
        config,
        vec![layer],
        docker,
        annotations,
    )?))
}
