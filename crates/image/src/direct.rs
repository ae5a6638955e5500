//! File I/O past the page cache (O_DIRECT, on Linux) for blobs that are written once and
//! then read once or twice: sealed layers in the content cache, read back by an upload.
//!
//! Through the page cache, every byte written lands in a page the kernel has to find,
//! fill and later write back, and reading it back copies it once more. Where free memory
//! is expensive to touch (in a VM whose free pages go back to the host, a page the guest
//! touches again costs a fault on the host: measured 0.3-0.4 CPU-s per 168 MB written
//! after a pause of a few seconds, against 0.015 CPU-s with O_DIRECT), that was 6-10% of
//! a cold push's CPU, and most of it for incompressible layers.
//!
//! O_DIRECT needs buffers, lengths and file offsets aligned to the device's logical block
//! size: bytes go through one aligned [`IO_BUF`] buffer, reused for the whole file. A
//! file system that refuses O_DIRECT (tmpfs) or one of its writes gets plain I/O, and the
//! end of a file that is not a whole number of blocks is written plainly.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The block alignment O_DIRECT I/O uses; 4 KiB covers every common device.
const ALIGN: usize = 4096;
/// Bytes per direct read or write.
pub(crate) const IO_BUF: usize = 1 << 20;

/// An aligned [`IO_BUF`] window into a plain vector (no unsafe: the vector is over-sized
/// and the window starts at its first aligned byte).
struct Aligned {
    buf: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new() -> Aligned {
        let buf = vec![0u8; IO_BUF + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Aligned { buf, start }
    }
    fn get(&self) -> &[u8] {
        &self.buf[self.start..self.start + IO_BUF]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + IO_BUF]
    }
}

/// `path` opened with O_DIRECT (for writing or reading), or `None` where that is refused
/// or not a thing (outside Linux).
fn open_direct(path: &Path, write: bool) -> Option<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(!write)
            .write(write)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, write);
        None
    }
}

/// Writes a new file from its start: whole buffers with O_DIRECT where the file system
/// takes them, the rest with plain writes. Call [`DirectWriter::finish`] at the end: until
/// then up to [`IO_BUF`] bytes are only buffered.
pub(crate) struct DirectWriter<'a> {
    /// The file, for plain writes; positioned at `offset` when `direct` is `None`.
    plain: &'a mut File,
    direct: Option<File>,
    buf: Option<Aligned>,
    filled: usize,
    /// Bytes in the file so far.
    offset: u64,
}

impl<'a> DirectWriter<'a> {
    /// A writer for `plain`, a new, empty file at `path`.
    pub(crate) fn new(plain: &'a mut File, path: &Path) -> DirectWriter<'a> {
        let direct = open_direct(path, true);
        let buf = direct.as_ref().map(|_| Aligned::new());
        DirectWriter {
            plain,
            direct,
            buf,
            filled: 0,
            offset: 0,
        }
    }

    fn flush_direct(&mut self) -> io::Result<()> {
        let (Some(d), Some(buf)) = (&mut self.direct, &self.buf) else {
            return Ok(());
        };
        match d.write_all(buf.get()) {
            Ok(()) => {
                self.offset += IO_BUF as u64;
                self.filled = 0;
                Ok(())
            }
            // Refused (an alignment this file system does not take): plain writes from
            // here on, starting with the buffer (a partial direct write is overwritten).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(error = %e, "O_DIRECT write refused; using plain writes");
                self.direct = None;
                self.write_plain_tail()
            }
            Err(e) => Err(e),
        }
    }

    /// Write what is buffered with a plain write at `offset`.
    fn write_plain_tail(&mut self) -> io::Result<()> {
        if let Some(buf) = &self.buf
            && self.filled > 0
        {
            self.plain.seek(SeekFrom::Start(self.offset))?;
            self.plain.write_all(&buf.get()[..self.filled])?;
            self.offset += self.filled as u64;
            self.filled = 0;
        }
        Ok(())
    }

    /// Write out what is buffered: every byte is in the file afterwards.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.write_plain_tail()
    }
}

impl Write for DirectWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(buf) = &mut self.buf else {
            return self.plain.write(data);
        };
        if self.direct.is_none() {
            // Direct writes were refused and the buffer written out: plain from here on.
            return self.plain.write(data);
        }
        let n = data.len().min(IO_BUF - self.filled);
        buf.get_mut()[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        if self.filled == IO_BUF {
            self.flush_direct()?;
        }
        Ok(n)
    }

    /// Nothing to do: buffered bytes go out when the buffer is full or at
    /// [`DirectWriter::finish`] (a partial block cannot be written directly).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a file from its start with O_DIRECT where the file system takes it, through one
/// aligned buffer; plain reads otherwise.
pub(crate) fn open(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let plain = File::open(path)?;
    Ok(match open_direct(path, false) {
        Some(direct) => Box::new(DirectReader {
            plain,
            direct: Some(direct),
            buf: Aligned::new(),
            pos: 0,
            len: 0,
            offset: 0,
        }),
        None => Box::new(plain),
    })
}

struct DirectReader {
    /// For plain reads after a refused or short direct one.
    plain: File,
    direct: Option<File>,
    buf: Aligned,
    /// Unread bytes are `buf[pos..len]`.
    pos: usize,
    len: usize,
    /// File offset just past `buf[..len]`.
    offset: u64,
}

impl Read for DirectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.len {
            let Some(d) = &mut self.direct else {
                return self.plain.read(out);
            };
            match d.read(self.buf.get_mut()) {
                Ok(n) => {
                    self.pos = 0;
                    self.len = n;
                    self.offset += n as u64;
                    if n % ALIGN != 0 {
                        // The end of the file (or a short read): the offset is no longer
                        // aligned, so any further bytes come by plain reads.
                        self.direct = None;
                        self.plain.seek(SeekFrom::Start(self.offset))?;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct = None;
                    self.plain.seek(SeekFrom::Start(self.offset))?;
                    return self.plain.read(out);
                }
                Err(e) => return Err(e),
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf.get()[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size around the buffer and block boundaries writes and reads back the same
    /// bytes, on the temp dir's file system (O_DIRECT or not) and on one without it.
    #[test]
    fn round_trip_at_every_boundary() {
        let dirs = [Some(tempfile::tempdir().unwrap()), None];
        let sizes = [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            IO_BUF - 1,
            IO_BUF,
            IO_BUF + 1,
            3 * IO_BUF + 12_345,
        ];
        for dir in &dirs {
            let shm;
            let root = match dir {
                Some(d) => d.path(),
                None if Path::new("/dev/shm").is_dir() => {
                    shm = tempfile::tempdir_in("/dev/shm").unwrap();
                    shm.path()
                }
                None => continue,
            };
            for size in sizes {
                let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
                let path = root.join(format!("f{size}"));
                let mut f = File::create(&path).unwrap();
                let mut w = DirectWriter::new(&mut f, &path);
                // Odd write sizes, so writes straddle the buffer's end.
                for chunk in data.chunks(300_007) {
                    w.write_all(chunk).unwrap();
                }
                w.finish().unwrap();
                drop(f);
                assert_eq!(std::fs::read(&path).unwrap(), data, "size {size}");
                let mut back = Vec::new();
                let mut r = open(&path).unwrap();
                // Small reads, so reads straddle the buffer's end too.
                let mut piece = vec![0u8; 65_537];
                loop {
                    let n = r.read(&mut piece).unwrap();
                    if n == 0 {
                        break;
                    }
                    back.extend_from_slice(&piece[..n]);
                }
                assert!(back == data, "size {size} read back differs");
            }
        }
    }
}
