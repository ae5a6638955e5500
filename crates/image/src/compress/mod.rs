//! The compressors behind [`crate::pipeline::seal`]: deterministic block-parallel gzip and
//! multithreaded zstd.
//!
//! ## gzip: parallel, one ordinary member, and the same bytes on every machine
//! [`gzip::encode`] works like pigz: the input is cut into 1 MiB blocks ([`BLOCK_SIZE`]);
//! worker threads compress each block with libdeflate into raw deflate; the calling thread
//! reads and hashes the input, combines the per-block CRC-32s and writes the blocks in
//! order. To join the blocks into **one** deflate stream (so the blob is one ordinary gzip
//! member that every reader decodes, including the ones that stop after the first member),
//! every block but the last ends with no final deflate block and byte-aligned by an empty
//! stored block — the bytes zlib's sync flush writes. Stock libdeflate cannot do that, so
//! hoist vendors its compressor with a 90-line addition (`crates/image/libdeflate`,
//! `compress/libdeflate.rs`): with the stock library, each block's output would have to be
//! decoded again to find and clear its final block, measured at 16% of a cold push's CPU.
//! A block's
//! bytes depend on nothing but its input and the level, so 1 thread or 64, fast or slow
//! workers, the digest is the same (test: `gzip_identical_for_any_thread_count_and_timing`).
//!
//! Why libdeflate and not zlib (the first encoder was flate2/zlib-rs with a fresh state per
//! block primed with the previous 32 KiB): at level 6 libdeflate is 1.4x faster than
//! zlib-rs on this machine, and on real files (a 315 MB tar of /usr/bin and perl) 1%
//! smaller than pigz -6, at 2.15x pigz's speed. It has no preset dictionary, so blocks
//! start cold: measured 0.13% bigger than one libdeflate stream of the same layer. On small-vocabulary synthetic text
//! libdeflate at level 6 is up to 6% bigger than zlib at level 6; on the reference
//! generator's text below and on real files it is not.
//!
//! **The opt-in fast mode is ISA-L's igzip** ([`gzip::encode_igzip`], its stateless level
//! 3, compress/igzip.rs): for the size of libdeflate's level 1 it is about 1.5x faster,
//! and its full-flush mode ends a non-final block byte-aligned by itself. But
//! ISA-L chooses its match finder by instruction set: on x86-64 with AVX2 level 3 runs
//! `icf_body_lazyhash1_fillgreedy_greedy`, on older x86 and on ARM
//! `icf_body_hash1_fillgreedy_lazy` (isa-l's igzip_multibinary dispatch tables), so the
//! bytes, and the digest, depend on the machine. That breaks the promise above, so it is
//! never a default: `--fast` on `hoist push` and `hoist copy`, cache key `gzip.isal-1`.
//! It is built only with the `isal` cargo feature (on in the CLI), as ISA-L's bundled
//! source needs nasm and autotools.
//!
//! Memory: at most `2 × workers` blocks are in flight, about 4 MiB per worker. Peak RSS
//! sealing one 2 GiB layer (`hoist copy docker-archive:X oci:Y`): 18 MiB with gzip, 55 MiB
//! with zstd.
//!
//! ## Level 1: hoist's double-fast parser
//! Level 1 is what a push compresses with, so its speed on real files is a cold push's
//! speed. libdeflate's own level-1 parser spent half of its time on binaries in branch
//! mispredictions (cachegrind) and tried every byte of incompressible data; the vendored
//! copy replaces it with a parser in the scheme of zstd's double-fast strategy (two hash
//! tables, 8 and 4 bytes; literal runs stepped over faster as they grow), keeping
//! libdeflate's Huffman coding (details in `crates/image/libdeflate/README.md`). CPU of
//! the compressor alone in 1 MiB blocks, min of 5, 2026-12-04:
//!
//! | data | libdeflate level 1 | hoist level 1 | output bytes |
//! |---|---|---|---|
//! | real files (a 432 MB tar of /usr, bench/real_image.py) | 1.66 s | 1.19 s | 148,111,210 → 150,153,371 (+1.4%) |
//! | text (`hoist random --mode text`, 105 MB) | 0.35 s | 0.33 s | 34,359,285 → 33,621,884 (−2.1%) |
//! | incompressible (105 MB) | 0.70 s | 0.06 s | 104,878,802 → 104,888,846 |
//!
//! Against the peers (`bench/compress.sh`, whole `hoist copy` against the peer on the layer
//! files, bench/runs/2026-12-04-2055-compress.md): level 1 uses 1.7x (text), 2.0x (real)
//! and 4.9x (incompressible) less CPU than pigz -1 for 0.91x, 0.98x and 1.0x its bytes, and
//! 1.06-1.12x the CPU of `--fast` (igzip) for 5% (text) and 1% (real) fewer bytes. Its
//! cache key is `gzip.4-1` (libdeflate's level 1 wrote other bytes under `gzip.2-1`, the
//! parser's first version, with 32-bit table entries, under `gzip.3-1`).
//!
//! ## zstd
//! [`zstd::encode`] uses libzstd's multithreaded mode, always with 2 workers or more: its
//! multithreaded output is the same for any worker count ≥ 2, unlike its single-thread mode.
//! Its contexts (worker threads, job buffers) are kept between layers. The compression
//! itself (libzstd 1.5.7) takes a little less CPU than `zstd -3 -T0` (1.5.4) on the same
//! layers, for 0.1% (text) to 0.8% (real files) fewer bytes; but hoist also computes the
//! two sha256 (diff_id and digest) the zstd CLI does not, 15% of its CPU on text (perf,
//! SHA-NI at about 2.2 GB/s), so `hoist copy --compression zstd` uses 1.04-1.06x the zstd
//! CLI's CPU on text and real files, and 1.5x on incompressible layers, where both hashes
//! cover the whole input (bench/runs/2026-12-05-0144-compress.md). Copied into a layout,
//! a layer is sealed in place ([`crate::layout::LayoutStore`]) and not hashed again.
//!
//! ## Levels: measured (this is how the defaults were chosen)
//! One 100 MiB text layer (`mkimage.py -n 1 -s 100MiB -m text --seed 1`, 104,867,840 bytes
//! of tar), on the idle 2-core Xeon VM this project is developed on, 2026-11-29, best of 3.
//! The L1 and L6 rows were measured again on 2026-11-30 after the deflate scan was removed
//! (same bytes, 8-16% less CPU); the other gzip rows still include it (about 6% at L6).
//! hoist runs the whole `hoist --no-cache copy docker-archive:X oci:Y` (reading the tarball,
//! both sha256, writing the layout); the peers compress the layer tar to a file.
//!
//! | compressor | wall s | CPU s | MB/s | output bytes | ratio | speed vs peer |
//! |---|---|---|---|---|---|---|
//! | hoist gzip --fast (igzip) | 0.37 | 0.57 | 283 | 32,121,173 | 3.265 | 5.41x pigz -6 |
//! | hoist gzip L1 (libdeflate's parser then; see above) | 0.50 | 0.87 | 210 | 31,994,465 | 3.278 | 4.00x |
//! | hoist gzip L2 | 0.65 | 1.27 | 161 | 31,064,657 | 3.376 | 3.08x |
//! | hoist gzip L3 | 0.77 | 1.51 | 136 | 30,300,829 | 3.461 | 2.60x |
//! | hoist gzip L4 | 0.80 | 1.55 | 131 | 30,099,533 | 3.484 | 2.50x |
//! | hoist gzip L5 | 0.86 | 1.67 | 122 | 29,885,060 | 3.509 | 2.33x |
//! | **hoist gzip L6 (default)** | 1.01 | 1.92 | 104 | 29,508,815 | 3.554 | **1.98x** |
//! | hoist gzip L7 | 1.47 | 2.81 | 71 | 29,103,394 | 3.603 | 1.36x |
//! | hoist gzip L9 | 3.57 | 7.02 | 29 | 28,598,312 | 3.667 | 0.56x |
//! | pigz -1 | 0.72 | 1.42 | 146 | 34,832,681 | 3.011 | 2.78x |
//! | pigz -6 | 2.00 | 3.96 | 52 | 29,519,099 | 3.553 | 1x |
//! | pigz -9 | 5.71 | 11.33 | 18 | 29,053,886 | 3.609 | 0.35x |
//! | hoist zstd L1 | 0.43 | 0.70 | 244 | 29,351,417 | 3.573 | 0.88x zstd -1 -T0 |
//! | zstd -1 -T0 | 0.38 | 0.64 | 276 | 29,351,425 | 3.573 | 1x |
//! | **hoist zstd L3 (default)** | 0.47 | 0.85 | 223 | 25,156,364 | 4.169 | **1.00x** zstd -3 -T0 |
//! | zstd -3 -T0 | 0.47 | 0.88 | 223 | 25,223,275 | 4.158 | 1x |
//!
//! **gzip default: level 6** for layers kept at rest (layouts, tarballs): as small as
//! pigz's default (0.03% smaller) at about 2x its speed on this text; on the word-like
//! text of `hoist random` 5.5% bigger, on real files 0.8% smaller
//! (bench/runs/2026-12-04-2055-compress.md). **Level 1 for layers pushed to a registry**
//! (`pipeline::DEFAULT_PUSH_GZIP_LEVEL`): 4x pigz -6's speed for 8.4% more bytes here
//! (with the parser of the time; see the level-1 section for today's), and smaller and
//! faster than pigz -1. Levels 2-5 sit between (`--level`). **zstd default: level 3**,
//! the zstd CLI's default.
//!
//! Reproduce: `bench/compress.sh` (hoist copy vs pigz and zstd in one run) and
//! `cargo bench -p hoist-image --bench pipeline`.
pub mod gzip;
pub mod zstd;

mod blocks;
#[cfg(feature = "isal")]
mod igzip;
mod libdeflate;

pub use blocks::BLOCK_SIZE;

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

    /// `len` incompressible bytes from a seeded generator.
    pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect()
    }
}
