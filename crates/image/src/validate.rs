//! The oracle: recompute and check every digest, size and diff_id of an image or index,
//! from any source. Every source and sink test ends with it.
//!
//! For an image: the manifest parses and its digest is of its raw bytes; the config's
//! digest and size match the manifest's config descriptor; there are as many layers as
//! `rootfs.diff_ids`; each layer's digest, size and media type match its descriptor; and
//! (unless `fast`) each layer's compressed bytes are read once, hashed and counted, and
//! decompressed on the fly to check the diff_id. Blobs in `layers` whose media type is not
//! a layer type (attestations, artifacts) are taken as stored uncompressed.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use crate::digest::{Digest, Hasher, HashingReader};
use crate::error::{Error, ErrorKind, Result};
use crate::image::{Child, Image, ImageIndex};
use crate::layer::Layer;
use crate::manifest::{Descriptor, Manifest};
use crate::pipeline;

/// What to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Skip reading layers: check manifests, configs and the facts layers report, but do
    /// not hash layer bytes.
    pub fast: bool,
}

/// What was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The digest of the top manifest checked (the image's, or the index's).
    pub digest: Option<Digest>,
    /// Indexes checked (nested ones included).
    pub indexes: usize,
    /// Image manifests checked.
    pub images: usize,
    /// Layers checked (hashed unless `fast`).
    pub layers: usize,
    /// Compressed layer bytes hashed.
    pub bytes: u64,
    /// Uncompressed layer bytes hashed.
    pub uncompressed_bytes: u64,
}

impl Report {
    fn add(&mut self, o: &Report) {
        self.indexes += o.indexes;
        self.images += o.images;
        self.layers += o.layers;
        self.bytes += o.bytes;
        self.uncompressed_bytes += o.uncompressed_bytes;
    }
}

/// Turn a digest mismatch against a layer's diff_id (as raised by a verifying reader or a
/// sealing pass) into a [`ErrorKind::DiffIdMismatch`] naming the layer.
pub(crate) fn name_diff_id_error(e: Error, layer: &str, diff_id: &Digest) -> Error {
    match e.kind() {
        ErrorKind::DigestMismatch {
            expected, actual, ..
        } if expected == diff_id => Error::new(ErrorKind::DiffIdMismatch {
            layer: layer.to_string(),
            expected: expected.clone(),
            actual: actual.clone(),
        }),
        _ => e,
    }
}

/// [`name_diff_id_error`] for an error raised while the whole image was being sealed
/// (asking for its manifest): the layer is found by its diff_id in the config.
pub(crate) fn name_by_config(e: Error, config: &crate::manifest::Config) -> Error {
    let index = match e.kind() {
        ErrorKind::DigestMismatch { expected, .. } => config
            .parsed()
            .rootfs
            .diff_ids
            .iter()
            .position(|d| d.digest() == expected),
        _ => None,
    };
    match index {
        Some(i) => {
            let diff_id = config.parsed().rootfs.diff_ids[i].digest().clone();
            name_diff_id_error(e, &format!("layer {i}"), &diff_id)
        }
        None => e,
    }
}

fn mismatch(what: String, expected: u64, actual: u64) -> Error {
    Error::new(ErrorKind::SizeMismatch {
        what,
        expected,
        actual,
    })
}

fn check_manifest_digest(m: &Manifest, expected: Option<&Descriptor>) -> Result<()> {
    let actual = Digest::sha256(m.raw());
    if &actual != m.digest() {
        return Err(Error::new(ErrorKind::DigestMismatch {
            expected: m.digest().clone(),
            actual,
            bytes_read: m.raw().len() as u64,
        }));
    }
    if let Some(d) = expected {
        if d.digest != actual {
            return Err(Error::new(ErrorKind::DigestMismatch {
                expected: d.digest.clone(),
                actual,
                bytes_read: m.raw().len() as u64,
            }));
        }
        if d.size != m.raw().len() as u64 {
            return Err(mismatch(
                format!("manifest {}", d.digest),
                d.size,
                m.raw().len() as u64,
            ));
        }
    }
    Ok(())
}

/// Check an image.
pub fn image(image: &dyn Image, opts: Options) -> Result<Report> {
    image_with(image, None, opts)
}

fn image_with(image: &dyn Image, expected: Option<&Descriptor>, opts: Options) -> Result<Report> {
    let manifest = match image.manifest() {
        Ok(m) => m,
        Err(e) => {
            return Err(match image.config() {
                Ok(c) => name_by_config(e, &c),
                Err(_) => e,
            });
        }
    };
    check_manifest_digest(&manifest, expected)?;
    let mdigest = manifest.digest().clone();
    let m = manifest.as_image().ok_or_else(|| {
        Error::invalid_manifest(
            format!("manifest {mdigest}"),
            "expected an image manifest, found an index",
        )
    })?;
    let config = image.config()?;
    let actual = Digest::sha256(config.raw());
    if actual != m.config.digest {
        return Err(Error::new(ErrorKind::DigestMismatch {
            expected: m.config.digest.clone(),
            actual,
            bytes_read: config.raw().len() as u64,
        }));
    }
    if config.raw().len() as u64 != m.config.size {
        return Err(mismatch(
            format!("config {}", m.config.digest),
            m.config.size,
            config.raw().len() as u64,
        ));
    }
    let diff_ids = &config.parsed().rootfs.diff_ids;
    let layers = image.layers()?;
    if layers.len() != m.layers.len() || diff_ids.len() != m.layers.len() {
        return Err(Error::invalid_manifest(
            format!("image {mdigest}"),
            format!(
                "manifest lists {} layers, config rootfs.diff_ids {}, the source has {}",
                m.layers.len(),
                diff_ids.len(),
                layers.len()
            ),
        ));
    }
    let mut report = Report {
        digest: Some(mdigest.clone()),
        images: 1,
        ..Default::default()
    };
    for (i, ((layer, d), diff_id)) in layers.iter().zip(&m.layers).zip(diff_ids).enumerate() {
        let what = format!("layer {i} ({})", d.digest);
        let name_err = |e: Error| match e.kind() {
            ErrorKind::DigestMismatch { .. } => name_diff_id_error(e, &what, diff_id.digest()),
            ErrorKind::SizeMismatch { .. } | ErrorKind::DiffIdMismatch { .. } => e,
            _ => Error::invalid_input(&what, e),
        };
        let got = layer.digest().map_err(name_err)?;
        if got != d.digest {
            return Err(Error::new(ErrorKind::DigestMismatch {
                expected: d.digest.clone(),
                actual: got,
                bytes_read: 0,
            }));
        }
        let size = layer.size().map_err(name_err)?;
        if size != d.size {
            return Err(mismatch(what, d.size, size));
        }
        let mt = layer.media_type().map_err(name_err)?;
        if mt != d.media_type {
            return Err(Error::invalid_manifest(
                format!("image {mdigest}"),
                format!(
                    "{what} has media type {mt}, the manifest says {}",
                    d.media_type
                ),
            ));
        }
        if !opts.fast {
            let (bytes, ubytes) = check_layer_bytes(layer.as_ref(), d, diff_id.digest(), &what)?;
            report.bytes += bytes;
            report.uncompressed_bytes += ubytes;
        }
        report.layers += 1;
    }
    Ok(report)
}

/// Read the compressed bytes once: hash and count them, and hash what they decompress to.
fn check_layer_bytes(
    layer: &dyn Layer,
    d: &Descriptor,
    diff_id: &Digest,
    what: &str,
) -> Result<(u64, u64)> {
    // Blobs of other types in `layers` (in-toto attestations, artifacts) are stored as is:
    // their diff_id is the digest of the bytes themselves.
    let compression = d
        .media_type
        .layer_compression()
        .unwrap_or(crate::media_type::Compression::None);
    let outer = Arc::new(Mutex::new((d.digest.algorithm().hasher(), 0u64)));
    let tee = Tee {
        inner: layer.compressed()?,
        state: outer.clone(),
    };
    let mut decoded = HashingReader::with_algorithm(
        pipeline::decoder(compression, Box::new(tee))?,
        diff_id.algorithm(),
    );
    if let Err(e) = io::copy(&mut decoded, &mut io::sink()) {
        let e = Error::from_io(what, e);
        if e.is_integrity() {
            return Err(e);
        }
        // A decoder error on a corrupted blob: report the digest mismatch of the blob, the
        // root cause, when there is one (reading it again, on this error path only).
        let mut again = layer.compressed()?;
        if let Err(e2) = io::copy(&mut again, &mut io::sink()) {
            let e2 = Error::from_io(what, e2);
            if e2.is_integrity() {
                return Err(e2);
            }
        }
        return Err(e);
    }
    // The decoders read their input to EOF (multi-member gzip, multi-frame zstd), so the
    // tee has seen the whole blob.
    let (decoder, actual_diff_id, ubytes) = decoded.finish();
    drop(decoder);
    let (hasher, bytes) = std::mem::replace(
        &mut *outer.lock().expect("not poisoned"),
        (Hasher::sha256(), 0),
    );
    let actual = hasher.finish();
    if actual != d.digest {
        return Err(Error::new(ErrorKind::DigestMismatch {
            expected: d.digest.clone(),
            actual,
            bytes_read: bytes,
        }));
    }
    if bytes != d.size {
        return Err(mismatch(what.to_string(), d.size, bytes));
    }
    if &actual_diff_id != diff_id {
        return Err(Error::new(ErrorKind::DiffIdMismatch {
            layer: what.to_string(),
            expected: diff_id.clone(),
            actual: actual_diff_id,
        }));
    }
    Ok((bytes, ubytes))
}

/// A reader that hashes and counts what passes through into shared state.
struct Tee {
    inner: Box<dyn Read + Send>,
    state: Arc<Mutex<(Hasher, u64)>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut s = self.state.lock().expect("not poisoned");
        s.0.update(&buf[..n]);
        s.1 += n as u64;
        Ok(n)
    }
}

/// Check an index and everything below it.
pub fn index(index: &dyn ImageIndex, opts: Options) -> Result<Report> {
    index_with(index, None, opts)
}

fn index_with(
    index: &dyn ImageIndex,
    expected: Option<&Descriptor>,
    opts: Options,
) -> Result<Report> {
    let manifest = index.manifest()?;
    check_manifest_digest(&manifest, expected)?;
    let m = manifest.as_index().ok_or_else(|| {
        Error::invalid_manifest(
            format!("index {}", manifest.digest()),
            "expected an index, found an image manifest",
        )
    })?;
    let mut report = Report {
        digest: Some(manifest.digest().clone()),
        indexes: 1,
        ..Default::default()
    };
    for d in &m.manifests {
        let r = match index.child(d)? {
            Child::Image(i) => image_with(i.as_ref(), Some(d), opts)?,
            Child::Index(i) => index_with(i.as_ref(), Some(d), opts)?,
        };
        report.add(&r);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random;

    #[test]
    fn random_images_and_indexes_validate() {
        for enc in [
            crate::pipeline::Encoding::gzip(),
            crate::pipeline::Encoding::zstd(),
            crate::pipeline::Encoding::none(),
        ] {
            let opts = random::Options {
                layers: 2,
                size: 20_000,
                encoding: enc,
                ..Default::default()
            };
            let img = random::image(&opts).unwrap();
            let r = image(img.as_ref(), Options::default()).unwrap();
            assert_eq!((r.images, r.layers), (1, 2));
            assert!(r.uncompressed_bytes > 40_000);
            let fast = image(img.as_ref(), Options { fast: true }).unwrap();
            assert_eq!(fast.bytes, 0);
            let idx = random::index(&opts, 2).unwrap();
            let r = index(idx.as_ref(), Options::default()).unwrap();
            assert_eq!((r.indexes, r.images, r.layers), (1, 2, 4));
        }
    }
}
