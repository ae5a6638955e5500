//! The sealing pass in MB/s: read → sha256 → compress → sha256 → sink, on generated text.
//!
//! `cargo bench -p hoist-image --bench pipeline` (set `HOIST_BENCH_MIB` for the input size,
//! default 32 MiB). A benchmark, not a test: nothing here asserts a speed.

use std::io;

use divan::Bencher;
use divan::counter::BytesCount;
use hoist_image::pipeline::{self, Encoding};
use hoist_image::{Compression, MediaType};

fn main() {
    divan::main();
}

/// Compressible text, like the text layers the docs' table was measured on.
fn text(len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "layer", "digest", "the", "of", "registry", "manifest", "config", "and", "blob", "tar",
        "gzip", "zstd", "upload", "index", "image", "a", "to", "push", "pull", "sha256", "{", "}",
        "0", "1", "usr/lib/", "etc/", ".so", "=", "fn", "return", "struct", "impl",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x = 0x2545f4914f6cdd1du64;
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // A skewed choice, so some words are much more common (as in real text).
        let r = ((x >> 33) % 1024) as usize;
        let w = WORDS[(r * r / 1024) * WORDS.len() / 1024];
        out.extend_from_slice(w.as_bytes());
        out.push(if (x >> 20) % 11 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

fn input() -> &'static [u8] {
    static DATA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DATA.get_or_init(|| {
        let mib = std::env::var("HOIST_BENCH_MIB")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(32usize);
        text(mib << 20)
    })
}

fn seal(bencher: Bencher, encoding: Encoding) {
    let data = input();
    let mt = MediaType::oci_layer(encoding.compression);
    bencher
        .counter(BytesCount::new(data.len()))
        .bench(|| pipeline::seal(data, &encoding, mt.clone(), io::sink()).unwrap());
}

/// Thread settings: 1 worker, and 0 (all cores).
const THREADS: &[usize] = &[1, 0];

#[divan::bench(args = THREADS, sample_count = 5, sample_size = 1)]
fn gzip_l1(bencher: Bencher, threads: usize) {
    seal(bencher, Encoding::gzip().level(1).threads(threads));
}

#[divan::bench(args = THREADS, sample_count = 5, sample_size = 1)]
fn gzip_l6(bencher: Bencher, threads: usize) {
    seal(bencher, Encoding::gzip().level(6).threads(threads));
}

#[divan::bench(args = THREADS, sample_count = 5, sample_size = 1)]
fn gzip_l4(bencher: Bencher, threads: usize) {
    seal(bencher, Encoding::gzip().level(4).threads(threads));
}

#[divan::bench(args = THREADS, sample_count = 5, sample_size = 1)]
fn zstd_l3(bencher: Bencher, threads: usize) {
    // zstd always runs at least 2 workers (determinism): "1" is 2 here.
    seal(bencher, Encoding::zstd().level(3).threads(threads));
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn uncompressed(bencher: Bencher) {
    seal(bencher, Encoding::of(Compression::None));
}
