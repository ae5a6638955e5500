//! The one-pass layer pipeline: uncompressed `Read` → sha256 (diff_id) → encoder →
//! sha256 + count (digest, size) → sink `Write`, returning [`Sealed`]. And the matching
//! streaming decoders (gzip with every member, zstd).

use std::io::{self, Read, Write};

use std::sync::{Arc, OnceLock};

use crate::compress;
use crate::digest::{DiffId, Digest, HashingReader, HashingWriter};
use crate::error::{Error, Result};
use crate::image::{Child, Image, ImageIndex};
use crate::layer::{BoxRead, FromUncompressed, Layer, Sealed, Store, UncompressedSource};
use crate::manifest::{Descriptor, IndexManifest, Manifest};
use crate::media_type::{Compression, MediaType};
use crate::partial::Assembled;

/// How to compress a layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// The algorithm.
    pub compression: Compression,
    /// The level; `None` is the algorithm's default in hoist.
    pub level: Option<u32>,
    /// Worker threads; 0 means all cores.
    pub threads: usize,
    /// gzip only, level 1 only: ISA-L's igzip instead of libdeflate, about 1.5x faster for
    /// the same size, but its bytes depend on the CPU family (x86-64 with AVX2 gives other
    /// bytes than ARM), so digests are not the same on every machine. Opt-in; part of the
    /// cache key. Needs the `isal` cargo feature ([`crate::compress::gzip::FAST_AVAILABLE`]).
    pub fast: bool,
}

/// gzip level used when none is given, for layers kept at rest (layouts, tarballs, the
/// cache): as small as pigz -6 at about twice its speed. Chosen by measurement, see
/// [`crate::compress`].
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// gzip level the CLI uses for layers it compresses on their way to a registry (push,
/// copy to `docker://`), where the time to compress is time the user waits: hoist's
/// double-fast level 1, half pigz -1's CPU on real files for 2% fewer bytes (see
/// [`crate::compress`]).
pub const DEFAULT_PUSH_GZIP_LEVEL: u32 = 1;
/// zstd level used when none is given (the zstd CLI's default).
pub const DEFAULT_ZSTD_LEVEL: u32 = 3;
/// Layers [`descriptors`] seals at once. Compression uses every core for one layer
/// already, but each layer's pass starts and ends with fewer busy workers than cores (the
/// pipeline fills and drains); a second layer keeps the cores busy meanwhile. Memory is
/// that of two passes (zstd's multithreaded buffers: peak RSS 195 MiB copying four 50 MiB
/// incompressible layers, 110 MiB on text).
pub const SEAL_JOBS: usize = 2;

impl Encoding {
    fn with(compression: Compression) -> Self {
        Encoding {
            compression,
            level: None,
            threads: 0,
            fast: false,
        }
    }

    /// gzip at the default level on all cores.
    pub fn gzip() -> Self {
        Self::with(Compression::Gzip)
    }

    /// zstd at the default level on all cores.
    pub fn zstd() -> Self {
        Self::with(Compression::Zstd)
    }

    /// No compression.
    pub fn none() -> Self {
        Self::with(Compression::None)
    }

    /// The default encoding of a compression.
    pub fn of(compression: Compression) -> Self {
        Self::with(compression)
    }

    /// Set the level.
    pub fn level(mut self, level: u32) -> Self {
        self.level = Some(level);
        self
    }

    /// ISA-L's igzip at level 1 (see [`Encoding::fast`]).
    pub fn fast(mut self) -> Self {
        self.fast = true;
        self.level = Some(1);
        self
    }

    /// Set the worker threads (0: all cores).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// The level that will be used.
    pub fn effective_level(&self) -> u32 {
        match (self.compression, self.level) {
            (_, Some(l)) => l,
            (Compression::Gzip, None) => DEFAULT_GZIP_LEVEL,
            (Compression::Zstd, None) => DEFAULT_ZSTD_LEVEL,
            (Compression::None, None) => 0,
        }
    }

    /// Check the settings: a level in range for the algorithm.
    pub fn validate(&self) -> Result<()> {
        let level = self.effective_level();
        let range = match self.compression {
            Compression::Gzip => 0..=compress::gzip::MAX_LEVEL,
            Compression::Zstd => 1..=compress::zstd::MAX_LEVEL,
            Compression::None => 0..=0,
        };
        if self.fast && (self.compression != Compression::Gzip || level != 1) {
            return Err(Error::invalid_input(
                format!("{} level {level} with --fast", self.compression),
                "the fast mode (igzip) is gzip level 1 only",
            ));
        }
        if self.fast && !compress::gzip::FAST_AVAILABLE {
            return Err(Error::invalid_input("--fast", compress::gzip::FAST_MISSING));
        }
        if !range.contains(&level) {
            return Err(Error::invalid_input(
                format!("{} level {level}", self.compression),
                format!("expected {}..={}", range.start(), range.end()),
            ));
        }
        Ok(())
    }

    /// A short stable name of the settings that change the output bytes (not the thread
    /// count, which never does): `gzip.2-6`, `gzip.4-1`, `gzip.isal-1`, `zstd-3`, `none`.
    /// Used as a cache key, so the name changes whenever the bytes of a setting do, and a
    /// cache never mixes them: `.2` names the libdeflate encoder (the first, zlib-rs, wrote
    /// other bytes at every level), `.4` its level 1 with hoist's double-fast parser (whose
    /// first version, with 32-bit table entries, wrote other bytes as `.3`).
    pub fn key(&self) -> String {
        match (self.compression, self.effective_level()) {
            (Compression::None, _) => "none".to_string(),
            (Compression::Gzip, _) if self.fast => "gzip.isal-1".to_string(),
            (Compression::Gzip, 1) => "gzip.4-1".to_string(),
            (Compression::Gzip, level) => format!("gzip.2-{level}"),
            (c, level) => format!("{c}-{level}"),
        }
    }
}

/// Read `src` once: hash it (diff_id), compress it per `encoding`, hash and count the
/// compressed bytes (digest, size) while writing them to `sink`.
///
/// The calling thread reads and hashes the input and hashes and writes the output;
/// compression runs on `encoding.threads` workers (see [`crate::compress`]). The output
/// bytes do not depend on the thread count.
pub fn seal<R: Read, W: Write>(
    src: R,
    encoding: &Encoding,
    media_type: MediaType,
    sink: W,
) -> Result<Sealed> {
    if media_type.layer_compression() != Some(encoding.compression) {
        return Err(Error::invalid_input(
            format!("media type {}", crate::quote(media_type.as_str())),
            format!("not a layer type for {} compression", encoding.compression),
        ));
    }
    encoding.validate()?;
    let mut src = HashingReader::new(src);
    let mut out = HashingWriter::new(sink);
    let level = encoding.effective_level();
    let workers = compress::workers(encoding.threads);
    let io_err = |e: io::Error| Error::from_io("layer", e);
    match encoding.compression {
        Compression::None => {
            io::copy(&mut src, &mut out).map_err(io_err)?;
        }
        Compression::Gzip if encoding.fast => {
            compress::gzip::encode_igzip(&mut src, &mut out, workers).map_err(io_err)?
        }
        Compression::Gzip => {
            compress::gzip::encode(&mut src, &mut out, level, workers).map_err(io_err)?
        }
        Compression::Zstd => {
            compress::zstd::encode(&mut src, &mut out, level, workers).map_err(io_err)?
        }
    }
    out.flush().map_err(io_err)?;
    let (_, diff_id, _) = src.finish();
    let (_, digest, size) = out.finish();
    Ok(Sealed {
        digest,
        diff_id: DiffId(diff_id),
        size,
        media_type,
    })
}

/// The descriptors of `layers`, in order, sealing up to [`SEAL_JOBS`] layers at once (a
/// sealed layer answers with a field read); see [`each_layer`] for errors.
pub fn descriptors(layers: &[Arc<dyn Layer>]) -> Result<Vec<Descriptor>> {
    each_layer(layers, |_, l| l.descriptor())
}

/// `f(index, layer)` for every layer, on up to [`SEAL_JOBS`] threads, results in order: a
/// layer's work (sealing it, writing it somewhere) overlaps the next one's. On an error,
/// no further layer starts, and the error of the first failed layer in order is returned.
pub fn each_layer<T, F>(layers: &[Arc<dyn Layer>], f: F) -> Result<Vec<T>>
where
    T: Send + Sync,
    F: Fn(usize, &Arc<dyn Layer>) -> Result<T> + Sync,
{
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if layers.len() < 2 {
        return layers.iter().enumerate().map(|(i, l)| f(i, l)).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let done: Vec<OnceLock<Result<T>>> = layers.iter().map(|_| OnceLock::new()).collect();
    std::thread::scope(|s| {
        for _ in 0..SEAL_JOBS.min(layers.len()) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(layer) = layers.get(i) else { return };
                    let r = f(i, layer);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    let _ = done[i].set(r);
                }
            });
        }
    });
    // Layers are taken in order: every layer before a failed one has its result.
    let mut out = Vec::with_capacity(layers.len());
    for r in done {
        match r.into_inner() {
            Some(r) => out.push(r?),
            None => {
                let e = io::Error::other("a layer was not processed");
                return Err(Error::io("layers", e));
            }
        }
    }
    Ok(out)
}

/// A streaming decoder: gzip (all members, as multi-member gzip is valid and used by
/// eStargz and other tools' parallel compressors), zstd, or pass-through.
pub fn decoder(compression: Compression, r: BoxRead) -> Result<BoxRead> {
    Ok(match compression {
        Compression::None => r,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(r))),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(r).map_err(|e| Error::io("zstd decoder", e))?)
        }
    })
}

/// `image` with every layer in `encoding`'s compression: layers already in it are kept
/// as they are (same blob, described with the OCI type), the others are decompressed once
/// and sealed once into `store` — or found there by their diff_id (from the config), in
/// which case they are not read at all. The manifest is rebuilt as an OCI manifest; the
/// config is unchanged (diff_ids do not depend on compression). Returns `image` itself when
/// nothing needs converting.
pub fn recompress(
    image: Arc<dyn Image>,
    encoding: &Encoding,
    store: Arc<dyn Store>,
) -> Result<Arc<dyn Image>> {
    encoding.validate()?;
    let config = image.config()?;
    let layers = image.layers()?;
    let diff_ids = &config.parsed().rootfs.diff_ids;
    if diff_ids.len() != layers.len() {
        return Err(Error::invalid_manifest(
            format!("config {}", config.digest()),
            format!(
                "rootfs.diff_ids has {} entries, the image has {} layers",
                diff_ids.len(),
                layers.len()
            ),
        ));
    }
    let target = |mt: &MediaType| {
        if mt.is_nondistributable() {
            mt.with_compression(encoding.compression)
        } else {
            MediaType::oci_layer(encoding.compression)
        }
    };
    let mut changed = false;
    let mut out: Vec<Arc<dyn Layer>> = Vec::with_capacity(layers.len());
    for (layer, diff_id) in layers.into_iter().zip(diff_ids) {
        let mt = layer.media_type()?;
        if !mt.is_layer() {
            // Not a filesystem layer (an attestation, an artifact blob): carried as is.
            out.push(layer);
            continue;
        }
        let want = target(&mt);
        if mt.layer_compression() == Some(encoding.compression) {
            if mt == want {
                out.push(layer);
            } else {
                changed = true;
                out.push(Arc::new(Retyped {
                    inner: layer,
                    media_type: want,
                }));
            }
            continue;
        }
        changed = true;
        out.push(Arc::new(FromUncompressed::new(
            LayerTar {
                layer,
                diff_id: diff_id.clone(),
            },
            encoding.clone(),
            want,
            store.clone(),
        )));
    }
    if !changed {
        return Ok(image);
    }
    Ok(Arc::new(Assembled::new(config, out)?))
}

/// [`recompress`] for every image of an index (nested indexes included): a new OCI index
/// whose entries keep their platform and annotations but point at the converted images.
/// Converting the children seals their layers (each at most once, or found in `store`).
pub fn recompress_index(
    index: Arc<dyn ImageIndex>,
    encoding: &Encoding,
    store: Arc<dyn Store>,
) -> Result<Arc<dyn ImageIndex>> {
    let manifest = index.manifest()?;
    let Some(parsed) = manifest.as_index() else {
        return Err(Error::invalid_manifest(
            format!("index {}", manifest.digest()),
            "expected an index, found an image manifest",
        ));
    };
    let mut children = Vec::with_capacity(parsed.manifests.len());
    let mut descriptors = Vec::with_capacity(parsed.manifests.len());
    for d in &parsed.manifests {
        let (child, m) = match index.child(d)? {
            Child::Image(img) => {
                let img = recompress(img, encoding, store.clone())?;
                let m = img.manifest()?;
                (Child::Image(img), m)
            }
            Child::Index(i) => {
                let i = recompress_index(i, encoding, store.clone())?;
                let m = i.manifest()?;
                (Child::Index(i), m)
            }
        };
        let mut nd = m.descriptor();
        nd.platform = d.platform.clone();
        nd.annotations = d.annotations.clone();
        descriptors.push(nd);
        children.push((m.digest().clone(), child));
    }
    let manifest = Manifest::from_index(&IndexManifest {
        schema_version: 2,
        media_type: Some(MediaType::OciIndex),
        artifact_type: parsed.artifact_type.clone(),
        manifests: descriptors,
        subject: None,
        annotations: parsed.annotations.clone(),
    })?;
    Ok(Arc::new(RecompressedIndex { manifest, children }))
}

/// What [`recompress_index`] returns.
#[derive(Debug)]
struct RecompressedIndex {
    manifest: Manifest,
    children: Vec<(Digest, Child)>,
}

impl ImageIndex for RecompressedIndex {
    fn manifest(&self) -> Result<Manifest> {
        Ok(self.manifest.clone())
    }
    fn child(&self, descriptor: &Descriptor) -> Result<Child> {
        self.children
            .iter()
            .find(|(d, _)| *d == descriptor.digest)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| Error::not_found(format!("manifest {} in the index", descriptor.digest)))
    }
}

/// The uncompressed side of a layer, as a source to seal in another compression.
#[derive(Debug)]
struct LayerTar {
    layer: Arc<dyn Layer>,
    diff_id: DiffId,
}

impl UncompressedSource for LayerTar {
    fn open(&self) -> Result<BoxRead> {
        self.layer.uncompressed()
    }
    fn diff_id_hint(&self) -> Option<DiffId> {
        Some(self.diff_id.clone())
    }
}

/// A layer described with another media type of the same compression (same bytes).
#[derive(Debug)]
struct Retyped {
    inner: Arc<dyn Layer>,
    media_type: MediaType,
}

impl Layer for Retyped {
    fn media_type(&self) -> Result<MediaType> {
        Ok(self.media_type.clone())
    }
    fn digest(&self) -> Result<Digest> {
        self.inner.digest()
    }
    fn diff_id(&self) -> Result<DiffId> {
        self.inner.diff_id()
    }
    fn size(&self) -> Result<u64> {
        self.inner.size()
    }
    fn compressed(&self) -> Result<BoxRead> {
        self.inner.compressed()
    }
    fn compressed_for_upload(&self) -> Result<BoxRead> {
        self.inner.compressed_for_upload()
    }
    fn compressed_proven(&self) -> Result<Option<BoxRead>> {
        self.inner.compressed_proven()
    }
    fn uncompressed(&self) -> Result<BoxRead> {
        self.inner.uncompressed()
    }
    fn origin(&self) -> Option<crate::reference::Reference> {
        self.inner.origin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    /// The fast mode is there exactly when the `isal` feature is, and says so when not.
    #[test]
    fn fast_mode_needs_the_isal_feature() {
        let fast = Encoding::gzip().level(1).fast();
        let checked = fast.validate();
        assert_eq!(checked.is_ok(), cfg!(feature = "isal"), "{checked:?}");
        if let Err(e) = checked {
            assert!(e.to_string().contains("`isal` feature"), "{e}");
        }
        let mut out = Vec::new();
        let sealed = seal(&b"x"[..], &fast, MediaType::OciLayerGzip, &mut out);
        assert_eq!(sealed.is_ok(), cfg!(feature = "isal"));
    }

    /// A layer whose descriptor is known, or an error, after a pause; counts the asks.
    #[derive(Debug)]
    struct Slow {
        i: usize,
        fail: bool,
        asked: Arc<std::sync::atomic::AtomicUsize>,
    }
    impl Layer for Slow {
        fn media_type(&self) -> Result<MediaType> {
            Ok(MediaType::OciLayerGzip)
        }
        fn digest(&self) -> Result<Digest> {
            Ok(Digest::sha256(&self.i.to_le_bytes()))
        }
        fn diff_id(&self) -> Result<DiffId> {
            Ok(DiffId(Digest::sha256(&[])))
        }
        fn size(&self) -> Result<u64> {
            Ok(self.i as u64)
        }
        fn compressed(&self) -> Result<BoxRead> {
            unreachable!()
        }
        fn uncompressed(&self) -> Result<BoxRead> {
            unreachable!()
        }
        fn sealed(&self) -> Result<Sealed> {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Later layers finish first, so results arrive out of order.
            std::thread::sleep(std::time::Duration::from_millis(20 - 2 * self.i as u64));
            if self.fail {
                return Err(Error::invalid_input(format!("layer {}", self.i), "broken"));
            }
            Ok(Sealed {
                digest: self.digest()?,
                diff_id: self.diff_id()?,
                size: self.size()?,
                media_type: self.media_type()?,
            })
        }
    }

    #[test]
    fn descriptors_in_order_and_the_first_error() {
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let layers = |fail: &[usize]| -> Vec<Arc<dyn Layer>> {
            (0..8)
                .map(|i| {
                    Arc::new(Slow {
                        i,
                        fail: fail.contains(&i),
                        asked: asked.clone(),
                    }) as Arc<dyn Layer>
                })
                .collect()
        };
        let ds = descriptors(&layers(&[])).unwrap();
        let sizes: Vec<u64> = ds.iter().map(|d| d.size).collect();
        assert_eq!(sizes, (0..8).collect::<Vec<u64>>());
        assert_eq!(asked.swap(0, std::sync::atomic::Ordering::SeqCst), 8);
        // Layers 3 and 4 fail: the error is layer 3's, and no layer after them starts
        // (at most SEAL_JOBS were in progress when the first failed).
        let e = descriptors(&layers(&[3, 4])).unwrap_err();
        assert!(e.to_string().contains("layer 3"), "{e}");
        assert!(asked.load(std::sync::atomic::Ordering::SeqCst) <= 3 + 2 * SEAL_JOBS);
    }

    #[test]
    fn seal_and_decode_every_compression() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for enc in [Encoding::none(), Encoding::gzip(), Encoding::zstd()] {
            let mt = MediaType::oci_layer(enc.compression);
            let mut blob = Vec::new();
            let s = seal(&data[..], &enc, mt.clone(), &mut blob).unwrap();
            assert_eq!(s.diff_id.0, Digest::sha256(&data));
            assert_eq!(s.digest, Digest::sha256(&blob));
            assert_eq!(s.size, blob.len() as u64);
            let mut back = Vec::new();
            decoder(enc.compression, Box::new(io::Cursor::new(blob)))
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
        }
        assert!(
            seal(
                &data[..],
                &Encoding::gzip(),
                MediaType::OciLayerZstd,
                io::sink()
            )
            .is_err()
        );
    }

    /// Layers written by other tools may be multi-member gzip (eStargz, pgzip-style
    /// writers): every member is decoded, not just the first (flate2's `GzDecoder` alone
    /// would stop after it).
    #[test]
    fn multi_member_gzip_is_decoded_whole() {
        let data = crate::random::text_tar(5, 3 << 20);
        let mut blob = Vec::new();
        for part in data.chunks(700_000) {
            // Each call writes one complete gzip member.
            crate::compress::gzip::encode(part, &mut blob, 6, 1).unwrap();
        }
        let mut back = Vec::new();
        decoder(Compression::Gzip, Box::new(io::Cursor::new(blob)))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data);
    }
}
