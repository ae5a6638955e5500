//! An upload's data file: bytes appended as they arrive, with O_DIRECT where the file system
//! takes it, and the running sha256 of everything written.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use bytes::Bytes;
use hoist_image::{Algorithm, Hasher};

/// Read/write buffer for blob bodies.
pub(super) const IO_BUF: usize = 1 << 20;

/// Hash the first `len` bytes of `path`.
pub(super) fn hash_file(path: &Path, len: u64, alg: Algorithm) -> io::Result<Hasher> {
    let mut f = File::open(path)?.take(len);
    let mut h = alg.hasher();
    let mut buf = vec![0u8; IO_BUF];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h)
}

/// O_DIRECT needs buffers, lengths and file offsets aligned to the device's logical block
/// size; 4 KiB covers every common one.
const DIRECT_ALIGN: usize = 4096;

/// Appends an upload's bytes to its data file at `offset`.
///
/// Bytes are gathered into one aligned [`IO_BUF`] buffer, reused for the whole request, and
/// written a buffer at a time with O_DIRECT where the file system allows it (the buffer is
/// given back while the client pauses, keeping only the unaligned tail, so a client that
/// trickles costs a few KiB, not a MiB): the data goes
/// from that buffer to the disk without a copy into the page cache (which, for a blob that
/// is written once and read later, costs CPU for nothing: page allocation, the copy, dirty
/// tracking, writeback). What is not a whole number of blocks at the end (or all of it when
/// the file does not end on a block boundary, or O_DIRECT is refused) is written normally.
/// The commit's fsync still makes the blob durable.
pub(super) struct DataWriter {
    /// Positioned at `offset` when `direct` is `None`.
    file: File,
    /// Positioned at `offset` when there.
    direct: Option<File>,
    /// [`IO_BUF`] bytes from `start` (aligned), or, while the client pauses, only the bytes
    /// waiting (fewer than a block; `start` 0).
    buf: Vec<u8>,
    /// Where the aligned part of `buf` starts.
    start: usize,
    /// Bytes waiting in the buffer.
    filled: usize,
    /// File offset of the buffer's first byte: bytes written so far.
    pub(super) offset: u64,
}

impl DataWriter {
    pub(super) fn new(mut file: File, path: &Path, offset: u64) -> io::Result<DataWriter> {
        let mut direct = if offset % DIRECT_ALIGN as u64 == 0 {
            open_direct(path)
        } else {
            None
        };
        match &mut direct {
            Some(d) => d.seek(SeekFrom::Start(offset))?,
            None => file.seek(SeekFrom::Start(offset))?,
        };
        Ok(DataWriter {
            file,
            direct,
            buf: Vec::new(),
            start: 0,
            filled: 0,
            offset,
        })
    }

    /// The full aligned buffer, with what was waiting in a small one.
    fn full_buffer(&mut self) {
        if self.buf.len() >= IO_BUF {
            return;
        }
        let mut buf = vec![0u8; IO_BUF + DIRECT_ALIGN];
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        buf[start..start + self.filled].copy_from_slice(&self.buf[..self.filled]);
        self.buf = buf;
        self.start = start;
    }

    pub(super) fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.direct.is_none() {
                // Plain writes (from the start, or since a refused direct write, which
                // wrote out everything buffered).
                self.file.write_all(data)?;
                self.offset += data.len() as u64;
                return Ok(());
            }
            self.full_buffer();
            let n = data.len().min(IO_BUF - self.filled);
            let at = self.start + self.filled;
            self.buf[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == IO_BUF {
                self.flush_direct(IO_BUF)?;
            }
        }
        Ok(())
    }

    /// Write the first `n` (aligned) buffered bytes with O_DIRECT.
    fn flush_direct(&mut self, n: usize) -> io::Result<()> {
        let Some(d) = &mut self.direct else {
            return Ok(());
        };
        match d.write_all(&self.buf[self.start..self.start + n]) {
            Ok(()) => {
                self.offset += n as u64;
                self.buf
                    .copy_within(self.start + n..self.start + self.filled, self.start);
                self.filled -= n;
            }
            // A file system that takes the O_DIRECT open but not the write (an alignment
            // it does not support): plain writes from here on, starting with everything
            // buffered (a partial direct write is overwritten).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(error = %e, "O_DIRECT write refused; using plain writes");
                self.direct = None;
                self.file.seek(SeekFrom::Start(self.offset))?;
                self.file
                    .write_all(&self.buf[self.start..self.start + self.filled])?;
                self.offset += self.filled as u64;
                self.filled = 0;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Make every byte received so far visible in the file (the client paused) without giving
    /// up alignment: whole blocks go out with O_DIRECT; the rest is written normally but stays
    /// buffered, to be written again, aligned, with what follows.
    pub(super) fn show(&mut self) -> io::Result<()> {
        let whole = self.filled / DIRECT_ALIGN * DIRECT_ALIGN;
        if whole > 0 {
            self.flush_direct(whole)?;
        }
        // Only direct mode buffers: with plain writes `filled` stays 0.
        if self.filled > 0 {
            let (a, b) = (self.start, self.start + self.filled);
            self.file.seek(SeekFrom::Start(self.offset))?;
            self.file.write_all(&self.buf[a..b])?;
        }
        // Fewer than a block wait now: keep those, give the big buffer back.
        if self.buf.len() >= IO_BUF {
            self.buf = self.buf[self.start..self.start + self.filled].to_vec();
            self.start = 0;
        }
        Ok(())
    }

    /// Write out what is buffered: as [`DataWriter::show`], and the tail written there is
    /// final.
    pub(super) fn finish(&mut self) -> io::Result<()> {
        self.show()?;
        self.offset += self.filled as u64;
        self.filled = 0;
        Ok(())
    }
}

/// An append in progress: the data file's writer and the running sha256 of every byte the
/// session holds. Moved to a blocking thread for each batch of bytes, and back.
pub(super) struct Appender {
    pub(super) writer: DataWriter,
    pub(super) hasher: Hasher,
}

impl Appender {
    /// Hash and write `blocks`; with `pause`, make every byte so far visible in the file
    /// (the client paused, and a status request should see what arrived).
    pub(super) fn write(&mut self, blocks: &[Bytes], pause: bool) -> io::Result<()> {
        for b in blocks {
            self.hasher.update(b);
            self.writer.write(b)?;
        }
        if pause {
            self.writer.show()?;
        }
        Ok(())
    }
}

/// `path` opened for writing with O_DIRECT, or `None` where that is refused (tmpfs, for one)
/// or not a thing (outside Linux).
fn open_direct(path: &Path) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Pseudo-random bytes, so a misplaced block shows.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Requests of these sizes, each split into pieces of `piece` bytes, appended one after
    /// the other as consecutive PATCHes would: the file holds exactly the bytes, in order,
    /// whether a request starts on a block boundary (O_DIRECT, where the file system takes
    /// it) or not (plain writes), and whatever its tail.
    #[test]
    fn data_writer_appends_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data");
        let cases: &[(&[usize], usize)] = &[
            (&[IO_BUF * 2 + 4096, 10], 100_000),
            (&[IO_BUF + 1, 4096, IO_BUF, 0, 3 * 4096 + 5], 32 << 10),
            (&[1, IO_BUF * 3], IO_BUF + 7),
            (&[4095, 1, IO_BUF - 4096, 5000], 4096),
        ];
        for (seed, (requests, piece)) in cases.iter().enumerate() {
            File::create(&p).unwrap();
            let mut want = Vec::new();
            for (i, &n) in requests.iter().enumerate() {
                let data = bytes(n, (seed * 100 + i) as u64);
                let f = OpenOptions::new().write(true).open(&p).unwrap();
                let mut w = DataWriter::new(f, &p, want.len() as u64).unwrap();
                for (k, c) in data.chunks(*piece).enumerate() {
                    w.write(c).unwrap();
                    if k % 3 == 1 {
                        // A pause: everything so far is in the file.
                        w.show().unwrap();
                        let so_far = want.len() + (k + 1) * piece;
                        assert_eq!(
                            fs::metadata(&p).unwrap().len(),
                            so_far.min(want.len() + n) as u64
                        );
                    }
                }
                w.finish().unwrap();
                want.extend_from_slice(&data);
                assert_eq!(w.offset, want.len() as u64);
                assert!(fs::read(&p).unwrap() == want, "case {seed}, request {i}");
            }
        }
    }

    /// A file system that accepts the O_DIRECT open but refuses a write (here: a buffer
    /// made misaligned on purpose) falls back to plain writes, keeping every byte.
    #[test]
    fn data_writer_falls_back_when_direct_writes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data");
        File::create(&p).unwrap();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        let mut w = DataWriter::new(f, &p, 0).unwrap();
        if w.direct.is_none() {
            // No O_DIRECT here (tmpfs): nothing to fall back from.
            return;
        }
        w.full_buffer();
        w.start += 1;
        let data = bytes(2 * IO_BUF + 123, 9);
        for c in data.chunks(50_000) {
            w.write(c).unwrap();
        }
        w.finish().unwrap();
        assert!(
            w.direct.is_none(),
            "the refused write switched to plain writes"
        );
        assert!(fs::read(&p).unwrap() == data);
    }
}
