//! zstd through libzstd's multithreaded mode, with compression contexts kept for reuse.

use std::io::{self, Read, Write};
use std::sync::Mutex;

use zstd::zstd_safe::{self, CCtx, CParameter, InBuffer, OutBuffer, ResetDirective};

/// The highest zstd level.
pub const MAX_LEVEL: u32 = 22;

/// Contexts kept between layers (at most this many: one per layer sealed at once, see
/// [`crate::pipeline::SEAL_JOBS`]). A multithreaded context owns its worker threads and
/// about 45 MiB of job buffers at level 3; a fresh one per layer paid for new threads and
/// for faulting in every buffer page again (the kernel's page-fault and page-clearing work
/// was 4% of `hoist copy --compression zstd`'s CPU on text).
const KEPT_CONTEXTS: usize = 2;
static CONTEXTS: Mutex<Vec<CCtx<'static>>> = Mutex::new(Vec::new());

/// Input read per call (libzstd copies it into its job buffers).
const READ_SIZE: usize = 1 << 20;
/// Output gathered before it is written: the size of the sinks' own buffers (a layout's
/// `BufWriter`, the cache's direct writes), so a write goes past a `BufWriter` instead of
/// being copied into it. libzstd's suggested 128 KiB pieces were copied once more on the
/// way to every file.
const WRITE_SIZE: usize = 1 << 20;

fn zstd_err(what: &str, code: usize) -> io::Error {
    io::Error::other(format!("zstd {what}: {}", zstd_safe::get_error_name(code)))
}

/// Compress `src` to `sink` as one zstd frame with `workers` threads (at least 2).
///
/// libzstd's multithreaded output is the same for every worker count from 2 up, but its
/// single-thread mode (0 workers) gives other bytes, and 1 worker was measured to vary from
/// run to run on incompressible data. So hoist always asks for 2 workers or more: the
/// digest of a zstd layer does not depend on the machine.
pub fn encode<R: Read, W: Write>(
    mut src: R,
    mut sink: W,
    level: u32,
    workers: usize,
) -> io::Result<()> {
    if !(1..=MAX_LEVEL).contains(&level) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("zstd level {level} is out of range (expected 1..={MAX_LEVEL})"),
        ));
    }
    let kept = CONTEXTS.lock().ok().and_then(|mut v| v.pop());
    let mut cctx = match kept {
        Some(c) => c,
        None => CCtx::try_create().ok_or_else(|| io::Error::other("zstd: out of memory"))?,
    };
    let workers = workers.max(2).min(i32::MAX as usize) as u32;
    cctx.reset(ResetDirective::SessionAndParameters)
        .map_err(|c| zstd_err("reset", c))?;
    cctx.set_parameter(CParameter::CompressionLevel(level as i32))
        .map_err(|c| zstd_err("level", c))?;
    cctx.set_parameter(CParameter::NbWorkers(workers))
        .map_err(|c| zstd_err("workers", c))?;
    let mut input = vec![0u8; READ_SIZE];
    let mut output = vec![0u8; WRITE_SIZE];
    // Bytes of `output` filled and not yet written.
    let mut filled = 0;
    loop {
        let n = match src.read(&mut input) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut inb = InBuffer::around(&input[..n]);
        while inb.pos() < n {
            let before = inb.pos();
            let mut outb = OutBuffer::around_pos(&mut output[..], filled);
            cctx.compress_stream2(
                &mut outb,
                &mut inb,
                zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_continue,
            )
            .map_err(|c| zstd_err("compress", c))?;
            filled = outb.pos();
            // Written when full, or when libzstd took no input (it waits for room).
            if filled == WRITE_SIZE || (inb.pos() == before && filled > 0) {
                sink.write_all(&output[..filled])?;
                filled = 0;
            }
        }
    }
    loop {
        let mut outb = OutBuffer::around_pos(&mut output[..], filled);
        let left = cctx
            .end_stream(&mut outb)
            .map_err(|c| zstd_err("end of frame", c))?;
        filled = outb.pos();
        if left == 0 || filled == WRITE_SIZE {
            sink.write_all(&output[..filled])?;
            filled = 0;
        }
        if left == 0 {
            break;
        }
    }
    sink.flush()?;
    // Only a context whose frame ended cleanly is kept (one that failed is dropped).
    if let Ok(mut v) = CONTEXTS.lock()
        && v.len() < KEPT_CONTEXTS
    {
        v.push(cctx);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::tests::{noise, text};

    #[test]
    fn zstd_identical_for_2_to_4_workers() {
        // Text, and incompressible bytes (where 1 worker was seen to vary); each worker
        // count runs twice, the second time on a kept context.
        for data in [text(9 << 20, 5), noise(3 << 20, 17)] {
            let mut reference = None;
            for workers in [0, 1, 2, 3, 4, 2, 4] {
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
