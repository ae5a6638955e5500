//! Check what a registry serves: the manifest (and every child of an index), the config,
//! and every layer — each blob's digest and size recomputed as it streams, each layer
//! decompressed to recompute its diff_id against the config's `rootfs.diff_ids`.

use std::io::Read;

use bytes::Bytes;
use hoist_image::{Config, DiffId, Digest, HashingReader, Manifest, Parsed, pipeline};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::repo::Repository;

/// What [`check`] verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The top manifest's digest.
    pub digest: Option<Digest>,
    /// Image manifests checked.
    pub images: u64,
    /// Layers checked (digest, size and diff_id).
    pub layers: u64,
    /// Compressed bytes read.
    pub bytes: u64,
}

/// Fetch `reference` (a tag or a digest) from `repo` and verify everything it refers to.
pub async fn check(client: &Client, repo: &Repository, reference: &str) -> Result<CheckReport> {
    let m = client.get_manifest(repo, reference).await?;
    let mut report = CheckReport {
        digest: Some(m.digest().clone()),
        ..Default::default()
    };
    let mut stack = vec![m];
    while let Some(m) = stack.pop() {
        match m.parsed() {
            Parsed::Index(ix) => {
                for d in &ix.manifests {
                    let child = client.get_manifest(repo, &d.digest.to_string()).await?;
                    if child.raw().len() as u64 != d.size {
                        return Err(size_error(&d.digest, d.size, child.raw().len() as u64));
                    }
                    stack.push(child);
                }
            }
            Parsed::Image(im) => {
                check_image(client, repo, &m, im, &mut report).await?;
                report.images += 1;
            }
        }
    }
    Ok(report)
}

async fn check_image(
    client: &Client,
    repo: &Repository,
    m: &Manifest,
    im: &hoist_image::ImageManifest,
    report: &mut CheckReport,
) -> Result<()> {
    let mut raw = Vec::new();
    let cd = &im.config;
    report.bytes += client
        .fetch_blob(repo, &cd.digest, Some(cd.size), |c| {
            if raw.len() + c.len() > hoist_image::MAX_CONFIG_SIZE {
                return Err(Error::invalid_response("config", "over the size limit"));
            }
            raw.extend_from_slice(c);
            Ok(())
        })
        .await?;
    let config = Config::from_raw(Bytes::from(raw))?;
    let diff_ids = &config.parsed().rootfs.diff_ids;
    if diff_ids.len() != im.layers.len() {
        return Err(hoist_image::Error::invalid_manifest(
            format!("image {}", m.digest()),
            format!(
                "{} layers but {} diff_ids in the config",
                im.layers.len(),
                diff_ids.len()
            ),
        )
        .into());
    }
    for (l, want) in im.layers.iter().zip(diff_ids) {
        let Some(compression) = l.media_type.layer_compression() else {
            return Err(hoist_image::Error::invalid_manifest(
                format!("image {}", m.digest()),
                format!("layer media type {} is not a layer type", l.media_type),
            )
            .into());
        };
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let hasher = tokio::task::spawn_blocking(move || -> hoist_image::Result<DiffId> {
            let r = ChannelReader {
                rx,
                buf: Bytes::new(),
            };
            let dec = pipeline::decoder(compression, Box::new(r))?;
            let mut h = HashingReader::new(dec);
            std::io::copy(&mut h, &mut std::io::sink())
                .map_err(|e| hoist_image::Error::from_io("layer", e))?;
            Ok(DiffId(h.finish().1))
        });
        let n = client
            .fetch_blob_with(repo, &l.digest, Some(l.size), |c| {
                let tx = tx.clone();
                async move {
                    tx.send(c).await.map_err(|_| {
                        Error::invalid_response("layer check", "decoder stopped early")
                    })
                }
            })
            .await;
        drop(tx);
        let n = n?;
        let got = hasher
            .await
            .map_err(|e| Error::io("layer check", std::io::Error::other(e.to_string())))??;
        if &got != want {
            return Err(
                hoist_image::Error::new(hoist_image::ErrorKind::DigestMismatch {
                    expected: want.0.clone(),
                    actual: got.0,
                    bytes_read: n,
                })
                .into(),
            );
        }
        report.layers += 1;
        report.bytes += n;
    }
    Ok(())
}

fn size_error(d: &Digest, expected: u64, actual: u64) -> Error {
    hoist_image::Error::new(hoist_image::ErrorKind::SizeMismatch {
        what: d.to_string(),
        expected,
        actual,
    })
    .into()
}

struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    buf: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.buf = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}
