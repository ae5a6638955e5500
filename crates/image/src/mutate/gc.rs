//! Garbage collection of an OCI image layout: remove the blobs no longer reachable from
//! `index.json`.

use std::collections::HashSet;
use std::fs;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::manifest::{Descriptor, MAX_MANIFEST_SIZE, Manifest};

/// What [`gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Blobs kept (reachable).
    pub kept: usize,
    /// Blobs removed.
    pub removed: usize,
    /// Bytes removed.
    pub removed_bytes: u64,
}

/// Remove every blob of `layout` that `index.json` does not reach, following indexes and
/// manifests (config, layers, subject) transitively. When a reachable manifest or index
/// cannot be read or parsed, nothing is removed (what it references is unknown). Files in
/// `blobs/` that are not blobs (temporary files of a writer) are left alone.
pub fn gc(layout: &Layout) -> Result<GcStats> {
    let mut reachable: HashSet<Digest> = HashSet::new();
    let mut todo: Vec<Descriptor> = layout.index_manifest()?.manifests;
    while let Some(d) = todo.pop() {
        if !reachable.insert(d.digest.clone()) {
            continue;
        }
        if !(d.media_type.is_manifest() || d.media_type.is_index()) {
            continue;
        }
        let raw = layout
            .read_blob(&d, MAX_MANIFEST_SIZE as u64)
            .map_err(|e| Error::invalid_input(format!("layout {}", layout.path().display()), format!("cannot collect garbage, nothing removed: reachable manifest unreadable: {e}")))?;
        let m = Manifest::from_raw(raw, Some(&d.media_type))?;
        if let Some(img) = m.as_image() {
            todo.push(img.config.clone());
            todo.extend(img.layers.iter().cloned());
            todo.extend(img.subject.iter().cloned());
        }
        if let Some(idx) = m.as_index() {
            todo.extend(idx.manifests.iter().cloned());
            todo.extend(idx.subject.iter().cloned());
        }
    }
    let mut stats = GcStats::default();
    let blobs = layout.path().join("blobs");
    let algs = fs::read_dir(&blobs).map_err(|e| Error::io(blobs.display(), e))?;
    for alg in algs {
        let alg = alg.map_err(|e| Error::io(blobs.display(), e))?;
        if !alg.path().is_dir() {
            continue;
        }
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        let dir = alg.path();
        for f in fs::read_dir(&dir).map_err(|e| Error::io(dir.display(), e))? {
            let f = f.map_err(|e| Error::io(dir.display(), e))?;
            let name = f.file_name().to_string_lossy().into_owned();
            let Ok(digest) = Digest::parse(&format!("{alg_name}:{name}")) else {
                continue; // not a blob (a writer's temporary file)
            };
            if reachable.contains(&digest) {
                stats.kept += 1;
                continue;
            }
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(f.path()).map_err(|e| Error::io(f.path().display(), e))?;
            stats.removed += 1;
            stats.removed_bytes += size;
        }
    }
    Ok(stats)
}
