//! Deterministic block-parallel gzip (pigz's scheme) on zlib-rs, and the opt-in
//! multi-member fast mode on libdeflate.

use std::io::{self, Read, Write};

use flate2::{Compress, FlushCompress, Status};

use super::blocks::{self, Job};

/// The highest gzip level.
pub const MAX_LEVEL: u32 = 9;
/// The highest level of the libdeflate fast mode.
pub const MAX_FAST_LEVEL: u32 = 12;

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

/// Compress one block to raw deflate with a fresh compressor primed with `job.dict`: a
/// sync flush ends every block but the last (byte-aligned, so blocks concatenate), the
/// last ends the stream. A fresh state per block makes the bytes depend on nothing but
/// the block, its dictionary and the level.
fn deflate_block(level: u32, job: &Job) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !job.dict.is_empty() {
        c.set_dictionary(&job.dict).map_err(io::Error::other)?;
    }
    let data = &job.data[..];
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    // deflate's worst case is a little over the input (stored blocks); start there so one
    // call is the rule.
    let mut out = Vec::with_capacity(data.len() + (data.len() >> 10) + 1024);
    let mut consumed = 0usize;
    loop {
        let before = c.total_in();
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        consumed += (c.total_in() - before) as usize;
        let done = if job.last {
            status == Status::StreamEnd
        } else {
            consumed == data.len() && out.len() < out.capacity()
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64 << 10));
    }
}

/// Compress `src` to `sink` as one ordinary gzip member, in [`blocks::BLOCK_SIZE`] blocks
/// on `workers` threads. The output bytes depend only on the input and `level` (0..=9).
pub fn encode<R: Read, W: Write>(src: R, sink: W, level: u32, workers: usize) -> io::Result<()> {
    encode_with(src, sink, level, workers, &|_| {})
}

/// [`encode`], calling `before_block(index)` on the worker before each block (tests use it
/// to vary the timing).
fn encode_with<R: Read, W: Write>(
    src: R,
    mut sink: W,
    level: u32,
    workers: usize,
    before_block: &(dyn Fn(u64) + Sync),
) -> io::Result<()> {
    check_level(level, MAX_LEVEL)?;
    sink.write_all(&header(level))?;
    let totals = blocks::run(src, &mut sink, workers, |job| {
        before_block(job.index);
        deflate_block(level, job)
    })?;
    let mut trailer = [0u8; 8];
    trailer[..4].copy_from_slice(&totals.crc.to_le_bytes());
    trailer[4..].copy_from_slice(&(totals.len as u32).to_le_bytes());
    sink.write_all(&trailer)
}

/// The fast mode: each block is compressed by libdeflate into a gzip member of its own
/// (no dictionary), and the members are concatenated. Valid gzip (RFC 1952 allows any
/// number of members) that every multi-member reader accepts — but readers that stop after
/// the first member (flate2's `GzDecoder`, some old tools) see only the first MiB. hoist
/// reads gzip with `MultiGzDecoder` everywhere. Levels 0..=12.
pub fn encode_fast<R: Read, W: Write>(
    src: R,
    sink: W,
    level: u32,
    workers: usize,
) -> io::Result<()> {
    check_level(level, MAX_FAST_LEVEL)?;
    let lvl = libdeflater::CompressionLvl::new(level as i32)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad libdeflate level"))?;
    blocks::run(src, sink, workers, |job| {
        // An empty final block after full ones adds nothing; an empty input still
        // needs one member to be a gzip file.
        if job.data.is_empty() && job.index > 0 {
            return Ok(Vec::new());
        }
        let mut c = libdeflater::Compressor::new(lvl);
        let mut out = vec![0; c.gzip_compress_bound(job.data.len())];
        let n = c
            .gzip_compress(&job.data, &mut out)
            .map_err(|e| io::Error::other(format!("libdeflate: {e:?}")))?;
        out.truncate(n);
        Ok(out)
    })?;
    Ok(())
}

fn check_level(level: u32, max: u32) -> io::Result<()> {
    if level > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("gzip level {level} is out of range (expected 0..={max})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::tests::text;
    use crate::compress::{BLOCK_SIZE, DICT_SIZE};
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
            DICT_SIZE - 1,
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
                    encode_with(src, &mut out, 6, workers, &sleep).unwrap();
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
    fn every_level_round_trips_and_blocks_use_the_dictionary() {
        let data = text(3 * BLOCK_SIZE + 1000, 7);
        for level in 0..=MAX_LEVEL {
            let mut out = Vec::new();
            encode(&data[..], &mut out, level, 3).unwrap();
            assert_eq!(gunzip_single_member(&out), data, "level {level}");
        }
        // The dictionary matters: the parallel output is within 1% of one zlib stream.
        let mut par = Vec::new();
        encode(&data[..], &mut par, 6, 2).unwrap();
        let mut one = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        one.write_all(&data).unwrap();
        let one = one.finish().unwrap();
        assert!(
            (par.len() as f64) < one.len() as f64 * 1.01,
            "parallel {} vs single stream {}",
            par.len(),
            one.len()
        );
        assert!(encode(&data[..], io::sink(), 10, 1).is_err());
    }

    #[test]
    fn fast_mode_is_deterministic_multi_member_gzip() {
        let data = text(3 * BLOCK_SIZE + 77, 3);
        let mut reference = None;
        for workers in 1..=3 {
            let mut out = Vec::new();
            encode_fast(&data[..], &mut out, 6, workers).unwrap();
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
            // The caveat, proven: a single-member reader sees only the first block.
            assert_eq!(gunzip_single_member(&out).len(), BLOCK_SIZE);
            match &reference {
                None => reference = Some(out),
                Some(r) => assert!(*r == out, "{workers} workers gave other bytes"),
            }
        }
        for data in [Vec::new(), vec![b'x'; 10]] {
            let mut out = Vec::new();
            encode_fast(&data[..], &mut out, 1, 2).unwrap();
            assert_eq!(gunzip_single_member(&out), data);
        }
        assert!(encode_fast(&data[..], io::sink(), 13, 1).is_err());
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
