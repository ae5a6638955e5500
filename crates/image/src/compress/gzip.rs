//! Deterministic block-parallel gzip: libdeflate on every core, one ordinary gzip member.

use std::io::{self, Read, Write};

use super::blocks;

/// The highest level (libdeflate's; 10-12 are its slow near-optimal parsers).
pub const MAX_LEVEL: u32 = 12;

/// The 10-byte gzip header: no name, no mtime (0), OS "unknown" (255), and the XFL hint
/// zlib writes (2: slowest level, 4: fastest level).
fn header(level: u32) -> [u8; 10] {
    let xfl = match level {
        9.. => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// Compress `src` to `sink` as one ordinary gzip member, in [`blocks::BLOCK_SIZE`] blocks
/// on `workers` threads. The output bytes depend only on the input and `level` (0..=12).
///
/// Each block is compressed by libdeflate on its own (no dictionary). Every block but the
/// last ends without a final block, byte-aligned by an empty stored block (the bytes zlib's
/// sync flush writes; the vendored libdeflate's `libdeflate_deflate_compress_sync`), so the
/// next block's stream continues it; the last one ends the stream.
pub fn encode<R: Read, W: Write>(src: R, sink: W, level: u32, workers: usize) -> io::Result<()> {
    encode_with(src, sink, level, false, workers, &|_| {})
}

/// [`encode`] with ISA-L's igzip (stateless, its level 3; the gzip header says level 1)
/// instead of libdeflate: about 1.5x libdeflate level 1's speed for the same size. Its
/// full-flush mode ends each non-final piece byte-aligned, so no scan is needed.
///
/// **Its bytes depend on the CPU family**: ISA-L picks its match finder by instruction set
/// (x86-64 with AVX2 uses another algorithm than older x86 and ARM), so the same input
/// gives one digest on an AVX2 machine and another on an ARM laptop. Same for any thread
/// count and timing on one machine (test). Hence opt-in (`Encoding::fast`).
///
/// Needs the `isal` cargo feature; without it this fails with [`io::ErrorKind::Unsupported`].
pub fn encode_igzip<R: Read, W: Write>(src: R, sink: W, workers: usize) -> io::Result<()> {
    if !FAST_AVAILABLE {
        return Err(io::Error::new(io::ErrorKind::Unsupported, FAST_MISSING));
    }
    encode_with(src, sink, 1, true, workers, &|_| {})
}

/// True when this build has ISA-L's igzip (the `isal` cargo feature), for the fast mode.
pub const FAST_AVAILABLE: bool = cfg!(feature = "isal");

/// Why the fast mode fails in a build without it.
pub(crate) const FAST_MISSING: &str =
    "the fast mode (igzip) is not in this build: enable hoist-image's `isal` feature";

#[cfg(feature = "isal")]
fn igzip_deflate(data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    super::igzip::deflate(data, last)
}

#[cfg(not(feature = "isal"))]
fn igzip_deflate(_: &[u8], _: bool) -> io::Result<Vec<u8>> {
    Err(io::Error::new(io::ErrorKind::Unsupported, FAST_MISSING))
}

/// [`encode`], calling `before_block(index)` on the worker before each block (tests use it
/// to vary the timing).
fn encode_with<R: Read, W: Write>(
    src: R,
    mut sink: W,
    level: u32,
    igzip: bool,
    workers: usize,
    before_block: &(dyn Fn(u64) + Sync),
) -> io::Result<()> {
    if level > MAX_LEVEL {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gzip level {level} is out of range (expected 0..={MAX_LEVEL})"),
        ));
    }
    sink.write_all(&header(level))?;
    let totals = blocks::run(src, &mut sink, workers, |job, out| {
        before_block(job.index);
        if job.data.is_empty() && job.index > 0 {
            // The stream so far ends with a non-final block: close it with an empty
            // final fixed-Huffman block (BFINAL 1, BTYPE 01, end-of-block 0000000).
            return Ok(vec![0x03, 0x00]);
        }
        if igzip {
            igzip_deflate(&job.data, job.last)
        } else {
            super::libdeflate::deflate_into(&job.data, level, job.last, out)
        }
    })?;
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&totals.crc.to_le_bytes());
    trailer[4..].copy_from_slice(&(totals.len as u32).to_le_bytes());
    sink.write_all(&trailer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::BLOCK_SIZE;
    use crate::compress::tests::{noise, text};
    use std::time::Duration;

    fn gunzip_single_member(blob: &[u8]) -> Vec<u8> {
        // GzDecoder stops after the first member: decoding everything proves one member.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn gzip_identical_for_any_thread_count_and_timing() {
        let sizes = [
            0,
            1,
            32 << 10,
            BLOCK_SIZE,
            2 * BLOCK_SIZE,
            5 * BLOCK_SIZE + 12_345,
        ];
        for size in sizes {
            let data = text(size, size as u64);
            let mut reference: Option<Vec<u8>> = None;
            for workers in 1..=4 {
                for jitter in 0..2u64 {
                    // jitter 1: blocks finish out of order (earlier blocks sleep longer).
                    let sleep = move |i: u64| {
                        if jitter == 1 {
                            std::thread::sleep(Duration::from_millis((7 - i % 7) * 3));
                        }
                    };
                    // Tiny reads, so block boundaries cannot follow read sizes.
                    let src = Chunked(&data[..], 1 + (workers * 997));
                    let mut out = Vec::new();
                    encode_with(src, &mut out, 6, false, workers, &sleep).unwrap();
                    match &reference {
                        None => {
                            assert_eq!(gunzip_single_member(&out), data, "size {size}");
                            reference = Some(out);
                        }
                        Some(r) => assert!(
                            *r == out,
                            "size {size}: {workers} workers, jitter {jitter} gave other bytes"
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn every_level_round_trips_and_blocks_cost_little_ratio() {
        let data = text(3 * BLOCK_SIZE + 1000, 7);
        for level in 0..=MAX_LEVEL {
            let mut out = Vec::new();
            encode(&data[..], &mut out, level, 3).unwrap();
            assert_eq!(gunzip_single_member(&out), data, "level {level}");
        }
        // Independent 1 MiB blocks cost under 0.5% against one libdeflate stream of the
        // whole input (layer-like text here; measured 0.13%).
        let data = crate::random::text_tar(11, 4 << 20);
        let mut par = Vec::new();
        encode(&data[..], &mut par, 6, 2).unwrap();
        // A gzip member is its raw deflate stream plus 18 bytes.
        let one = crate::compress::libdeflate::deflate(&data, 6, true)
            .unwrap()
            .len()
            + 18;
        assert!(
            (par.len() as f64) < one as f64 * 1.005,
            "parallel {} vs single stream {one}",
            par.len(),
        );
        let e = encode(&data[..], io::sink(), 13, 1).unwrap_err();
        assert!(e.to_string().contains("gzip level 13"), "{e}");
    }

    #[test]
    fn every_kind_of_input_is_one_member_and_the_same_for_any_worker_count() {
        let inputs = [
            Vec::new(),
            b"x".to_vec(),
            text(BLOCK_SIZE, 1),
            text(3 * BLOCK_SIZE + 77, 3),
            noise(2 * BLOCK_SIZE + 3, 5),
        ];
        for data in inputs {
            // Level 13 here stands for igzip (in builds that have it).
            let igzip = FAST_AVAILABLE.then_some(13);
            for level in [0, 1, 4, 6, 9, 12].into_iter().chain(igzip) {
                let mut reference = None;
                for workers in 1..=3 {
                    let mut out = Vec::new();
                    let src = Chunked(&data[..], 4099 * workers);
                    if level == 13 {
                        encode_igzip(src, &mut out, workers).unwrap();
                    } else {
                        encode(src, &mut out, level, workers).unwrap();
                    }
                    assert_eq!(
                        gunzip_single_member(&out),
                        data,
                        "level {level}, len {}",
                        data.len()
                    );
                    match &reference {
                        None => reference = Some(out),
                        Some(r) => assert!(*r == out, "{workers} workers gave other bytes"),
                    }
                }
            }
        }
    }

    #[test]
    fn read_errors_surface_and_workers_stop() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(b'a');
                self.0 -= n;
                Ok(n)
            }
        }
        let e = encode(Failing(3 * BLOCK_SIZE + 5), io::sink(), 6, 2).unwrap_err();
        assert!(e.to_string().contains("disk on fire"));
        struct FullDisk;
        impl Write for FullDisk {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("no space"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = text(3 * BLOCK_SIZE, 1);
        assert!(encode(&data[..], FullDisk, 1, 2).is_err());
    }

    /// The encoder's bytes are part of hoist's contract: cached and pushed blobs keep their
    /// digests from one version to the next (the cache keys `gzip.2-N` and `gzip.4-1`
    /// promise it; see `Encoding::key`). Levels other than 1 were written by the encoder
    /// that first produced `gzip.2` (stock libdeflate, then a deflate scanner to clear the
    /// final bit); level 1 by the double-fast parser with 16-bit table entries
    /// (`gzip.4-1`). Any change to the output shows here, and needs a new key.
    #[test]
    fn output_bytes_are_stable_across_versions() {
        use sha2::Digest as _;
        let inputs = [
            Vec::new(),
            b"x".to_vec(),
            text(BLOCK_SIZE, 1),
            text(3 * BLOCK_SIZE + 77, 3),
            crate::random::text_tar(11, 2 * BLOCK_SIZE as u64 + 5),
            noise(2 * BLOCK_SIZE + 3, 5),
        ];
        let mut got = Vec::new();
        for level in [0, 1, 2, 6, 9, 12] {
            let mut h = sha2::Sha256::new();
            for data in &inputs {
                let mut out = Vec::new();
                encode(&data[..], &mut out, level, 2).unwrap();
                h.update((out.len() as u64).to_le_bytes());
                h.update(&out);
            }
            got.push(format!("{level}:{}", hex::encode(h.finalize())));
        }
        let want = [
            "0:e32f9ab96a3e4d4e8710e8d3d34de01c30d93e438e646e3231d0a7cfaf35e0bc",
            "1:1353a4e634108725bf82931196b808b6077b88c90079499f0a2dc4de57318a6f",
            "2:e8ad3418cb497eef2d0fda275b6052caeba891fd750a36349329f24019132c97",
            "6:79c13aade560cce7d0a4a4a0094c24ee3055805ceb56d64f96c1d0033646be47",
            "9:8dbeedeff585afa76a3e1b0ead54ea5f586bfe5c03832cd50cd652e2fe783c03",
            "12:9acc9300dd16e3da04b9e322e9bbb1fd7968e63c9ac74ca781cc320df0bdfcd1",
        ];
        assert_eq!(got, want);
    }

    /// A reader that returns at most `.1` bytes per read.
    struct Chunked<'a>(&'a [u8], usize);
    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
}
