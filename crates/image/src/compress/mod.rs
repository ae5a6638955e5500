//! The compressors behind [`crate::pipeline::seal`]: deterministic block-parallel gzip,
//! its opt-in multi-member fast mode, and multithreaded zstd.
//!
//! ## gzip: parallel, and the same bytes on every machine
//! [`gzip::encode`] works like pigz: the input is cut into 1 MiB blocks
//! ([`BLOCK_SIZE`]); each block is compressed on a worker thread by a *fresh* zlib-rs
//! deflate state primed with the 32 KiB before it as a dictionary, and ends with a sync
//! flush (the last one with a finish); the calling thread reads and hashes the input,
//! combines the per-block CRC-32s and writes the blocks in order. The result is one
//! ordinary gzip member that any gzip reader decodes, and its bytes depend on nothing but
//! the input and the level: 1 thread or 64, fast or slow workers, the digest is the same
//! (tests: `gzip_identical_for_any_thread_count_and_timing`). Reusing compressors between
//! blocks (reset + set_dictionary, as `gzp` does) was measured to give different bytes
//! from run to run, which is why every block gets a new state.
//!
//! Memory: at most `2 × workers` blocks are in flight, about 4 MiB per worker.
//!
//! ## gzip fast mode (opt-in)
//! [`gzip::encode_fast`] compresses each 1 MiB block with libdeflate into a gzip member of
//! its own. Faster and smaller than zlib at the same level, equally deterministic, but the
//! blob is *multi-member* gzip: valid (RFC 1952), read by Go's and containerd's readers
//! and by hoist (which uses `MultiGzDecoder` everywhere), yet readers that stop after the
//! first member (flate2's `GzDecoder`, some old tools) silently see only the first MiB.
//! Hence opt-in ([`crate::pipeline::Encoding::fast_gzip`]).
//!
//! ## zstd
//! [`zstd::encode`] uses libzstd's multithreaded mode, always with 2 workers or more: its
//! multithreaded output is the same for any worker count ≥ 2, unlike its single-thread mode.
//!
//! ## Levels: measured (this is how the defaults were chosen)
//! TABLE
pub mod gzip;
pub mod zstd;

mod blocks;

pub use blocks::{BLOCK_SIZE, DICT_SIZE};

/// The number of worker threads for a `threads` setting: `0` means one per core.
pub fn workers(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    /// `len` bytes of compressible text (words drawn by a seeded generator), like the
    /// text-heavy layers the figures in the docs were measured on.
    pub(crate) fn text(len: usize, seed: u64) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "layer", "digest", "the", "of", "registry", "manifest", "config", "and", "blob", "tar",
            "gzip", "zstd", "upload", "index", "image", "a", "to", "push", "pull", "sha256", "{",
            "}", "\n", "0", "1", "usr/lib/", "etc/", ".so", "=", "fn",
        ];
        let mut out = Vec::with_capacity(len + 16);
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let w = WORDS[((x >> 33) % WORDS.len() as u64) as usize];
            out.extend_from_slice(w.as_bytes());
            out.push(if (x >> 20) % 11 == 0 { b'\n' } else { b' ' });
        }
        out.truncate(len);
        out
    }
}
