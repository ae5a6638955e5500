//! Registry sources: [`hoist_image::Image`] and [`hoist_image::ImageIndex`] backed by a
//! registry reference, and [`validate`], hoist-image's oracle run on what a registry serves.
//!
//! Manifests are fetched with the manifest `Accept` list, and when asked for by digest
//! the raw bytes must hash to it. Layers are [`FromCompressed`] over a [`RemoteBlob`]:
//! their bytes stream from the registry ([`Client::download`]: resumed with `Range` when
//! cut) through a bounded channel (a few chunks, never a whole layer) into a synchronous
//! reader, and [`FromCompressed`] checks size and digest at EOF.
//!
//! The trait methods are synchronous and drive the client on a [`Runtime`] (a runtime of
//! the source's own, or the caller's), from any thread. Reading a layer blocks the
//! calling thread: read layers outside async tasks (a plain thread or `spawn_blocking`).

use std::future::Future;
use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hoist_image::{
    BoxRead, Child, CompressedSource, Config, Descriptor, FromCompressed, Image, ImageIndex, Layer,
    MAX_CONFIG_SIZE, Manifest,
};

use crate::blobs::Verify;
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::runtime::Runtime;
use crate::transport::Client;

/// Chunks buffered between a download task and its synchronous reader (each is what one
/// read of the socket gave, typically 8-64 KiB: the buffer stays well under 1 MiB).
const CHANNEL_CHUNKS: usize = 16;

/// Where a registry source lives: a client, a repository, and the runtime that drives
/// the client for the synchronous trait methods (kept alive as long as the source).
#[derive(Debug, Clone)]
pub struct Remote {
    client: Client,
    repo: Repository,
    rt: Runtime,
}

impl Remote {
    /// A source in `repo`, driven on `rt`.
    pub fn new(client: Client, repo: Repository, rt: Runtime) -> Arc<Remote> {
        Arc::new(Remote { client, repo, rt })
    }

    /// The repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    fn block_on<T: Send>(&self, f: impl Future<Output = Result<T>> + Send) -> Result<T> {
        self.rt.block_on(f)?
    }

    /// Fetch the manifest at `reference` (tag or digest) and open it as an image or an
    /// index. Blocking: see the module docs.
    pub fn open(self: &Arc<Self>, reference: &str) -> Result<Child> {
        let m = self.block_on(self.client.get_manifest(&self.repo, reference))?;
        Ok(self.child_of(m))
    }

    /// An image or index over a manifest already fetched.
    pub fn child_of(self: &Arc<Self>, m: Manifest) -> Child {
        if m.as_index().is_some() {
            Child::Index(Arc::new(RemoteIndex {
                remote: self.clone(),
                manifest: m,
            }))
        } else {
            Child::Image(Arc::new(RemoteImage {
                remote: self.clone(),
                manifest: m,
                config: OnceLock::new(),
            }))
        }
    }

    /// Stream a blob into a synchronous reader through a bounded channel (its size
    /// checked, its digest not: wrap it in a [`hoist_image::VerifyingReader`], as
    /// [`FromCompressed`] does).
    pub fn open_blob(&self, d: &Descriptor) -> Result<BoxRead> {
        self.open_blob_at(d, 0, Verify::SizeOnly)
    }

    /// [`Remote::open_blob`] from byte `offset` on (a `Range` request), checked as
    /// `verify` says ([`Verify::Digest`] only from 0).
    pub(crate) fn open_blob_at(
        &self,
        d: &Descriptor,
        offset: u64,
        verify: Verify,
    ) -> Result<BoxRead> {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
        let (client, repo, digest, size) = (
            self.client.clone(),
            self.repo.clone(),
            d.digest.clone(),
            d.size,
        );
        let verify = if offset == 0 {
            verify
        } else {
            Verify::SizeOnly
        };
        let task = self.rt.handle()?.spawn(async move {
            let tx2 = tx.clone();
            let r = client
                .download_from(&repo, &digest, Some(size), verify, offset, move |c| {
                    let tx = tx2.clone();
                    async move {
                        tx.send(Ok(c))
                            .await
                            .map_err(|_| Error::io("blob reader", io::ErrorKind::BrokenPipe.into()))
                    }
                })
                .await;
            if let Err(e) = r {
                let _ = tx.send(Err(io::Error::other(e))).await;
            }
        });
        Ok(Box::new(ChannelReader {
            rx,
            cur: Bytes::new(),
            task,
        }))
    }
}

/// Check what a registry serves at `repo:reference` with the one oracle,
/// [`hoist_image::validate`]: the manifest (and every child of an index), the config,
/// and unless `opts.fast` every layer's digest, size and diff_id, each blob read once.
/// The report's `digest` is the manifest's. Must be called from a runtime.
pub async fn validate(
    client: &Client,
    repo: &Repository,
    reference: &str,
    opts: hoist_image::validate::Options,
) -> Result<hoist_image::validate::Report> {
    let m = client.get_manifest(repo, reference).await?;
    let remote = Remote::new(
        client.clone(),
        repo.clone(),
        Runtime::from_handle(tokio::runtime::Handle::current()),
    );
    let child = remote.child_of(m);
    let report = tokio::task::spawn_blocking(move || match child {
        Child::Image(i) => hoist_image::validate::image(i.as_ref(), opts),
        Child::Index(i) => hoist_image::validate::index(i.as_ref(), opts),
    })
    .await
    .map_err(|e| Error::io("validate task", io::Error::other(e.to_string())))??;
    Ok(report)
}

/// The synchronous end of a blob download.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
    task: tokio::task::JoinHandle<()>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

impl Drop for ChannelReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A blob in a registry: the core of a registry layer.
#[derive(Debug)]
pub struct RemoteBlob {
    remote: Arc<Remote>,
    descriptor: Descriptor,
}

impl CompressedSource for RemoteBlob {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
    fn open(&self) -> hoist_image::Result<BoxRead> {
        self.remote.open_blob(&self.descriptor).map_err(image_error)
    }
    fn origin(&self) -> Option<hoist_image::Reference> {
        Some(self.remote.repo.reference())
    }
}

/// An image in a registry.
#[derive(Debug)]
pub struct RemoteImage {
    remote: Arc<Remote>,
    manifest: Manifest,
    config: OnceLock<Config>,
}

impl RemoteImage {
    /// The remote it lives in.
    pub fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }
}

fn image_error(e: Error) -> hoist_image::Error {
    match e.into_image() {
        Ok(i) => i,
        Err(e) if e.is_not_found() => hoist_image::Error::not_found(e),
        Err(e) => hoist_image::Error::from_io("registry", io::Error::other(e.to_string())),
    }
}

impl Image for RemoteImage {
    fn manifest(&self) -> hoist_image::Result<Manifest> {
        Ok(self.manifest.clone())
    }

    fn config(&self) -> hoist_image::Result<Config> {
        if let Some(c) = self.config.get() {
            return Ok(c.clone());
        }
        let m = self.manifest.as_image().ok_or_else(|| {
            hoist_image::Error::invalid_manifest(
                format!("manifest {}", self.manifest.digest()),
                "expected an image manifest, found an index",
            )
        })?;
        let (client, repo) = (&self.remote.client, &self.remote.repo);
        let raw = self
            .remote
            .block_on(client.read_blob(
                repo,
                &m.config.digest,
                m.config.size,
                MAX_CONFIG_SIZE as u64,
            ))
            .map_err(image_error)?;
        let c = Config::from_raw(raw)?;
        Ok(self.config.get_or_init(|| c).clone())
    }

    fn layers(&self) -> hoist_image::Result<Vec<Arc<dyn Layer>>> {
        let m = self.manifest.as_image().ok_or_else(|| {
            hoist_image::Error::invalid_manifest(
                format!("manifest {}", self.manifest.digest()),
                "expected an image manifest, found an index",
            )
        })?;
        let config = self.config()?;
        let diff_ids = &config.parsed().rootfs.diff_ids;
        let hints = diff_ids.len() == m.layers.len();
        Ok(m.layers
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let blob = RemoteBlob {
                    remote: self.remote.clone(),
                    descriptor: d.clone(),
                };
                let hint = hints.then(|| diff_ids[i].clone());
                Arc::new(FromCompressed::new(blob, hint)) as Arc<dyn Layer>
            })
            .collect())
    }
}

/// An index in a registry.
#[derive(Debug)]
pub struct RemoteIndex {
    remote: Arc<Remote>,
    manifest: Manifest,
}

impl ImageIndex for RemoteIndex {
    fn manifest(&self) -> hoist_image::Result<Manifest> {
        Ok(self.manifest.clone())
    }

    fn child(&self, d: &Descriptor) -> hoist_image::Result<Child> {
        let m = self
            .remote
            .block_on(
                self.remote
                    .client
                    .get_manifest(&self.remote.repo, &d.digest.to_string()),
            )
            .map_err(image_error)?;
        Ok(self.remote.child_of(m))
    }
}
