//! Helpers shared by the pipeline tests: generated data and a counting source.
#![allow(dead_code)]

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hoist_image::{BoxRead, DiffId, Digest, UncompressedSource};

/// `len` bytes of compressible text from a seeded generator.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "layer", "digest", "the", "of", "registry", "manifest", "config", "and", "blob", "tar",
        "gzip", "zstd", "upload", "index", "image", "a", "to", "push", "pull", "sha256",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(WORDS[((x >> 33) % WORDS.len() as u64) as usize].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

/// How often a [`CountingSource`] was opened and how many bytes were read from it.
#[derive(Debug, Default)]
pub struct Counts {
    pub opens: AtomicU64,
    pub bytes: AtomicU64,
}

impl Counts {
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::SeqCst)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
}

/// An uncompressed layer in memory that counts its opens and the bytes read.
#[derive(Debug, Clone)]
pub struct CountingSource {
    pub data: Arc<Vec<u8>>,
    pub counts: Arc<Counts>,
    pub hint: Option<DiffId>,
}

impl CountingSource {
    pub fn new(data: Vec<u8>) -> Self {
        CountingSource {
            data: Arc::new(data),
            counts: Arc::new(Counts::default()),
            hint: None,
        }
    }

    /// The same source, claiming its true diff_id (as a docker-save config does).
    pub fn with_hint(mut self) -> Self {
        self.hint = Some(DiffId(Digest::sha256(&self.data)));
        self
    }
}

struct CountingReader {
    data: Arc<Vec<u8>>,
    pos: usize,
    counts: Arc<Counts>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        self.counts.bytes.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

impl UncompressedSource for CountingSource {
    fn open(&self) -> hoist_image::Result<BoxRead> {
        self.counts.opens.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(CountingReader {
            data: self.data.clone(),
            pos: 0,
            counts: self.counts.clone(),
        }))
    }
    fn diff_id_hint(&self) -> Option<DiffId> {
        self.hint.clone()
    }
}
