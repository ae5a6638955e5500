//! Registry sources: [`hoist_image::Image`] and [`hoist_image::ImageIndex`] backed by a
//! registry reference, and the resumable, verified blob download under them.
//!
//! Manifests are fetched with the manifest `Accept` list, and when asked for by digest
//! the raw bytes must hash to it. Layers are [`FromCompressed`] over a [`RemoteBlob`]:
//! their bytes stream from the registry through a bounded channel (a few chunks, never a
//! whole layer) into a synchronous reader, and [`FromCompressed`] checks size and digest
//! at EOF. A download cut in the middle is resumed with `Range: bytes=N-` from the offset
//! received.
//!
//! The trait methods are synchronous and drive the client on a runtime handle: call them
//! from a thread that is not a runtime worker (the main thread, or `spawn_blocking`).

use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hoist_image::{
    BoxRead, Child, CompressedSource, Config, Descriptor, Digest, FromCompressed, Image,
    ImageIndex, Layer, MAX_CONFIG_SIZE, Manifest,
};
use reqwest::Method;
use tokio::runtime::Handle;

use crate::client::{Body, Client, pull_scope};
use crate::error::{Error, Result};
use crate::repo::Repository;

/// Chunks buffered between a download task and its synchronous reader (each is what one
/// read of the socket gave, typically 8-64 KiB: the buffer stays well under 1 MiB).
const CHANNEL_CHUNKS: usize = 16;

/// Download a blob, resuming with `Range` after a temporary failure in the middle (up to
/// the client's retry count). With `verify`, size and digest are checked at the end and
/// a mismatch is an error (the caller must then discard what `sink` got). Returns the
/// byte count.
pub async fn download<F, Fut>(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    size: Option<u64>,
    verify: bool,
    mut sink: F,
) -> Result<u64>
where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let url = client.url(repo, &format!("blobs/{digest}"))?;
    let policy = client.retry_policy();
    let mut hasher = verify.then(|| digest.algorithm().hasher());
    let mut got = 0u64;
    let mut resumes = 0u32;
    let size_error = |expected, actual| -> Error {
        hoist_image::Error::new(hoist_image::ErrorKind::SizeMismatch {
            what: format!("blob {digest}"),
            expected,
            actual,
        })
        .into()
    };
    loop {
        let headers = if got > 0 {
            vec![("range", format!("bytes={got}-"))]
        } else {
            Vec::new()
        };
        let sent = client
            .send(
                repo,
                &pull_scope(repo),
                Method::GET,
                url.clone(),
                &headers,
                Body::Empty,
            )
            .await;
        // A failure to even start a resumed request is worth another try too.
        let r = match sent {
            Ok(r) => r.expect(&[200, 206]).await,
            Err(e) => Err(e),
        };
        let mut r = match r {
            Ok(r) => r,
            Err(e) if got > 0 && e.is_temporary() && resumes < policy.retries => {
                tracing::debug!(%digest, error = %e, "resume request failed; retrying");
                tokio::time::sleep(policy.delay(resumes, None)).await;
                resumes += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut skip = 0u64;
        if got > 0 {
            if r.status() == 206 {
                let start = r
                    .header("content-range")
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(got) {
                    return Err(Error::invalid_response(
                        r.what(),
                        format!("asked for bytes from {got}, got Content-Range {start:?}"),
                    ));
                }
            } else {
                // The registry ignored Range: skip what we have.
                skip = got;
            }
        }
        let outcome: Result<()> = loop {
            match r.chunk().await {
                Ok(Some(mut c)) => {
                    if skip > 0 {
                        let k = (skip as usize).min(c.len());
                        c = c.slice(k..);
                        skip -= k as u64;
                        if c.is_empty() {
                            continue;
                        }
                    }
                    got += c.len() as u64;
                    if let Some(s) = size
                        && got > s
                    {
                        return Err(size_error(s, got));
                    }
                    if let Some(h) = hasher.as_mut() {
                        h.update(&c);
                    }
                    sink(c).await?;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let short = size.is_some_and(|s| got < s);
        match outcome {
            Ok(()) if !short => break,
            Ok(()) if resumes < policy.retries => {
                tracing::debug!(%digest, got, "body ended early; resuming");
            }
            Ok(()) => return Err(size_error(size.unwrap_or(0), got)),
            Err(e) if e.is_temporary() && resumes < policy.retries => {
                tracing::debug!(%digest, got, error = %e, "download cut; resuming with Range");
            }
            Err(e) => return Err(e),
        }
        client
            .counters()
            .downloads_resumed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(policy.delay(resumes, None)).await;
        resumes += 1;
    }
    if let Some(h) = hasher {
        let actual = h.finish();
        if &actual != digest {
            return Err(
                hoist_image::Error::new(hoist_image::ErrorKind::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                    bytes_read: got,
                })
                .into(),
            );
        }
    }
    Ok(got)
}

/// Where a registry source lives: a client, a repository, and the runtime that drives
/// the client for the synchronous trait methods.
#[derive(Debug, Clone)]
pub struct Remote {
    client: Client,
    repo: Repository,
    rt: Handle,
}

impl Remote {
    /// A source in `repo`, driven on `rt`.
    pub fn new(client: Client, repo: Repository, rt: Handle) -> Arc<Remote> {
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

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
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

    /// Read a small blob (a config) whole, verified, refusing more than `cap` bytes.
    pub async fn read_blob(&self, d: &Descriptor, cap: u64) -> Result<Bytes> {
        if d.size > cap {
            return Err(Error::invalid_response(
                format!("blob {}", d.digest),
                format!("{} bytes is over the {cap} byte limit", d.size),
            ));
        }
        let mut buf = Vec::with_capacity(d.size as usize);
        download(
            &self.client,
            &self.repo,
            &d.digest,
            Some(d.size),
            true,
            |c| {
                buf.extend_from_slice(&c);
                std::future::ready(Ok(()))
            },
        )
        .await?;
        Ok(buf.into())
    }

    /// Stream a blob into a synchronous reader through a bounded channel (not verified
    /// here: wrap it in a [`hoist_image::VerifyingReader`], as [`FromCompressed`] does).
    pub fn open_blob(&self, d: &Descriptor) -> BoxRead {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
        let (client, repo, digest, size) = (
            self.client.clone(),
            self.repo.clone(),
            d.digest.clone(),
            d.size,
        );
        let task = self.rt.spawn(async move {
            let tx2 = tx.clone();
            let r = download(&client, &repo, &digest, Some(size), false, move |c| {
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
        Box::new(ChannelReader {
            rx,
            cur: Bytes::new(),
            task,
        })
    }
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
        Ok(self.remote.open_blob(&self.descriptor))
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
        let raw = self
            .remote
            .block_on(self.remote.read_blob(&m.config, MAX_CONFIG_SIZE as u64))
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
