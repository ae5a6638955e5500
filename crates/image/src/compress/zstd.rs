//! zstd through libzstd's multithreaded mode.

use std::io::{self, Read, Write};

/// The highest zstd level.
pub const MAX_LEVEL: u32 = 22;

/// Compress `src` to `sink` as one zstd frame with `workers` threads (at least 2).
///
/// libzstd's multithreaded output is the same for every worker count from 2 up, but its
/// single-thread mode (0 workers) gives other bytes, and 1 worker was measured to vary from
/// run to run on incompressible data. So hoist always asks for 2 workers or more: the
/// digest of a zstd layer does not depend on the machine.
pub fn encode<R: Read, W: Write>(
    mut src: R,
    sink: W,
    level: u32,
    workers: usize,
) -> io::Result<()> {
    if !(1..=MAX_LEVEL).contains(&level) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("zstd level {level} is out of range (expected 1..={MAX_LEVEL})"),
        ));
    }
    let mut enc = zstd::stream::write::Encoder::new(sink, level as i32)?;
    enc.multithread(workers.max(2) as u32)?;
    // Large reads: fewer calls into libzstd, which copies into its own job buffers anyway.
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        enc.write_all(&buf[..n])?;
    }
    enc.finish()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::tests::{noise, text};

    #[test]
    fn zstd_identical_for_2_to_4_workers() {
        // Text, and incompressible bytes (where 1 worker was seen to vary).
        for data in [text(9 << 20, 5), noise(3 << 20, 17)] {
            let mut reference = None;
            for workers in [0, 1, 2, 3, 4] {
                let mut out = Vec::new();
                encode(&data[..], &mut out, 3, workers).unwrap();
                match &reference {
                    None => {
                        assert_eq!(zstd::decode_all(&out[..]).unwrap(), data);
                        reference = Some(out);
                    }
                    Some(r) => assert!(*r == out, "{workers} workers gave other bytes"),
                }
            }
        }
        assert!(encode(&b"x"[..], io::sink(), 23, 2).is_err());
        assert!(encode(&b"x"[..], io::sink(), 0, 2).is_err());
    }
}
