//! Seeded, deterministic images and indexes for tests and benchmarks.
//!
//! Each layer is a real tar of regular files (`file-0000`, ... of at most [`FILE_SIZE`]
//! bytes each, `size` bytes of content per layer), generated on the fly from an in-crate
//! PRNG (splitmix64), so the bytes never change with a dependency version and a layer is
//! never held in memory. [`Mode::Text`] makes words from a small vocabulary, which gzip
//! compresses about 3-4x; [`Mode::Random`] is incompressible.
//!
//! ```
//! use hoist_image::{random, Image};
//! let img = random::image(&random::Options { layers: 2, size: 10_000, seed: 7, ..Default::default() }).unwrap();
//! let again = random::image(&random::Options { layers: 2, size: 10_000, seed: 7, ..Default::default() }).unwrap();
//! assert_eq!(img.manifest().unwrap().digest(), again.manifest().unwrap().digest());
//! ```

use std::io::{self, Read};
use std::sync::{Arc, OnceLock};

use crate::digest::{DiffId, HashingReader};
use crate::error::{Error, Result};
use crate::image::{Child, Image, ImageIndex};
use crate::layer::{BoxRead, FromUncompressed, Layer, SpoolStore, Store, UncompressedSource};
use crate::manifest::{Config, ConfigFile, Descriptor, IndexManifest, Manifest, RootFs};
use crate::media_type::MediaType;
use crate::partial::Assembled;
use crate::pipeline::Encoding;

/// Largest file in a generated layer: layers bigger than this hold several files.
pub const FILE_SIZE: u64 = 1 << 20;
/// Platforms given to the images of a random index, in order.
const PLATFORMS: &[(&str, &str, Option<&str>)] = &[
    ("linux", "amd64", None),
    ("linux", "arm64", None),
    ("linux", "arm", Some("v7")),
    ("linux", "ppc64le", None),
    ("linux", "s390x", None),
    ("linux", "riscv64", None),
    ("linux", "386", None),
];

/// What the files of a layer contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Uniformly random bytes: incompressible.
    #[default]
    Random,
    /// Words from a small vocabulary: about 3-4x compressible with gzip.
    Text,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mode> {
        match s {
            "random" => Ok(Mode::Random),
            "text" => Ok(Mode::Text),
            _ => Err(Error::invalid_input(
                format!("mode {s:?}"),
                "expected random or text",
            )),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of layers.
    pub layers: usize,
    /// Bytes of file content per layer (the tar is slightly larger: headers, padding).
    pub size: u64,
    /// Content kind.
    pub mode: Mode,
    /// Seed: the same options give the same bytes, always.
    pub seed: u64,
    /// How layers are compressed when sealed (default gzip).
    pub encoding: Encoding,
    /// Where sealed layers are kept (default: a fresh [`SpoolStore`]).
    pub store: Option<Arc<dyn Store>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            layers: 1,
            size: 1 << 20,
            mode: Mode::Random,
            seed: 0,
            encoding: Encoding::gzip(),
            store: None,
        }
    }
}

/// A generated image: an [`Assembled`] image whose layers are [`FromUncompressed`] over a
/// tar generator.
pub fn image(opts: &Options) -> Result<Arc<Assembled>> {
    image_for(opts, opts.seed, PLATFORMS[0])
}

fn image_for(
    opts: &Options,
    seed: u64,
    (os, arch, variant): (&str, &str, Option<&str>),
) -> Result<Arc<Assembled>> {
    let store: Arc<dyn Store> = match &opts.store {
        Some(s) => s.clone(),
        None => Arc::new(SpoolStore::new()?),
    };
    let media_type = MediaType::oci_layer(opts.encoding.compression);
    let mut layers: Vec<Arc<dyn Layer>> = Vec::with_capacity(opts.layers);
    let mut diff_ids = Vec::with_capacity(opts.layers);
    for i in 0..opts.layers {
        let src = LayerSource {
            spec: Spec {
                seed: mix(seed, i as u64),
                size: opts.size,
                mode: opts.mode,
            },
            diff_id: OnceLock::new(),
        };
        diff_ids.push(src.diff_id());
        layers.push(Arc::new(FromUncompressed::new(
            src,
            opts.encoding.clone(),
            media_type.clone(),
            store.clone(),
        )));
    }
    let mut rest = serde_json::Map::new();
    rest.insert("created".into(), "1970-01-01T00:00:00Z".into());
    rest.insert(
        "config".into(),
        serde_json::json!({ "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] }),
    );
    let history = (0..opts.layers)
        .map(|i| {
            serde_json::json!({
                "created": "1970-01-01T00:00:00Z",
                "created_by": format!("hoist random layer {i} seed {seed}"),
            })
        })
        .collect();
    let config = Config::from_file(&ConfigFile {
        architecture: arch.to_string(),
        os: os.to_string(),
        variant: variant.map(str::to_string),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history,
        rest,
    });
    Ok(Arc::new(Assembled::new(config, layers)?))
}

/// A generated multi-platform index of `images` images (seeds `seed`, `seed+1`, ...).
#[derive(Debug)]
pub struct RandomIndex {
    images: Vec<Arc<Assembled>>,
    manifest: OnceLock<Manifest>,
}

/// A generated index of `images` single-platform images (at most 7 platforms).
pub fn index(opts: &Options, images: usize) -> Result<Arc<RandomIndex>> {
    if images == 0 || images > PLATFORMS.len() {
        return Err(Error::invalid_input(
            format!("image count {images}"),
            format!("expected 1 to {}", PLATFORMS.len()),
        ));
    }
    let images = (0..images)
        .map(|i| image_for(opts, opts.seed.wrapping_add(i as u64), PLATFORMS[i]))
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(RandomIndex {
        images,
        manifest: OnceLock::new(),
    }))
}

impl ImageIndex for RandomIndex {
    fn manifest(&self) -> Result<Manifest> {
        if let Some(m) = self.manifest.get() {
            return Ok(m.clone());
        }
        let manifests = self
            .images
            .iter()
            .map(|i| {
                let mut d = i.manifest()?.descriptor();
                d.platform = Some(i.config()?.parsed().platform());
                Ok(d)
            })
            .collect::<Result<Vec<_>>>()?;
        let m = Manifest::from_index(&IndexManifest {
            schema_version: 2,
            media_type: Some(MediaType::OciIndex),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: Default::default(),
        })?;
        Ok(self.manifest.get_or_init(|| m).clone())
    }

    fn child(&self, descriptor: &Descriptor) -> Result<Child> {
        for i in &self.images {
            if i.manifest()?.digest() == &descriptor.digest {
                return Ok(Child::Image(i.clone()));
            }
        }
        Err(Error::not_found(format!(
            "manifest {} in the random index",
            descriptor.digest
        )))
    }
}

impl RandomIndex {
    /// The images, in index order.
    pub fn images(&self) -> &[Arc<Assembled>] {
        &self.images
    }
}

/// splitmix64: tiny, fast, and fixed here forever (the bytes of a seed must never change).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn mix(a: u64, b: u64) -> u64 {
    SplitMix64(a ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03)).next()
}

/// A generated text-mode layer tar of about `size` bytes (tests of the compressors).
#[cfg(test)]
pub(crate) fn text_tar(seed: u64, size: u64) -> Vec<u8> {
    let mut v = Vec::new();
    io::Read::read_to_end(
        &mut TarGen::new(Spec {
            seed,
            size,
            mode: Mode::Text,
        }),
        &mut v,
    )
    .expect("the generator never fails");
    v
}

#[derive(Debug, Clone, Copy)]
struct Spec {
    seed: u64,
    size: u64,
    mode: Mode,
}

/// The core of a random layer: a tar generator, with its diff_id computed once by hashing
/// the generated stream (so configs can be made without compressing anything).
#[derive(Debug)]
pub struct LayerSource {
    spec: Spec,
    diff_id: OnceLock<DiffId>,
}

impl LayerSource {
    fn diff_id(&self) -> DiffId {
        self.diff_id
            .get_or_init(|| {
                let mut r = HashingReader::new(TarGen::new(self.spec));
                io::copy(&mut r, &mut io::sink()).expect("the generator never fails");
                DiffId(r.finish().1)
            })
            .clone()
    }
}

impl UncompressedSource for LayerSource {
    fn open(&self) -> Result<BoxRead> {
        Ok(Box::new(TarGen::new(self.spec)))
    }
    fn diff_id_hint(&self) -> Option<DiffId> {
        Some(self.diff_id())
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "layer",
    "image",
    "registry",
    "manifest",
    "digest",
    "container",
    "blob",
    "config",
    "index",
    "tag",
    "push",
    "pull",
    "copy",
    "hoist",
    "tar",
    "gzip",
];

/// Generates the tar stream of one layer, block by block.
struct TarGen {
    spec: Spec,
    files: u64,
    file: u64,
    /// Bytes of the current file's content still to produce.
    remaining: u64,
    rng: SplitMix64,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl TarGen {
    fn new(spec: Spec) -> Self {
        let files = spec.size.div_ceil(FILE_SIZE);
        TarGen {
            spec,
            files,
            file: 0,
            remaining: 0,
            rng: SplitMix64(0),
            buf: Vec::with_capacity(64 << 10),
            pos: 0,
            done: false,
        }
    }

    /// Refill `buf` with the next piece of the stream; false at the end.
    fn refill(&mut self) -> bool {
        self.buf.clear();
        self.pos = 0;
        if self.remaining > 0 {
            let n = self.remaining.min(32 << 10) as usize;
            self.fill_content(n);
            self.remaining -= n as u64;
            if self.remaining == 0 {
                // Pad the file to a 512-byte block.
                let pad = (512 - (self.file_len(self.file - 1) % 512) as usize) % 512;
                self.buf.resize(self.buf.len() + pad, 0);
            }
            return true;
        }
        if self.file < self.files {
            let len = self.file_len(self.file);
            let mut h = tar::Header::new_ustar();
            h.set_path(format!("file-{:04}", self.file))
                .expect("short ascii path");
            h.set_size(len);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            self.buf.extend_from_slice(h.as_bytes());
            self.rng = SplitMix64(mix(self.spec.seed, self.file));
            self.remaining = len;
            self.file += 1;
            return true;
        }
        if !self.done {
            self.done = true;
            self.buf.resize(1024, 0);
            return true;
        }
        false
    }

    fn file_len(&self, i: u64) -> u64 {
        (self.spec.size - i * FILE_SIZE).min(FILE_SIZE)
    }

    fn fill_content(&mut self, n: usize) {
        let start = self.buf.len();
        match self.spec.mode {
            Mode::Random => {
                while self.buf.len() - start < n {
                    self.buf.extend_from_slice(&self.rng.next().to_le_bytes());
                }
            }
            Mode::Text => {
                while self.buf.len() - start < n {
                    let r = self.rng.next();
                    // Several words per draw: 6 bits each.
                    for k in 0..8 {
                        let w = WORDS[((r >> (k * 6)) & 63) as usize];
                        self.buf.extend_from_slice(w.as_bytes());
                        self.buf.push(if (r >> (48 + k)) & 15 == 0 {
                            b'\n'
                        } else {
                            b' '
                        });
                    }
                }
            }
        }
        self.buf.truncate(start + n);
    }
}

impl Read for TarGen {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.buf.len() {
            if !self.refill() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn tar_bytes(spec: Spec) -> Vec<u8> {
        let mut v = Vec::new();
        TarGen::new(spec).read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn layers_are_real_tars_of_the_right_size() {
        for size in [
            0,
            1,
            511,
            512,
            513,
            FILE_SIZE,
            FILE_SIZE + 1,
            2 * FILE_SIZE + 700,
        ] {
            for mode in [Mode::Random, Mode::Text] {
                let bytes = tar_bytes(Spec {
                    seed: 1,
                    size,
                    mode,
                });
                assert_eq!(bytes.len() % 512, 0);
                let mut a = tar::Archive::new(&bytes[..]);
                let mut total = 0;
                for e in a.entries().unwrap() {
                    let mut e = e.unwrap();
                    assert_eq!(e.header().entry_type(), tar::EntryType::Regular);
                    let mut content = Vec::new();
                    e.read_to_end(&mut content).unwrap();
                    total += content.len() as u64;
                }
                assert_eq!(total, size, "{size} {mode:?}");
            }
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let s = Spec {
            seed: 42,
            size: 100_000,
            mode: Mode::Random,
        };
        let a = tar_bytes(s);
        assert_eq!(a, tar_bytes(s));
        assert_ne!(a, tar_bytes(Spec { seed: 43, ..s }));
        // Pinned: the bytes of a seed never change (a dependency update must not move them).
        assert_eq!(
            Digest::sha256(&a).to_string(),
            "sha256:5ea1e8247eb918d677b9d03eded85c8c9c748858638f93be6f1a5cdea4c03ca3"
        );
    }

    #[test]
    fn text_compresses_three_to_four_times() {
        let raw = tar_bytes(Spec {
            seed: 3,
            size: 2 << 20,
            mode: Mode::Text,
        });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        io::Write::write_all(&mut gz, &raw).unwrap();
        let ratio = raw.len() as f64 / gz.finish().unwrap().len() as f64;
        eprintln!("text mode gzip ratio {ratio:.2}");
        assert!((3.0..=4.5).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn image_and_index() {
        let opts = Options {
            layers: 3,
            size: 5000,
            seed: 9,
            ..Default::default()
        };
        let img = image(&opts).unwrap();
        let m = img.manifest().unwrap();
        let im = m.as_image().unwrap();
        assert_eq!(im.layers.len(), 3);
        assert_eq!(img.config().unwrap().parsed().rootfs.diff_ids.len(), 3);
        for (l, d) in img.layers().unwrap().iter().zip(&im.layers) {
            assert_eq!(&l.digest().unwrap(), &d.digest);
        }
        let idx = index(&opts, 3).unwrap();
        let im = idx.manifest().unwrap();
        let children = &im.as_index().unwrap().manifests;
        assert_eq!(children.len(), 3);
        assert_eq!(
            children[2].platform.as_ref().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(matches!(idx.child(&children[1]).unwrap(), Child::Image(_)));
        assert!(index(&opts, 0).is_err());
    }
}
