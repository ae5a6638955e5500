//! Wrappers that count reads of layer bytes, for tests proving a change reads no layer
//! (or reads each layer once), and a store that counts compressions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hoist_image::pipeline::Encoding;
use hoist_image::{
    BoxRead, Config, DiffId, Digest, Image, Layer, Manifest, MediaType, Sealed, SpoolStore, Store,
};

/// A layer that counts every read of its bytes: all of them in `reads` (which several
/// layers may share), and this layer's by form in `compressed` and `uncompressed`.
#[derive(Debug)]
pub struct Counting {
    /// The wrapped layer.
    pub inner: Arc<dyn Layer>,
    /// Opens of compressed or uncompressed bytes, shared by all wrapped layers.
    pub reads: Arc<AtomicUsize>,
    /// Opens of this layer's compressed bytes (for an upload, too).
    pub compressed: AtomicUsize,
    /// Opens of this layer's uncompressed bytes.
    pub uncompressed: AtomicUsize,
}

impl Counting {
    /// Wraps `inner`, adding its reads to `reads`.
    pub fn new(inner: Arc<dyn Layer>, reads: Arc<AtomicUsize>) -> Counting {
        Counting {
            inner,
            reads,
            compressed: AtomicUsize::new(0),
            uncompressed: AtomicUsize::new(0),
        }
    }
}

impl Layer for Counting {
    fn media_type(&self) -> hoist_image::Result<MediaType> {
        self.inner.media_type()
    }
    fn digest(&self) -> hoist_image::Result<Digest> {
        self.inner.digest()
    }
    fn diff_id(&self) -> hoist_image::Result<DiffId> {
        self.inner.diff_id()
    }
    fn size(&self) -> hoist_image::Result<u64> {
        self.inner.size()
    }
    fn compressed(&self) -> hoist_image::Result<BoxRead> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.compressed.fetch_add(1, Ordering::SeqCst);
        self.inner.compressed()
    }
    fn compressed_for_upload(&self) -> hoist_image::Result<BoxRead> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.compressed.fetch_add(1, Ordering::SeqCst);
        self.inner.compressed_for_upload()
    }
    fn compressed_proven(&self) -> hoist_image::Result<Option<BoxRead>> {
        let r = self.inner.compressed_proven()?;
        if r.is_some() {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.compressed.fetch_add(1, Ordering::SeqCst);
        }
        Ok(r)
    }
    fn uncompressed(&self) -> hoist_image::Result<BoxRead> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.uncompressed.fetch_add(1, Ordering::SeqCst);
        self.inner.uncompressed()
    }
    fn origin(&self) -> Option<hoist_image::Reference> {
        self.inner.origin()
    }
}

/// An image whose layers are [`Counting`] wrappers sharing one counter.
#[derive(Debug)]
pub struct CountingImage {
    /// The wrapped image.
    pub inner: Arc<dyn Image>,
    /// Opens of compressed or uncompressed bytes, shared by all wrapped layers.
    pub reads: Arc<AtomicUsize>,
}

impl Image for CountingImage {
    fn manifest(&self) -> hoist_image::Result<Manifest> {
        self.inner.manifest()
    }
    fn config(&self) -> hoist_image::Result<Config> {
        self.inner.config()
    }
    fn layers(&self) -> hoist_image::Result<Vec<Arc<dyn Layer>>> {
        Ok(self
            .inner
            .layers()?
            .into_iter()
            .map(|l| Arc::new(Counting::new(l, self.reads.clone())) as Arc<dyn Layer>)
            .collect())
    }
}

/// A fresh [`SpoolStore`] that counts the layers it seals (compresses).
#[derive(Debug)]
pub struct CountingStore {
    inner: SpoolStore,
    seals: AtomicU64,
}

impl CountingStore {
    /// Over a new spool store.
    pub fn new() -> CountingStore {
        CountingStore {
            inner: SpoolStore::new().expect("spool store"),
            seals: AtomicU64::new(0),
        }
    }

    /// Layers sealed so far.
    pub fn seals(&self) -> u64 {
        self.seals.load(Ordering::SeqCst)
    }
}

impl Default for CountingStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Store for CountingStore {
    fn lookup(&self, d: &DiffId, e: &Encoding) -> Option<Sealed> {
        self.inner.lookup(d, e)
    }
    fn seal(&self, src: BoxRead, e: &Encoding, mt: MediaType) -> hoist_image::Result<Sealed> {
        self.seals.fetch_add(1, Ordering::SeqCst);
        self.inner.seal(src, e, mt)
    }
    fn open(&self, sealed: &Sealed) -> hoist_image::Result<BoxRead> {
        self.inner.open(sealed)
    }
}
