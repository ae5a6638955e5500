//! The `stream` strategy: compress a layer straight into its uploads, no spool on disk,
//! and commit with the digest the pass returned. One pass feeds one upload per registry
//! (a tee with backpressure); other repositories of a registry mount from there. A
//! failure restarts the layer (its compressed bytes were never kept), within the retry
//! budget.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use futures_util::stream;
use hoist_image::pipeline::{self, Encoding};
use hoist_image::{Layer, MediaType, Sealed};
use reqwest::Method;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use url::Url;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::sessions::{SessionId, Sessions};
use crate::transport::{Body, Client, push_scope};
use crate::upload;

const PIECE: usize = 256 << 10;

/// A `Write` that hands 256 KiB pieces to every channel (blocking when one is full).
struct Tee {
    txs: Vec<mpsc::Sender<Bytes>>,
    buf: BytesMut,
}

impl Tee {
    fn push(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = self.buf.split().freeze();
        for tx in &self.txs {
            tx.blocking_send(piece.clone())
                .map_err(|_| std::io::Error::other("upload stopped"))?;
        }
        Ok(())
    }
}

impl Write for Tee {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= PIECE {
            self.push()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.push()
    }
}

/// Compress `layer` once into an upload to each of `repos` (one per registry). The
/// sessions of a failed attempt are cancelled before the next.
pub(crate) async fn layer(
    client: &Client,
    repos: &[Repository],
    layer: Arc<dyn Layer>,
    encoding: &Encoding,
    sessions: &Sessions,
) -> Result<Sealed> {
    let policy = client.retry_policy();
    let mut failures = 0;
    loop {
        let mut opened = Vec::new();
        let r = attempt(
            client,
            repos,
            layer.clone(),
            encoding,
            sessions,
            &mut opened,
        )
        .await;
        let e = match r {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        for id in opened {
            sessions.cancel(client, id).await;
        }
        if (e.is_temporary() || e.status() == Some(401)) && failures < policy.retries {
            tracing::debug!(error = %e, "streamed layer failed; compressing it again");
            client.counters().restarts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(policy.delay(failures, None)).await;
            failures += 1;
        } else {
            return Err(e);
        }
    }
}

/// One try: a session per repository, one compression pass teed into their PATCHes,
/// then the commits. The sessions it opens are pushed to `opened` (and closed in
/// `sessions` when committed); when it fails, its PATCHes have stopped by the time it
/// returns, and when it is aborted they stop with it.
async fn attempt(
    client: &Client,
    repos: &[Repository],
    layer: Arc<dyn Layer>,
    encoding: &Encoding,
    sessions: &Sessions,
    opened: &mut Vec<SessionId>,
) -> Result<Sealed> {
    let _busy = sessions.busy()?;
    let mut locations = Vec::new();
    for r in repos {
        // A streamed body cannot be cut in chunks: the minimum chunk length is moot.
        let (c, repo) = (client.clone(), r.clone());
        let post = async move {
            let url = upload::start(&c, &repo, &push_scope(&repo)).await?.0;
            Ok((url.clone(), Some(url)))
        };
        let (url, id) = sessions.open(r, post).await?;
        opened.push(id.expect("a started upload is recorded"));
        locations.push(url);
    }
    let mut txs = Vec::new();
    let mut patches: JoinSet<(usize, Result<Url>)> = JoinSet::new();
    for (i, (repo, loc)) in repos.iter().zip(&locations).enumerate() {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        txs.push(tx);
        let counters_client = client.clone();
        let body = stream::unfold(rx, move |mut rx| {
            let c = counters_client.clone();
            async move {
                let b = rx.recv().await?;
                c.counters()
                    .bytes_sent
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                Some((Ok::<Bytes, std::io::Error>(b), rx))
            }
        });
        let client = client.clone();
        let (repo, loc) = (repo.clone(), loc.clone());
        let busy = sessions.busy()?;
        patches.spawn(async move {
            let _busy = busy;
            let r = async {
                let r = client
                    .send(
                        &repo,
                        &push_scope(&repo),
                        Method::PATCH,
                        loc,
                        &[("content-type", "application/octet-stream".into())],
                        Body::Stream(reqwest::Body::wrap_stream(body)),
                    )
                    .await?
                    .expect(&[202])
                    .await?;
                client.resolve_location(&repo, r.what(), r.header("location"))
            };
            (i, r.await)
        });
    }
    let enc = encoding.clone();
    let sealer = tokio::task::spawn_blocking(move || -> hoist_image::Result<Sealed> {
        let mut tee = Tee {
            txs,
            buf: BytesMut::with_capacity(PIECE),
        };
        let mt = MediaType::oci_layer(enc.compression);
        let s = pipeline::seal(layer.uncompressed()?, &enc, mt, &mut tee)?;
        tee.flush()
            .map_err(|e| hoist_image::Error::from_io("layer upload", e))?;
        Ok(s)
    });
    let sealed = sealer
        .await
        .map_err(|e| Error::io("streamed layer", std::io::Error::other(e.to_string())));
    // Every PATCH ends once the pass has dropped its channels (its last piece sent).
    let mut next: Vec<Option<Result<Url>>> = repos.iter().map(|_| None).collect();
    while let Some(r) = patches.join_next().await {
        let (i, r) =
            r.map_err(|e| Error::io("streamed upload", std::io::Error::other(e.to_string())))?;
        next[i] = Some(r);
    }
    // An upload error explains a failed pass better than "upload stopped".
    let next = next
        .into_iter()
        .map(|r| r.expect("every PATCH reported"))
        .collect::<Result<Vec<_>>>()?;
    let sealed = sealed??;
    for ((repo, loc), id) in repos.iter().zip(next).zip(opened.iter()) {
        sessions.moved(*id, &loc);
        let r = client
            .send(
                repo,
                &push_scope(repo),
                Method::PUT,
                upload::with_digest(&loc, &sealed.digest),
                &[("content-length", "0".into())],
                Body::Empty,
            )
            .await;
        upload::finish(r, &sealed.digest).await?;
        sessions.closed(*id);
    }
    Ok(sealed)
}
