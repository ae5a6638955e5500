//! Wrappers that count reads of layer bytes, for tests proving a change reads no layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hoist_image::{BoxRead, Config, DiffId, Digest, Image, Layer, Manifest, MediaType};

/// A layer that counts every read of its bytes.
#[derive(Debug)]
pub struct Counting {
    /// The wrapped layer.
    pub inner: Arc<dyn Layer>,
    /// Opens of compressed or uncompressed bytes, shared by all wrapped layers.
    pub reads: Arc<AtomicUsize>,
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
        self.inner.compressed()
    }
    fn compressed_for_upload(&self) -> hoist_image::Result<BoxRead> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.compressed_for_upload()
    }
    fn uncompressed(&self) -> hoist_image::Result<BoxRead> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.uncompressed()
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
            .map(|l| {
                Arc::new(Counting {
                    inner: l,
                    reads: self.reads.clone(),
                }) as Arc<dyn Layer>
            })
            .collect())
    }
}
