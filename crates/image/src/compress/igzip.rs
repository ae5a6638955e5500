//! ISA-L's igzip (stateless, level 3: its best), the opt-in fast gzip: as small as
//! libdeflate's level 1 and about 1.5x as fast, but its bytes depend on the CPU family (see
//! [`super::gzip::encode_igzip`]). The only unsafe code in hoist: one FFI call.

#![allow(unsafe_code)]

use std::io;

use isal_sys::igzip_lib as ig;

/// Compress `data` into a raw deflate piece. With `last`, a complete stream (its last block
/// final); otherwise non-final blocks ending byte-aligned (igzip's full flush), which the
/// next piece continues. The bytes depend only on `data` and `last`.
pub(crate) fn deflate(data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let avail_in = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "igzip: block over 4 GiB"))?;
    let mut level_buf = vec![0u8; ig::ISAL_DEF_LVL3_DEFAULT as usize];
    // Stored blocks are the worst case: 5 bytes of header per 64 KiB, plus the headers.
    let mut out = vec![0u8; data.len() + data.len() / 1024 + 1024];
    let mut stream = std::mem::MaybeUninit::<ig::isal_zstream>::zeroed();
    // SAFETY: isal_deflate_stateless_init initialises the whole struct it is given (a
    // zeroed, properly aligned isal_zstream).
    let mut s = unsafe {
        ig::isal_deflate_stateless_init(stream.as_mut_ptr());
        stream.assume_init()
    };
    s.level = 3;
    s.level_buf = level_buf.as_mut_ptr();
    s.level_buf_size = level_buf.len() as u32;
    s.gzip_flag = ig::IGZIP_DEFLATE as u16;
    s.end_of_stream = u16::from(last);
    s.flush = if last { ig::NO_FLUSH } else { ig::FULL_FLUSH } as u16;
    // igzip only reads through next_in.
    s.next_in = data.as_ptr().cast_mut();
    s.avail_in = avail_in;
    s.next_out = out.as_mut_ptr();
    s.avail_out = out.len() as u32;
    // SAFETY: `s` points at `data` (read only), `out` and `level_buf` with their true
    // lengths; all three outlive the call, and nothing else aliases them during it.
    let rc = unsafe { ig::isal_deflate_stateless(&mut s) };
    if rc != ig::COMP_OK as i32 || s.avail_in != 0 {
        return Err(io::Error::other(format!(
            "igzip: stateless deflate failed (code {rc}, {} bytes left)",
            s.avail_in
        )));
    }
    let n = s.total_out as usize;
    drop(level_buf);
    out.truncate(n);
    Ok(out)
}
