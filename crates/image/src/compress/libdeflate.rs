//! The deflate compressor: libdeflate 1.26, vendored in `crates/image/libdeflate` with one
//! addition, `libdeflate_deflate_compress_sync` (a stream that ends with a sync flush
//! instead of a final block; see that directory's README). FFI calls only; each worker
//! thread keeps one compressor per level, so a layer does not allocate one per block.

#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::io;
use std::ptr::NonNull;

/// `struct libdeflate_compressor`, opaque.
#[repr(C)]
struct Raw {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn libdeflate_alloc_compressor(level: c_int) -> *mut Raw;
    fn libdeflate_free_compressor(c: *mut Raw);
    fn libdeflate_deflate_compress_bound(c: *mut Raw, in_nbytes: usize) -> usize;
    fn libdeflate_deflate_compress(
        c: *mut Raw,
        input: *const c_void,
        in_nbytes: usize,
        out: *mut c_void,
        out_nbytes_avail: usize,
    ) -> usize;
    fn libdeflate_deflate_compress_sync(
        c: *mut Raw,
        input: *const c_void,
        in_nbytes: usize,
        out: *mut c_void,
        out_nbytes_avail: usize,
    ) -> usize;
}

/// One libdeflate compressor at one level, owned by one thread.
struct Compressor {
    raw: NonNull<Raw>,
    level: u32,
}

impl Compressor {
    fn new(level: u32) -> io::Result<Self> {
        // SAFETY: any level is accepted; out-of-range ones return NULL, handled below.
        let raw = unsafe { libdeflate_alloc_compressor(level as c_int) };
        NonNull::new(raw)
            .map(|raw| Compressor { raw, level })
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("libdeflate: no compressor for level {level} (out of memory or level out of range)"),
                )
            })
    }

    fn compress(&mut self, data: &[u8], last: bool, mut out: Vec<u8>) -> io::Result<Vec<u8>> {
        // SAFETY: `raw` is a live compressor owned by this value.
        let bound = unsafe { libdeflate_deflate_compress_bound(self.raw.as_ptr(), data.len()) };
        // The sync ending needs up to 6 bytes more than the bound.
        let cap = bound + 8;
        out.clear();
        out.reserve(cap);
        let f = if last {
            libdeflate_deflate_compress
        } else {
            libdeflate_deflate_compress_sync
        };
        // SAFETY: `data` is readable for its length; `out` has `cap` bytes of writable
        // (uninitialised) capacity, and libdeflate writes at most `cap` bytes into it, only
        // writing, never reading, them. `raw` is exclusively ours for the call.
        let n = unsafe {
            f(
                self.raw.as_ptr(),
                data.as_ptr().cast(),
                data.len(),
                out.as_mut_ptr().cast(),
                cap,
            )
        };
        if n == 0 {
            return Err(io::Error::other(format!(
                "libdeflate: {} bytes did not fit in {cap}",
                data.len()
            )));
        }
        // SAFETY: libdeflate initialised the first `n` bytes (n <= cap).
        unsafe { out.set_len(n) };
        Ok(out)
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_compressor, freed once.
        unsafe { libdeflate_free_compressor(self.raw.as_ptr()) }
    }
}

thread_local! {
    static CACHED: RefCell<Option<Compressor>> = const { RefCell::new(None) };
}

/// Compress `data` at `level` (0..=12) into raw deflate. With `last`, a complete stream
/// (its last block final); otherwise no block is final and the stream ends byte-aligned
/// with an empty stored block (zlib's sync flush), so the next piece's stream continues
/// it. The bytes depend only on `data`, `level` and `last`.
#[cfg(test)]
pub(crate) fn deflate(data: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    deflate_into(data, level, last, Vec::new())
}

/// [`deflate`] into `out` (emptied first, then grown as needed): the block engine hands
/// back buffers it has written, so a block's output reuses pages already mapped instead
/// of a fresh allocation the allocator may just have returned to the kernel (page faults
/// in the compressor were 0.7% of a cold push's CPU).
pub(crate) fn deflate_into(
    data: &[u8],
    level: u32,
    last: bool,
    out: Vec<u8>,
) -> io::Result<Vec<u8>> {
    CACHED.with(|cell| {
        let mut slot = cell.borrow_mut();
        let c = match slot.take() {
            Some(c) if c.level == level => c,
            _ => Compressor::new(level)?,
        };
        let c = slot.insert(c);
        c.compress(data, last, out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::tests::{noise, text};
    use std::io::Read;

    fn inflate(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(raw)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// A sync piece is the complete stream with its last block made non-final, cut after
    /// that block and followed by the empty stored block; pieces concatenate into one
    /// stream. Checked where the cut falls: mid-byte (dynamic and static blocks), at a byte
    /// boundary (stored blocks, level 0), and for the tiny inputs libdeflate stores.
    #[test]
    fn sync_pieces_continue_and_complete_streams_end() {
        let inputs = [
            Vec::new(),
            b"x".to_vec(),
            b"abcabcabcabcabcabcabcabcabcabc".to_vec(),
            text(70_000, 1),
            text(300_000, 2),
            noise(100_000, 9),
        ];
        for level in [0, 1, 2, 6, 9, 12] {
            for data in &inputs {
                let sync = deflate(data, level, false).unwrap();
                assert_eq!(&sync[sync.len() - 4..], &[0, 0, 0xff, 0xff]);
                let whole = deflate(data, level, true).unwrap();
                assert_eq!(inflate(&whole), *data);
                // sync + a complete stream of other data decodes to both, as one stream.
                let mut joined = sync.clone();
                joined.extend_from_slice(&deflate(b"tail data", level, true).unwrap());
                let mut want = data.clone();
                want.extend_from_slice(b"tail data");
                assert_eq!(
                    inflate(&joined),
                    want,
                    "level {level}, {} bytes",
                    data.len()
                );
                // The complete stream and the sync piece share every byte before the cut
                // but the one holding the last block's BFINAL bit.
                let differing = whole.iter().zip(&sync).filter(|(a, b)| a != b).count();
                assert!(differing <= 3, "level {level}: {differing} bytes differ");
            }
        }
        let e = Compressor::new(13).err().expect("level 13 is refused");
        assert!(e.to_string().contains("level 13"), "{e}");
    }
}
