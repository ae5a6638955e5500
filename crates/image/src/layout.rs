//! The OCI image layout: a directory with `oci-layout`, `index.json` and `blobs/<alg>/<hex>`.
//!
//! - Source: [`Layout::open`], then [`Layout::image`] / [`Layout::get`] by
//!   `org.opencontainers.image.ref.name` or digest, or [`Layout::index`] for the whole
//!   top-level index (several images, nested indexes). Every blob is read through a
//!   [`VerifyingReader`]: a corrupted or truncated blob is an error, never silently used.
//! - Sink: [`write`] (an image) and [`write_index`] (an index and everything below it).
//!   Blobs are written to a temporary file inside the layout, fsynced and renamed into
//!   place; blobs already present are skipped. `index.json` is then replaced the same way,
//!   an entry of the same ref name being replaced. Layers to be compressed for a layout
//!   can be sealed straight into it ([`LayoutStore`]), so writing the image copies nothing.
//!
//! Blob paths are made from validated [`Digest`]s only, never from other strings, so no
//! index or manifest can make hoist read or write outside the layout.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::digest::DiffId;
use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, ErrorKind, Result};
use crate::image::{Child, Image, ImageIndex};
use crate::layer::{BoxRead, CompressedSource, FromCompressed, Layer, Sealed, Store};
use crate::manifest::{
    ANNOTATION_REF_NAME, Config, Descriptor, IndexManifest, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
    Manifest,
};
use crate::media_type::MediaType;
use crate::pipeline::Encoding;
use crate::quote::quote;

/// The `oci-layout` file's content, as written by hoist.
const OCI_LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// The layout version hoist reads and writes.
pub const LAYOUT_VERSION: &str = "1.0.0";
/// Largest `index.json` read (it is a manifest: same cap).
const MAX_INDEX_SIZE: u64 = MAX_MANIFEST_SIZE as u64;

/// An OCI image layout on disk. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Layout {
    root: Arc<PathBuf>,
}

impl Layout {
    /// Open an existing layout: `oci-layout` must exist and name version 1.0.0.
    pub fn open(dir: impl AsRef<Path>) -> Result<Layout> {
        let root = dir.as_ref().to_path_buf();
        let marker = root.join("oci-layout");
        let raw = read_capped(&marker, 64 << 10).map_err(|e| {
            if e.is_not_found() {
                Error::invalid_format(
                    &root,
                    "not an OCI image layout: no oci-layout file in this directory",
                )
            } else {
                e
            }
        })?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Marker {
            image_layout_version: String,
        }
        let m: Marker = serde_json::from_slice(&raw).map_err(|e| {
            Error::invalid_format(
                &marker,
                format!("expected {{\"imageLayoutVersion\":\"1.0.0\"}}: {e}"),
            )
        })?;
        if m.image_layout_version != LAYOUT_VERSION {
            return Err(Error::invalid_format(
                &marker,
                format!(
                    "imageLayoutVersion {}, expected {LAYOUT_VERSION:?}",
                    quote(&m.image_layout_version)
                ),
            ));
        }
        Ok(Layout {
            root: Arc::new(root),
        })
    }

    /// Create a layout in `dir` (created if missing), or open the layout already there.
    /// A non-empty directory that is not a layout is refused.
    pub fn create(dir: impl AsRef<Path>) -> Result<Layout> {
        let root = dir.as_ref();
        if root.join("oci-layout").exists() {
            return Layout::open(root);
        }
        if root.exists() {
            let mut entries = fs::read_dir(root).map_err(|e| Error::io(root.display(), e))?;
            if entries.next().is_some() {
                return Err(Error::invalid_format(
                    root,
                    "directory is not empty and has no oci-layout file; refusing to make it a layout",
                ));
            }
        }
        fs::create_dir_all(root.join("blobs").join("sha256"))
            .map_err(|e| Error::io(root.display(), e))?;
        let layout = Layout {
            root: Arc::new(root.to_path_buf()),
        };
        let empty = IndexManifest {
            schema_version: 2,
            media_type: Some(MediaType::OciIndex),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: Default::default(),
        };
        layout.write_index_json(&empty)?;
        // oci-layout last: its presence marks a complete layout.
        layout.write_file_atomic(&root.join("oci-layout"), OCI_LAYOUT_CONTENT.as_bytes())?;
        Ok(layout)
    }

    /// The layout's directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where the blob of `digest` lives: `blobs/<algorithm>/<hex>` (from the validated digest only).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// True when the blob file exists.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Open a blob, verified against its descriptor's digest and size as it is read.
    pub fn open_blob(&self, descriptor: &Descriptor) -> Result<BoxRead> {
        let path = self.blob_path(&descriptor.digest);
        let f = File::open(&path).map_err(|e| self.missing_blob(&descriptor.digest, e))?;
        Ok(Box::new(VerifyingReader::new(
            f,
            descriptor.digest.clone(),
            Some(descriptor.size),
        )))
    }

    /// Read a small blob (manifest, config) whole, verified; refused above `cap` bytes.
    pub fn read_blob(&self, descriptor: &Descriptor, cap: u64) -> Result<Bytes> {
        if descriptor.size > cap {
            return Err(Error::invalid_manifest(
                format!("blob {}", descriptor.digest),
                format!("{} bytes is over the {cap} byte limit", descriptor.size),
            ));
        }
        let mut buf = Vec::with_capacity(descriptor.size as usize);
        self.open_blob(descriptor)?
            .read_to_end(&mut buf)
            .map_err(|e| Error::from_io(self.blob_path(&descriptor.digest).display(), e))?;
        Ok(Bytes::from(buf))
    }

    fn missing_blob(&self, digest: &Digest, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::NotFound {
            Error::not_found(format!(
                "blob {digest} in layout {} (missing {})",
                self.root.display(),
                self.blob_path(digest).display()
            ))
        } else {
            Error::io(self.blob_path(digest).display(), e)
        }
    }

    /// The parsed `index.json`.
    pub fn index_manifest(&self) -> Result<IndexManifest> {
        Ok(self
            .index_json()?
            .as_index()
            .expect("index_json checks it is an index")
            .clone())
    }

    fn index_json(&self) -> Result<Manifest> {
        let path = self.root.join("index.json");
        let raw = read_capped(&path, MAX_INDEX_SIZE)?;
        let m = Manifest::from_raw(raw, Some(&MediaType::OciIndex))
            .map_err(|e| Error::invalid_format(&path, e))?;
        if m.as_index().is_none() {
            return Err(Error::invalid_format(&path, "is not an image index"));
        }
        Ok(m)
    }

    /// The top-level index (`index.json`) as an [`ImageIndex`].
    pub fn index(&self) -> Result<Arc<dyn ImageIndex>> {
        Ok(Arc::new(Index {
            layout: self.clone(),
            manifest: self.index_json()?,
        }))
    }

    /// Find a descriptor in `index.json` by ref name annotation or by digest
    /// (`sha256:...`). The last entry wins when a ref name appears twice.
    pub fn find(&self, name_or_digest: &str) -> Result<Descriptor> {
        let index = self.index_manifest()?;
        let by_digest = Digest::parse(name_or_digest).ok();
        index
            .manifests
            .iter()
            .rev()
            .find(|d| match &by_digest {
                Some(digest) => &d.digest == digest,
                None => {
                    d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str)
                        == Some(name_or_digest)
                }
            })
            .cloned()
            .ok_or_else(|| {
                let names: Vec<String> = index
                    .manifests
                    .iter()
                    .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME))
                    .map(|n| quote(n).to_string())
                    .collect();
                Error::not_found(format!(
                    "{} in layout {} (ref names: {})",
                    quote(name_or_digest),
                    self.root.display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })
    }

    /// Resolve a descriptor of this layout to an image or a nested index.
    pub fn child(&self, descriptor: &Descriptor) -> Result<Child> {
        let raw = self.read_blob(descriptor, MAX_MANIFEST_SIZE as u64)?;
        let manifest = Manifest::from_raw(raw, Some(&descriptor.media_type))?;
        Ok(if manifest.as_index().is_some() {
            Child::Index(Arc::new(Index {
                layout: self.clone(),
                manifest,
            }))
        } else {
            Child::Image(Arc::new(LayoutImage {
                layout: self.clone(),
                manifest,
                config: OnceLock::new(),
                layers: OnceLock::new(),
            }))
        })
    }

    /// The image or index named `name_or_digest` (see [`find`](Self::find)).
    pub fn get(&self, name_or_digest: &str) -> Result<Child> {
        self.child(&self.find(name_or_digest)?)
    }

    /// The image named `name_or_digest`; an index there is an error naming it.
    pub fn image(&self, name_or_digest: &str) -> Result<Arc<dyn Image>> {
        match self.get(name_or_digest)? {
            Child::Image(i) => Ok(i),
            Child::Index(_) => Err(Error::invalid_input(
                format!(
                    "{} in layout {}",
                    quote(name_or_digest),
                    self.root.display()
                ),
                "is an image index, not a single image",
            )),
        }
    }

    /// Write a blob from `src` unless present: temp file in the layout, verified against
    /// `descriptor`, fsynced, renamed into place. Returns true when it was written.
    pub fn write_blob(&self, descriptor: &Descriptor, src: impl Read) -> Result<bool> {
        self.write_blob_checked(descriptor, src, true)
    }

    /// [`Layout::write_blob`] for bytes this process already proved to be the blob
    /// (see [`crate::Layer::compressed_proven`]): only their size is checked.
    pub fn write_proven_blob(&self, descriptor: &Descriptor, src: impl Read) -> Result<bool> {
        self.write_blob_checked(descriptor, src, false)
    }

    fn write_blob_checked(
        &self,
        descriptor: &Descriptor,
        src: impl Read,
        hash: bool,
    ) -> Result<bool> {
        let path = self.blob_path(&descriptor.digest);
        if let Ok(meta) = fs::metadata(&path)
            && meta.is_file()
            && meta.len() == descriptor.size
        {
            return Ok(false);
        }
        let dir = path.parent().expect("blob path has a parent");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        let mut tmp = temp_builder(".tmp-")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir.display(), e))?;
        // At most one hash: the verifying reader's (the file is not hashed again as it is
        // written), none for proven bytes.
        // Through the page cache (unlike the content cache's blobs): a layout is often read
        // right after it is written (pushed, by hoist or another tool), and a blob written
        // past the page cache costs its first reader a read from disk into fresh pages
        // (measured: hoist's push of a 152 MB layout 0.17 CPU-s instead of 0.06).
        let d = descriptor.digest.clone();
        let mut src = match hash {
            true => VerifyingReader::new(src, d, Some(descriptor.size)),
            false => VerifyingReader::size_only(src, d, descriptor.size),
        };
        io::copy(&mut src, &mut tmp)
            .map_err(|e| Error::from_io(format!("blob {}", descriptor.digest), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path().display(), e))?;
        tmp.persist(&path)
            .map_err(|e| Error::io(path.display(), e.error))?;
        sync_dir(dir);
        Ok(true)
    }

    fn write_file_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let dir = path.parent().expect("layout file has a parent");
        let mut tmp = temp_builder(".tmp-")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir.display(), e))?;
        tmp.write_all(bytes)
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| Error::io(tmp.path().display(), e))?;
        tmp.persist(path)
            .map_err(|e| Error::io(path.display(), e.error))?;
        sync_dir(dir);
        Ok(())
    }

    fn write_index_json(&self, index: &IndexManifest) -> Result<()> {
        let raw = serde_json::to_vec(index).expect("index serializes");
        self.write_file_atomic(&self.root.join("index.json"), &raw)
    }

    /// Add `descriptor` to `index.json`, annotated with `ref_name` if given; an entry with
    /// the same ref name is replaced, and an unnamed entry of the same digest is not duplicated.
    pub fn add_to_index(&self, mut descriptor: Descriptor, ref_name: Option<&str>) -> Result<()> {
        let mut index = self.index_manifest()?;
        match ref_name {
            Some(name) => {
                index.manifests.retain(|d| {
                    d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(name)
                });
                descriptor
                    .annotations
                    .insert(ANNOTATION_REF_NAME.to_string(), name.to_string());
            }
            None => {
                if index.manifests.iter().any(|d| {
                    d.digest == descriptor.digest
                        && !d.annotations.contains_key(ANNOTATION_REF_NAME)
                }) {
                    return Ok(());
                }
            }
        }
        index.manifests.push(descriptor);
        self.write_index_json(&index)
    }
}

/// A [`Store`] that seals layers straight into a layout's blobs (the layout is created on
/// the first seal): an image then written into that layout ([`write`]) finds its layers
/// there already. Where layers would otherwise go to a spool, that saves writing every
/// compressed byte to the spool, reading it back and writing it again (for `hoist copy
/// --no-cache docker-archive:X oci:Y`, 210 MB of incompressible layers went through the
/// disk twice). Blobs are written like [`Layout::write_blob`]'s: a temporary file in the
/// layout, fsynced, renamed into place. A failed seal leaves no blob behind.
#[derive(Debug)]
pub struct LayoutStore {
    dir: PathBuf,
    layout: OnceLock<Layout>,
}

impl LayoutStore {
    /// A store for the layout in `dir` (made or opened on first use, as [`Layout::create`]).
    pub fn new(dir: impl Into<PathBuf>) -> LayoutStore {
        LayoutStore {
            dir: dir.into(),
            layout: OnceLock::new(),
        }
    }

    fn layout(&self) -> Result<&Layout> {
        if let Some(l) = self.layout.get() {
            return Ok(l);
        }
        let l = Layout::create(&self.dir)?;
        Ok(self.layout.get_or_init(|| l))
    }
}

impl Store for LayoutStore {
    fn lookup(&self, _: &DiffId, _: &Encoding) -> Option<Sealed> {
        None
    }

    fn seal(&self, src: BoxRead, encoding: &Encoding, media_type: MediaType) -> Result<Sealed> {
        let layout = self.layout()?;
        // Sealing hashes with sha256: the blob goes under blobs/sha256.
        let dir = layout.root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let mut tmp = temp_builder(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(dir.display(), e))?;
        let tmp_path = tmp.path().to_path_buf();
        let mut out = io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        let sealed = crate::pipeline::seal(src, encoding, media_type, &mut out)?;
        out.flush().map_err(|e| Error::io(tmp_path.display(), e))?;
        drop(out);
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp_path.display(), e))?;
        let path = layout.blob_path(&sealed.digest);
        tmp.persist(&path)
            .map_err(|e| Error::io(path.display(), e.error))?;
        sync_dir(&dir);
        Ok(sealed)
    }

    fn open(&self, sealed: &Sealed) -> Result<BoxRead> {
        let layout = self.layout()?;
        let f = File::open(layout.blob_path(&sealed.digest))
            .map_err(|e| layout.missing_blob(&sealed.digest, e))?;
        Ok(Box::new(f))
    }
}

/// A temporary-file builder for files hoist keeps: mode 0644 (tempfile's default of 0600
/// would hide blobs from other users and tools, such as a registry running as another user).
pub(crate) fn temp_builder(prefix: &'static str) -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(fs::Permissions::from_mode(0o644));
    }
    b
}

fn sync_dir(dir: &Path) {
    // Best effort: makes the rename durable on filesystems that need it.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let mut buf = Vec::new();
    f.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(path.display(), e))?;
    if buf.len() as u64 > cap {
        return Err(Error::invalid_format(
            path,
            format!("larger than the {cap} byte limit"),
        ));
    }
    Ok(buf)
}

/// An index in a layout: `index.json` itself or a nested index blob.
#[derive(Debug)]
pub struct Index {
    layout: Layout,
    manifest: Manifest,
}

impl ImageIndex for Index {
    fn manifest(&self) -> Result<Manifest> {
        Ok(self.manifest.clone())
    }
    fn child(&self, descriptor: &Descriptor) -> Result<Child> {
        self.layout.child(descriptor)
    }
}

/// An image in a layout; its layers are [`FromCompressed`] over the layout's blobs.
#[derive(Debug)]
pub struct LayoutImage {
    layout: Layout,
    manifest: Manifest,
    config: OnceLock<Config>,
    layers: OnceLock<Vec<Arc<dyn Layer>>>,
}

impl LayoutImage {
    fn image_manifest(&self) -> &crate::manifest::ImageManifest {
        self.manifest
            .as_image()
            .expect("LayoutImage is built from image manifests only")
    }
}

impl Image for LayoutImage {
    fn manifest(&self) -> Result<Manifest> {
        Ok(self.manifest.clone())
    }

    fn config(&self) -> Result<Config> {
        if let Some(c) = self.config.get() {
            return Ok(c.clone());
        }
        let d = &self.image_manifest().config;
        let c = Config::from_raw(self.layout.read_blob(d, MAX_CONFIG_SIZE as u64)?)?;
        Ok(self.config.get_or_init(|| c).clone())
    }

    fn layers(&self) -> Result<Vec<Arc<dyn Layer>>> {
        if let Some(l) = self.layers.get() {
            return Ok(l.clone());
        }
        let m = self.image_manifest();
        let config = self.config()?;
        let diff_ids = &config.parsed().rootfs.diff_ids;
        if diff_ids.len() != m.layers.len() {
            return Err(Error::invalid_manifest(
                format!("image {}", self.manifest.digest()),
                format!(
                    "manifest has {} layers but config rootfs.diff_ids has {}",
                    m.layers.len(),
                    diff_ids.len()
                ),
            ));
        }
        let layers: Vec<Arc<dyn Layer>> = m
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(d, diff_id)| {
                Arc::new(FromCompressed::new(
                    Blob {
                        layout: self.layout.clone(),
                        descriptor: d.clone(),
                    },
                    Some(diff_id.clone()),
                )) as Arc<dyn Layer>
            })
            .collect();
        Ok(self.layers.get_or_init(|| layers).clone())
    }
}

/// A blob of a layout, the core of a layout layer.
#[derive(Debug)]
pub struct Blob {
    layout: Layout,
    descriptor: Descriptor,
}

impl CompressedSource for Blob {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
    fn open(&self) -> Result<BoxRead> {
        // FromCompressed verifies; open the raw file.
        let path = self.layout.blob_path(&self.descriptor.digest);
        let f =
            File::open(&path).map_err(|e| self.layout.missing_blob(&self.descriptor.digest, e))?;
        Ok(Box::new(f))
    }
}

/// Write an image's blobs (layers, config, manifest) into the layout, then add it to
/// `index.json` under `ref_name`. Returns the manifest's descriptor.
pub fn write(layout: &Layout, image: &dyn Image, ref_name: Option<&str>) -> Result<Descriptor> {
    let mut descriptor = write_image_blobs(layout, image)?;
    if let Ok(config) = image.config() {
        let p = config.parsed().platform();
        if !p.os.is_empty() && !p.architecture.is_empty() {
            descriptor.platform = Some(p);
        }
    }
    layout.add_to_index(descriptor.clone(), ref_name)?;
    Ok(descriptor)
}

/// Write an index, every image and nested index below it, into the layout, then add it
/// to `index.json` under `ref_name`. Returns the index's descriptor.
pub fn write_index(
    layout: &Layout,
    index: &dyn ImageIndex,
    ref_name: Option<&str>,
) -> Result<Descriptor> {
    let descriptor = write_index_blobs(layout, index)?;
    layout.add_to_index(descriptor.clone(), ref_name)?;
    Ok(descriptor)
}

fn write_image_blobs(layout: &Layout, image: &dyn Image) -> Result<Descriptor> {
    let config = image.config()?;
    let diff_ids = &config.parsed().rootfs.diff_ids;
    let layers = image.layers()?;
    // Each layer sealed (when it is not yet) and its blob written by one worker, a few
    // layers at once: a blob's copy and fsync overlap the next layers' compression.
    let written = crate::pipeline::each_layer(&layers, |i, layer| {
        let named = |e: Error| match diff_ids.get(i) {
            Some(diff_id) => {
                crate::validate::name_diff_id_error(e, &format!("layer {i}"), diff_id.digest())
            }
            None => e,
        };
        let d = layer.descriptor().map_err(named)?;
        if !layout.has_blob(&d.digest) {
            match layer.compressed_proven().map_err(named)? {
                Some(src) => layout.write_proven_blob(&d, src).map_err(named)?,
                None => layout
                    .write_blob(&d, layer.compressed().map_err(named)?)
                    .map_err(named)?,
            };
        }
        Ok(d)
    });
    let written = written.map_err(|e| crate::validate::name_by_config(e, &config))?;
    let manifest = image
        .manifest()
        .map_err(|e| crate::validate::name_by_config(e, &config))?;
    let m = manifest.as_image().ok_or_else(|| {
        Error::invalid_manifest(
            format!("manifest {}", manifest.digest()),
            "expected an image manifest, found an index",
        )
    })?;
    if written.len() != m.layers.len() {
        return Err(Error::invalid_manifest(
            format!("manifest {}", manifest.digest()),
            format!(
                "lists {} layers, the image has {}",
                m.layers.len(),
                written.len()
            ),
        ));
    }
    for (i, (w, d)) in written.iter().zip(&m.layers).enumerate() {
        if w.digest != d.digest || w.size != d.size {
            return Err(Error::invalid_manifest(
                format!("manifest {}", manifest.digest()),
                format!(
                    "layer {i} is {} ({} bytes), the layer has {} ({} bytes)",
                    d.digest, d.size, w.digest, w.size
                ),
            ));
        }
    }
    if config.digest() != &m.config.digest {
        return Err(Error::new(ErrorKind::DigestMismatch {
            expected: m.config.digest.clone(),
            actual: config.digest().clone(),
            bytes_read: config.raw().len() as u64,
        }));
    }
    layout.write_blob(&m.config, &config.raw()[..])?;
    let descriptor = manifest.descriptor();
    layout.write_blob(&descriptor, &manifest.raw()[..])?;
    Ok(descriptor)
}

fn write_index_blobs(layout: &Layout, index: &dyn ImageIndex) -> Result<Descriptor> {
    let manifest = index.manifest()?;
    let m = manifest.as_index().ok_or_else(|| {
        Error::invalid_manifest(
            format!("index {}", manifest.digest()),
            "expected an index, found an image manifest",
        )
    })?;
    for child in &m.manifests {
        let written = match index.child(child)? {
            Child::Image(image) => write_image_blobs(layout, image.as_ref())?,
            Child::Index(nested) => write_index_blobs(layout, nested.as_ref())?,
        };
        if written.digest != child.digest {
            return Err(Error::new(ErrorKind::DigestMismatch {
                expected: child.digest.clone(),
                actual: written.digest,
                bytes_read: written.size,
            }));
        }
    }
    let descriptor = manifest.descriptor();
    layout.write_blob(&descriptor, &manifest.raw()[..])?;
    Ok(descriptor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_open_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path().join("l")).unwrap();
        assert!(l.index_manifest().unwrap().manifests.is_empty());
        Layout::open(l.path()).unwrap();
        // create on an existing layout opens it.
        Layout::create(l.path()).unwrap();

        let e = Layout::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("no oci-layout file"), "{e}");

        fs::write(dir.path().join("stray"), b"x").unwrap();
        let e = Layout::create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");

        fs::write(
            l.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        let e = Layout::open(l.path()).unwrap_err();
        assert!(e.to_string().contains("expected \"1.0.0\""), "{e}");
    }

    #[test]
    fn blobs_are_verified_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path()).unwrap();
        let data = b"hello blob";
        let d = Descriptor::new(MediaType::OciLayer, Digest::sha256(data), data.len() as u64);
        // Wrong bytes: refused, nothing left behind.
        let e = l.write_blob(&d, &b"hello blub"[..]).unwrap_err();
        assert!(e.is_integrity(), "{e}");
        assert!(!l.has_blob(&d.digest));
        let leftovers: Vec<_> = fs::read_dir(l.path().join("blobs/sha256"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(l.write_blob(&d, &data[..]).unwrap());
        assert!(
            !l.write_blob(&d, &data[..]).unwrap(),
            "present blobs are skipped"
        );
        assert_eq!(&l.read_blob(&d, 100).unwrap()[..], data);
        // Corrupt it on disk: reading fails with a mismatch.
        fs::write(l.blob_path(&d.digest), b"hello blub").unwrap();
        let e = l.read_blob(&d, 100).unwrap_err();
        assert!(e.is_integrity(), "{e}");
    }

    /// Proven bytes (sealed by this process) are not hashed again, but their size is
    /// still checked, and a short or long blob is refused with nothing left behind.
    #[test]
    fn proven_blobs_are_size_checked() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path()).unwrap();
        let data = b"hello blob";
        let d = Descriptor::new(MediaType::OciLayer, Digest::sha256(data), data.len() as u64);
        for bad in [&b"hello blo"[..], &b"hello blobs"[..]] {
            let e = l.write_proven_blob(&d, bad).unwrap_err();
            assert!(e.to_string().contains("bytes"), "{e}");
            assert!(!l.has_blob(&d.digest));
        }
        let leftovers: Vec<_> = fs::read_dir(l.path().join("blobs/sha256"))
            .unwrap()
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(l.write_proven_blob(&d, &data[..]).unwrap());
        assert_eq!(&l.read_blob(&d, 100).unwrap()[..], data);
    }

    /// Sealing into a layout puts the blob in place (the layout made on first use), opens
    /// it from there, and leaves nothing behind when the source fails.
    #[test]
    fn layout_store_seals_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("l");
        let store = LayoutStore::new(&root);
        let data = crate::random::text_tar(3, 3 << 20);
        for enc in [Encoding::gzip(), Encoding::zstd()] {
            let mt = MediaType::oci_layer(enc.compression);
            let sealed = store
                .seal(Box::new(io::Cursor::new(data.clone())), &enc, mt)
                .unwrap();
            let l = Layout::open(&root).unwrap();
            assert!(l.has_blob(&sealed.digest));
            let mut blob = Vec::new();
            store.open(&sealed).unwrap().read_to_end(&mut blob).unwrap();
            assert_eq!(Digest::sha256(&blob), sealed.digest);
            assert_eq!(blob.len() as u64, sealed.size);
            assert_eq!(sealed.diff_id.0, Digest::sha256(&data));
        }
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("source broke"))
            }
        }
        let e = store
            .seal(Box::new(Broken), &Encoding::zstd(), MediaType::OciLayerZstd)
            .unwrap_err();
        assert!(e.to_string().contains("source broke"), "{e}");
        let names: Vec<String> = fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn index_entries_replace_by_ref_name() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path()).unwrap();
        let a = Descriptor::new(MediaType::OciManifest, Digest::sha256(b"a"), 1);
        let b = Descriptor::new(MediaType::OciManifest, Digest::sha256(b"b"), 1);
        l.add_to_index(a.clone(), Some("v1")).unwrap();
        l.add_to_index(a.clone(), None).unwrap();
        l.add_to_index(a.clone(), None).unwrap();
        l.add_to_index(b.clone(), Some("v1")).unwrap();
        l.add_to_index(a.clone(), Some("v2")).unwrap();
        let idx = l.index_manifest().unwrap();
        assert_eq!(idx.manifests.len(), 3);
        assert_eq!(l.find("v1").unwrap().digest, b.digest);
        assert_eq!(l.find("v2").unwrap().digest, a.digest);
        assert_eq!(l.find(&b.digest.to_string()).unwrap().digest, b.digest);
        let e = l.find("v3").unwrap_err();
        assert!(
            e.is_not_found() && e.to_string().contains(r#""v1", "v2""#),
            "{e}"
        );
    }
}
