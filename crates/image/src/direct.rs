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
//! size: bytes go through aligned [`IO_BUF`] buffers, reused for the whole file (two for
//! a writer, whose direct writes a thread makes; one for a reader). A file system that
//! refuses O_DIRECT (tmpfs) or one of its writes gets plain I/O, and the end of a file
//! that is not a whole number of blocks is written plainly.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

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
/// takes them, the rest with plain writes. Direct writes wait for the device, so they are
/// made by a writer thread while the caller fills the next buffer (two buffers in all):
/// a sealing pass goes on compressing meanwhile instead of waiting for the disk. Call
/// [`DirectWriter::finish`] at the end: until then up to two buffers are only in memory.
pub(crate) struct DirectWriter<'a> {
    /// The file, for plain writes.
    plain: &'a mut File,
    /// The buffer being filled, when direct writes are on.
    buf: Option<Aligned>,
    filled: usize,
    /// Bytes handed to the writer thread (or written) so far: where `buf` starts.
    offset: u64,
    bg: Option<Background>,
}

/// The writer thread of a [`DirectWriter`] and its channels.
struct Background {
    /// Full buffers and their file offsets.
    full: SyncSender<(Aligned, u64)>,
    /// Buffers the thread has written, for reuse.
    empty: Receiver<Aligned>,
    /// Buffers made so far (at most 2).
    made: usize,
    thread: std::thread::JoinHandle<io::Result<()>>,
}

impl<'a> DirectWriter<'a> {
    /// A writer for `plain`, a new, empty file at `path`.
    pub(crate) fn new(plain: &'a mut File, path: &Path) -> DirectWriter<'a> {
        let bg = match (open_direct(path, true), plain.try_clone()) {
            (Some(direct), Ok(fallback)) => Some(Background::start(direct, fallback)),
            _ => None,
        };
        DirectWriter {
            plain,
            buf: bg.as_ref().map(|_| Aligned::new()),
            filled: 0,
            offset: 0,
            bg,
        }
    }

    /// Hand the full buffer to the writer thread and take an empty one.
    fn hand_off(&mut self) -> io::Result<()> {
        let (Some(bg), Some(full)) = (&mut self.bg, self.buf.take()) else {
            return Ok(());
        };
        if bg.full.send((full, self.offset)).is_err() {
            return Err(self.stop());
        }
        self.offset += IO_BUF as u64;
        self.filled = 0;
        let next = match bg.empty.try_recv() {
            Ok(b) => b,
            Err(_) if bg.made < 2 => {
                bg.made += 1;
                Aligned::new()
            }
            Err(_) => match bg.empty.recv() {
                Ok(b) => b,
                Err(_) => return Err(self.stop()),
            },
        };
        self.buf = Some(next);
        Ok(())
    }

    /// Wait for the writer thread to end; its error, or a generic one.
    fn stop(&mut self) -> io::Error {
        match self.bg.take().map(Background::join) {
            Some(Err(e)) => e,
            _ => io::Error::other("the direct-I/O writer thread stopped"),
        }
    }

    /// Write out what is buffered: every byte is in the file afterwards.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if let Some(bg) = self.bg.take() {
            bg.join()?;
        }
        if let Some(buf) = &self.buf
            && self.filled > 0
        {
            self.plain.seek(SeekFrom::Start(self.offset))?;
            self.plain.write_all(&buf.get()[..self.filled])?;
        }
        Ok(())
    }
}

impl Background {
    fn start(mut direct: File, mut fallback: File) -> Background {
        let (full, full_rx) = sync_channel::<(Aligned, u64)>(1);
        let (empty_tx, empty) = sync_channel::<Aligned>(2);
        let thread = std::thread::spawn(move || -> io::Result<()> {
            let mut use_direct = true;
            for (buf, offset) in full_rx {
                if use_direct {
                    match direct.write_all(buf.get()) {
                        Ok(()) => {}
                        // Refused (an alignment this file system does not take): plain
                        // writes from here on, starting with this buffer (a partial
                        // direct write is overwritten).
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            tracing::debug!(error = %e, "O_DIRECT write refused; using plain writes");
                            use_direct = false;
                        }
                        Err(e) => return Err(e),
                    }
                }
                if !use_direct {
                    fallback.seek(SeekFrom::Start(offset))?;
                    fallback.write_all(buf.get())?;
                }
                let _ = empty_tx.try_send(buf);
            }
            Ok(())
        });
        Background {
            full,
            empty,
            made: 1,
            thread,
        }
    }

    fn join(self) -> io::Result<()> {
        drop(self.full);
        match self.thread.join() {
            Ok(r) => r,
            Err(_) => Err(io::Error::other("the direct-I/O writer thread panicked")),
        }
    }
}

impl Write for DirectWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some(buf) = &mut self.buf else {
            return self.plain.write(data);
        };
        let n = data.len().min(IO_BUF - self.filled);
        buf.get_mut()[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        if self.filled == IO_BUF {
            self.hand_off()?;
        }
        Ok(n)
    }

    /// Nothing to do: buffered bytes go out when a buffer is full or at
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
