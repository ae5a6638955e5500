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
//! One 100 MiB text layer (`mkimage.py -n 1 -s 100MiB -m text --seed 1`, 104,867,840 bytes),
//! on the 2-core Xeon VM this project is developed on. The machine was shared (load 6-9),
//! so the figures are **CPU seconds** (user + sys) of the whole pass — which for hoist
//! includes the two sha256 (diff_id and digest) that the peers do not compute — and the
//! speed is MB per CPU-second: on idle cores, wall-clock speed is about that × cores.
//!
//! | compressor | CPU s | MB/CPU-s | output bytes | ratio | CPU vs pigz -6 |
//! |---|---|---|---|---|---|
//! | hoist gzip L1 (zlib-rs) | 0.65 | 161 | 41,886,886 | 2.504 | 6.1x |
//! | hoist gzip L2 | 1.17 | 90 | 32,914,859 | 3.186 | 3.4x |
//! | hoist gzip L3 | 1.42 | 74 | 31,101,477 | 3.372 | 2.8x |
//! | hoist gzip L4 | 1.77 | 59 | 30,273,827 | 3.464 | 2.2x |
//! | hoist gzip L5 | 2.09 | 50 | 29,900,871 | 3.507 | 1.9x |
//! | **hoist gzip L6 (default)** | 3.14 | 33 | 29,463,076 | 3.559 | 1.27x |
//! | hoist gzip L7 | 4.97 | 21 | 29,039,611 | 3.611 | 0.80x |
//! | hoist gzip L9 | 4.25 | 25 | 29,338,654 | 3.574 | 0.94x |
//! | hoist gzip fast L1 (libdeflate) | 0.87 | 121 | 31,995,824 | 3.278 | 4.6x |
//! | hoist gzip fast L4 | 1.39 | 75 | 30,100,903 | 3.484 | 2.9x |
//! | hoist gzip fast L6 | 1.85 | 57 | 29,510,173 | 3.554 | 2.15x |
//! | hoist gzip fast L9 | 7.56 | 14 | 28,599,676 | 3.667 | 0.53x |
//! | pigz -1 | 1.44 | 73 | 34,832,671 | 3.011 | 2.8x |
//! | pigz -6 | 3.98 | 26 | 29,519,089 | 3.553 | 1x |
//! | pigz -9 | 11.52 | 9.1 | 29,053,876 | 3.609 | 0.35x |
//! | hoist zstd L1 | 0.75 | 140 | 29,351,417 | 3.573 | |
//! | **hoist zstd L3 (default)** | 1.01 | 104 | 25,156,364 | 4.169 | |
//! | hoist zstd L6 | 2.02 | 52 | 23,531,510 | 4.456 | |
//! | zstd -1 -T0 | 0.67 | 157 | 29,351,425 | 3.573 | |
//! | zstd -3 -T0 | 0.83 | 126 | 25,223,275 | 4.158 | |
//!
//! **gzip default: level 6**, the only zlib-rs level whose output is as small as pigz's
//! default (0.2% smaller), at 1.3x pigz's CPU efficiency. Level 5 would be 1.9x but 1.3%
//! bigger. The fast mode at level 6 is 2.15x at the same size as pigz -6, but it is
//! multi-member gzip, so it stays opt-in. (zlib-rs level 9 is weaker than level 7 on this
//! data.) **zstd default: level 3**, the zstd CLI's default; hoist's pass costs about 20%
//! more CPU than `zstd -T0`, which is the two sha256 hashes it computes on the way.
//!
//! Reproduce: `bench/compress.sh` (hoist copy vs pigz and zstd in one run) and
//! `cargo bench -p hoist-image --bench pipeline`.
pub mod gzip;
pub mod zstd;

mod blocks;

pub use blocks::{BLOCK_SIZE, DICT_SIZE};

/// The most workers `threads = 0` ("all cores") asks for. Memory grows with workers (gzip:
/// about 4 MiB each; zstd level 3: about 16 MiB each), and 16 cores already compress faster
/// (gzip ~500 MB/s, zstd ~1.5 GB/s) than most disks and links move; an explicit thread count
/// is not capped. The output does not depend on it.
pub const MAX_DEFAULT_WORKERS: usize = 16;

/// The number of worker threads for a `threads` setting: `0` means one per core, at most
/// [`MAX_DEFAULT_WORKERS`].
pub fn workers(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(MAX_DEFAULT_WORKERS),
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
