//! The [`Layer`] trait, and the wrappers that derive a full layer from a small core:
//! [`FromCompressed`] (a blob whose digest is known: layout, registry) and
//! [`FromUncompressed`] (a tar whose compressed form is yet to be made: tarball, random).
//! Every derived fact is computed at most once and memoized.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::digest::{DiffId, Digest, HashingReader, VerifyingReader};
use crate::error::{Error, ErrorKind, Result};
use crate::manifest::Descriptor;
use crate::media_type::{Compression, MediaType};
use crate::pipeline::{self, Encoding};
use crate::reference::Reference;

/// A boxed reader that can cross threads.
pub type BoxRead = Box<dyn Read + Send>;

/// Everything a manifest needs to know about a layer, returned by one pass of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: DiffId,
    /// Size of the compressed blob.
    pub size: u64,
    /// Media type of the compressed blob.
    pub media_type: MediaType,
}

impl Sealed {
    /// The descriptor for a manifest's `layers` list.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }
}

/// A layer of an image. Facts may be computed lazily, but each at most once.
pub trait Layer: Send + Sync + fmt::Debug {
    /// Media type of the compressed (stored) form.
    fn media_type(&self) -> Result<MediaType>;
    /// Digest of the compressed blob.
    fn digest(&self) -> Result<Digest>;
    /// Digest of the uncompressed tar.
    fn diff_id(&self) -> Result<DiffId>;
    /// Size of the compressed blob.
    fn size(&self) -> Result<u64>;
    /// The compressed blob. Sources with a known digest verify it as it is read.
    fn compressed(&self) -> Result<BoxRead>;
    /// The compressed blob for a receiver that checks the digest itself: a registry
    /// commits an upload only under the digest its bytes hash to, so hashing them here
    /// too would be a second pass over every byte. Sources skip their own hashing but
    /// still check the size. Default: [`Layer::compressed`].
    fn compressed_for_upload(&self) -> Result<BoxRead> {
        self.compressed()
    }
    /// The compressed blob when this process already proved its bytes to be the blob
    /// the descriptor names: it sealed them itself (hashing them as they were written), or
    /// a store verified them as it opened them (see [`Store::open`]). A sink that would
    /// hash them to check the digest (a layout writer) checks only their size then.
    /// `None` when the bytes are not proven: the sink reads [`Layer::compressed`] and
    /// checks. Default: `None`.
    fn compressed_proven(&self) -> Result<Option<BoxRead>> {
        Ok(None)
    }
    /// The uncompressed tar.
    fn uncompressed(&self) -> Result<BoxRead>;

    /// A registry repository that holds this layer's compressed blob, when the layer is
    /// read from one (a reference without tag or digest): a sink on the same registry
    /// mounts the blob from there instead of uploading its bytes. Default: none.
    fn origin(&self) -> Option<Reference> {
        None
    }

    /// All facts at once.
    fn sealed(&self) -> Result<Sealed> {
        Ok(Sealed {
            digest: self.digest()?,
            diff_id: self.diff_id()?,
            size: self.size()?,
            media_type: self.media_type()?,
        })
    }

    /// The descriptor for a manifest.
    fn descriptor(&self) -> Result<Descriptor> {
        Ok(self.sealed()?.descriptor())
    }
}

/// The core of a layer known by its compressed blob.
pub trait CompressedSource: Send + Sync + fmt::Debug {
    /// Descriptor of the blob (digest, size, media type).
    fn descriptor(&self) -> &Descriptor;
    /// The raw blob bytes; [`FromCompressed`] verifies them.
    fn open(&self) -> Result<BoxRead>;
    /// The registry repository the blob is read from, if any (see [`Layer::origin`]).
    fn origin(&self) -> Option<Reference> {
        None
    }
}

/// A full [`Layer`] from a [`CompressedSource`]: the diff_id is taken from `diff_id_hint`
/// (the config's `rootfs.diff_ids`) or learned by decompressing once, then memoized.
#[derive(Debug)]
pub struct FromCompressed<S> {
    src: S,
    diff_id: OnceLock<DiffId>,
}

impl<S: CompressedSource> FromCompressed<S> {
    /// Wrap a source; `diff_id_hint` is trusted for lookups (validate recomputes it).
    pub fn new(src: S, diff_id_hint: Option<DiffId>) -> Self {
        let diff_id = OnceLock::new();
        if let Some(d) = diff_id_hint {
            let _ = diff_id.set(d);
        }
        FromCompressed { src, diff_id }
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.src
    }

    fn compression(&self) -> Result<Compression> {
        let mt = &self.src.descriptor().media_type;
        mt.layer_compression().ok_or_else(|| {
            Error::invalid_manifest(
                format!("layer {}", self.src.descriptor().digest),
                format!(
                    "media type {} is not a layer type",
                    crate::quote(mt.as_str())
                ),
            )
        })
    }
}

impl<S: CompressedSource> Layer for FromCompressed<S> {
    fn media_type(&self) -> Result<MediaType> {
        Ok(self.src.descriptor().media_type.clone())
    }
    fn digest(&self) -> Result<Digest> {
        Ok(self.src.descriptor().digest.clone())
    }
    fn size(&self) -> Result<u64> {
        Ok(self.src.descriptor().size)
    }
    fn diff_id(&self) -> Result<DiffId> {
        if let Some(d) = self.diff_id.get() {
            return Ok(d.clone());
        }
        let mut r = HashingReader::new(self.uncompressed()?);
        std::io::copy(&mut r, &mut std::io::sink())
            .map_err(|e| Error::from_io(format!("layer {}", self.src.descriptor().digest), e))?;
        let d = DiffId(r.finish().1);
        Ok(self.diff_id.get_or_init(|| d).clone())
    }
    fn compressed(&self) -> Result<BoxRead> {
        let d = self.src.descriptor();
        Ok(Box::new(VerifyingReader::new(
            self.src.open()?,
            d.digest.clone(),
            Some(d.size),
        )))
    }
    fn compressed_for_upload(&self) -> Result<BoxRead> {
        let d = self.src.descriptor();
        Ok(Box::new(VerifyingReader::size_only(
            self.src.open()?,
            d.digest.clone(),
            d.size,
        )))
    }
    fn uncompressed(&self) -> Result<BoxRead> {
        pipeline::decoder(self.compression()?, self.compressed()?)
    }
    fn origin(&self) -> Option<Reference> {
        self.src.origin()
    }
}

/// The core of a layer known by its uncompressed tar.
pub trait UncompressedSource: Send + Sync + fmt::Debug {
    /// The uncompressed tar bytes.
    fn open(&self) -> Result<BoxRead>;
    /// The diff_id if the source already claims one (a config's rootfs): trusted for
    /// cache lookups, verified whenever the layer is actually read.
    fn diff_id_hint(&self) -> Option<DiffId> {
        None
    }
}

/// Where sealed layers' compressed bytes are kept: the content cache, a spool of temporary
/// files, memory. A store is asked for a layer by its diff_id and encoding, seals what it
/// does not have, and opens what it sealed by the [`Sealed`] facts it returned; where the
/// bytes live (a file, a buffer) is its own business.
pub trait Store: Send + Sync + fmt::Debug {
    /// A layer already sealed with `encoding`, by its diff_id.
    fn lookup(&self, diff_id: &DiffId, encoding: &Encoding) -> Option<Sealed>;
    /// Seal `src` (read once, compress once), keep the compressed bytes, and return the
    /// facts.
    fn seal(&self, src: BoxRead, encoding: &Encoding, media_type: MediaType) -> Result<Sealed>;
    /// The compressed bytes of a blob this store returned from `lookup` or `seal`. They
    /// must be the sealed ones (hashed by this process while it wrote them, or verified
    /// here on first open, as the disk cache does) so readers need not hash them again. A
    /// blob the store lost or found corrupt is a not-found or integrity error: the caller
    /// seals the layer again.
    fn open(&self, sealed: &Sealed) -> Result<BoxRead>;
}

/// A [`Store`] that spools to temporary files, deleted when the store is dropped.
#[derive(Debug)]
pub struct SpoolStore {
    dir: tempfile::TempDir,
}

impl SpoolStore {
    /// Spool under the system temp directory.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hoist-spool-")
            .tempdir()
            .map_err(|e| Error::io("temporary spool directory", e))?;
        Ok(SpoolStore { dir })
    }
}

impl SpoolStore {
    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.path().join(digest.hex())
    }
}

impl Store for SpoolStore {
    fn lookup(&self, _: &DiffId, _: &Encoding) -> Option<Sealed> {
        None
    }

    fn seal(&self, src: BoxRead, encoding: &Encoding, media_type: MediaType) -> Result<Sealed> {
        let mut tmp = tempfile::NamedTempFile::new_in(self.dir.path())
            .map_err(|e| Error::io(self.dir.path().display(), e))?;
        let tmp_path = tmp.path().to_path_buf();
        // Past the page cache: a spooled blob is read back once or twice.
        let mut out = crate::direct::DirectWriter::new(tmp.as_file_mut(), &tmp_path);
        let sealed = pipeline::seal(src, encoding, media_type, &mut out)?;
        out.finish().map_err(|e| Error::io(tmp_path.display(), e))?;
        let path = self.path(&sealed.digest);
        tmp.persist(&path)
            .map_err(|e| Error::io(path.display(), e.error))?;
        Ok(sealed)
    }

    fn open(&self, sealed: &Sealed) -> Result<BoxRead> {
        let path = self.path(&sealed.digest);
        crate::direct::open(&path).map_err(|e| Error::io(path.display(), e))
    }
}

/// A full [`Layer`] from an [`UncompressedSource`]: sealed (read once, hashed, compressed
/// once into a [`Store`]) the first time a compressed-side fact is asked, then memoized.
#[derive(Debug)]
pub struct FromUncompressed<S> {
    src: S,
    encoding: Encoding,
    media_type: MediaType,
    store: Arc<dyn Store>,
    sealed: OnceLock<Sealed>,
}

impl<S: UncompressedSource> FromUncompressed<S> {
    /// Wrap a source; it will be compressed with `encoding` into `store`, and described
    /// with `media_type` (which must be a layer type of that compression).
    pub fn new(src: S, encoding: Encoding, media_type: MediaType, store: Arc<dyn Store>) -> Self {
        FromUncompressed {
            src,
            encoding,
            media_type,
            store,
            sealed: OnceLock::new(),
        }
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.src
    }

    fn seal(&self) -> Result<&Sealed> {
        if let Some(s) = self.sealed.get() {
            return Ok(s);
        }
        if let Some(hint) = self.src.diff_id_hint()
            && let Some(mut hit) = self.store.lookup(&hint, &self.encoding)
        {
            // Same bytes whatever the family (OCI or Docker) of the layer type that
            // sealed them first: describe the blob with this layer's type.
            hit.media_type = self.media_type.clone();
            return Ok(self.sealed.get_or_init(|| hit));
        }
        // The pass hashes the uncompressed bytes itself; the hint is checked against its
        // result rather than hashing the same bytes twice.
        let s = self
            .store
            .seal(self.src.open()?, &self.encoding, self.media_type.clone())?;
        if let Some(hint) = self.src.diff_id_hint()
            && hint != s.diff_id
        {
            return Err(Error::new(ErrorKind::DigestMismatch {
                expected: hint.0,
                actual: s.diff_id.0.clone(),
                bytes_read: 0,
            }));
        }
        Ok(self.sealed.get_or_init(|| s))
    }
}

impl<S: UncompressedSource> Layer for FromUncompressed<S> {
    fn media_type(&self) -> Result<MediaType> {
        Ok(self.media_type.clone())
    }
    fn digest(&self) -> Result<Digest> {
        Ok(self.seal()?.digest.clone())
    }
    fn diff_id(&self) -> Result<DiffId> {
        if let Some(s) = self.sealed.get() {
            return Ok(s.diff_id.clone());
        }
        match self.src.diff_id_hint() {
            Some(d) => Ok(d),
            None => Ok(self.seal()?.diff_id.clone()),
        }
    }
    fn size(&self) -> Result<u64> {
        Ok(self.seal()?.size)
    }
    fn sealed(&self) -> Result<Sealed> {
        Ok(self.seal()?.clone())
    }
    fn compressed(&self) -> Result<BoxRead> {
        let sealed = self.seal()?;
        let f = match self.store.open(sealed) {
            Ok(f) => f,
            // The store lost the blob or found it corrupt (a cache verifies on first
            // open): seal again — the encoder is deterministic, so the digest is the same.
            Err(e) if e.is_not_found() || e.is_integrity() => {
                let again =
                    self.store
                        .seal(self.src.open()?, &self.encoding, self.media_type.clone())?;
                if again.digest != sealed.digest {
                    return Err(Error::new(ErrorKind::DigestMismatch {
                        expected: sealed.digest.clone(),
                        actual: again.digest,
                        bytes_read: 0,
                    }));
                }
                self.store.open(&again)?
            }
            Err(e) => return Err(e),
        };
        // Not hashed again: the store hashed these bytes when sealing them, or verified
        // them on this first open (see `Store::open`); sinks that need proof of bytes
        // from elsewhere (a layout writer, a registry) check the digest themselves.
        Ok(f)
    }
    fn compressed_proven(&self) -> Result<Option<BoxRead>> {
        self.compressed().map(Some)
    }
    fn uncompressed(&self) -> Result<BoxRead> {
        let r = self.src.open()?;
        Ok(match self.src.diff_id_hint() {
            Some(d) => Box::new(VerifyingReader::new(r, d.0, None)),
            None => r,
        })
    }
}
