//! Progress of local writes: an image or index whose layers tell the context's progress
//! sink ([`Progress::local_started`] and the rest) how far their bytes have been read by
//! a sink (a layout, an oci-archive, a docker-save tarball). Nothing else changes: the
//! wrapped layers give the same facts and the same bytes.
//!
//! A layer read compressed reports its blob's digest and size. One read uncompressed (a
//! docker-save tarball's) reports its diff_id, with no size known in advance, except a
//! registry layer: it is decompressed here from its counted download, so the download's
//! size is the total.

use std::io::Read;
use std::sync::Arc;

use hoist_image::BoxRead;
use hoist_image::{Child, Config, DiffId, Digest, Image, ImageIndex, Layer, Manifest, MediaType};
use hoist_remote::push::Progress;

use crate::context::Context;

/// `child` with its layers reporting to `ctx`'s progress as they are read, as written to
/// `dst`.
pub(crate) fn child(child: Child, ctx: &Context, dst: &dyn std::fmt::Display) -> Child {
    let w = Watch {
        sink: ctx.progress(),
        dst: dst.to_string(),
    };
    w.child(child)
}

/// `image` with its layers reporting as they are read, as written to `dst`.
pub(crate) fn image(
    image: Arc<dyn Image>,
    ctx: &Context,
    dst: &dyn std::fmt::Display,
) -> Arc<dyn Image> {
    let w = Watch {
        sink: ctx.progress(),
        dst: dst.to_string(),
    };
    Arc::new(WatchedImage { inner: image, w })
}

#[derive(Clone)]
struct Watch {
    sink: Arc<dyn Progress>,
    dst: String,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Watch({})", self.dst)
    }
}

impl Watch {
    fn child(&self, c: Child) -> Child {
        match c {
            Child::Image(i) => Child::Image(Arc::new(WatchedImage {
                inner: i,
                w: self.clone(),
            })),
            Child::Index(i) => Child::Index(Arc::new(WatchedIndex {
                inner: i,
                w: self.clone(),
            })),
        }
    }
}

#[derive(Debug)]
struct WatchedImage {
    inner: Arc<dyn Image>,
    w: Watch,
}

impl Image for WatchedImage {
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
                Arc::new(WatchedLayer {
                    inner: l,
                    w: self.w.clone(),
                }) as Arc<dyn Layer>
            })
            .collect())
    }
}

#[derive(Debug)]
struct WatchedIndex {
    inner: Arc<dyn ImageIndex>,
    w: Watch,
}

impl ImageIndex for WatchedIndex {
    fn manifest(&self) -> hoist_image::Result<Manifest> {
        self.inner.manifest()
    }
    fn child(&self, d: &hoist_image::Descriptor) -> hoist_image::Result<Child> {
        Ok(self.w.child(self.inner.child(d)?))
    }
}

#[derive(Debug)]
struct WatchedLayer {
    inner: Arc<dyn Layer>,
    w: Watch,
}

impl WatchedLayer {
    fn counted(&self, r: BoxRead, digest: Digest, size: Option<u64>) -> BoxRead {
        Box::new(Counting {
            inner: r,
            w: self.w.clone(),
            digest,
            size,
            done: 0,
            state: State::New,
        })
    }
}

impl Layer for WatchedLayer {
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
        let r = self.inner.compressed()?;
        Ok(self.counted(r, self.inner.digest()?, Some(self.inner.size()?)))
    }
    fn compressed_for_upload(&self) -> hoist_image::Result<BoxRead> {
        let r = self.inner.compressed_for_upload()?;
        Ok(self.counted(r, self.inner.digest()?, Some(self.inner.size()?)))
    }
    fn compressed_proven(&self) -> hoist_image::Result<Option<BoxRead>> {
        match self.inner.compressed_proven()? {
            Some(r) => Ok(Some(self.counted(
                r,
                self.inner.digest()?,
                Some(self.inner.size()?),
            ))),
            None => Ok(None),
        }
    }
    fn uncompressed(&self) -> hoist_image::Result<BoxRead> {
        // A registry layer: count its download (whose size is known), decompress here.
        if self.inner.origin().is_some()
            && let Some(c) = self.inner.media_type()?.layer_compression()
        {
            return hoist_image::pipeline::decoder(c, self.compressed()?);
        }
        let r = self.inner.uncompressed()?;
        Ok(self.counted(r, self.inner.diff_id()?.digest().clone(), None))
    }
    fn origin(&self) -> Option<hoist_image::Reference> {
        self.inner.origin()
    }
    fn sealed(&self) -> hoist_image::Result<hoist_image::Sealed> {
        self.inner.sealed()
    }
    fn descriptor(&self) -> hoist_image::Result<hoist_image::Descriptor> {
        self.inner.descriptor()
    }
}

#[derive(PartialEq)]
enum State {
    New,
    Reading,
    Done,
}

/// A reader that reports its progress.
struct Counting {
    inner: BoxRead,
    w: Watch,
    digest: Digest,
    size: Option<u64>,
    done: u64,
    state: State,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.state == State::New {
            self.state = State::Reading;
            self.w
                .sink
                .local_started(&self.w.dst, &self.digest, self.size);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if self.state == State::Reading {
                self.state = State::Done;
                self.w.sink.local_done(&self.w.dst, &self.digest, self.done);
            }
        } else {
            self.done += n as u64;
            self.w
                .sink
                .local_progress(&self.w.dst, &self.digest, self.done);
        }
        Ok(n)
    }
}
