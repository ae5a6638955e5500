//! Files written for the user (docker-save tarballs, exported filesystems), wherever the
//! path points:
//!
//! - a regular file, or nothing yet: a temporary file beside it, renamed into place when
//!   complete ([`Output::commit`]), so a failure leaves nothing half-written. A symlink
//!   to a regular file is followed: the file it points to is replaced, the link stays.
//! - anything else that exists (a character device such as `/dev/null` or `/dev/full`, a
//!   fifo, a socket): opened and written as a stream, as `skopeo copy ...
//!   docker-archive:/dev/stdout` does, and never replaced by a regular file.
//!
//! Write errors name the path (`/dev/full: No space left on device`), not the data that
//! was being copied when they happened.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A destination file being written; see the [module docs](self).
#[derive(Debug)]
pub struct Output {
    path: PathBuf,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// A temporary file renamed to `target` on commit.
    Replace {
        tmp: tempfile::NamedTempFile,
        target: PathBuf,
    },
    /// Written in place, as a stream.
    Stream(File),
}

impl Output {
    /// Open `path` for writing (see the [module docs](self)). A directory, or a symlink to
    /// nothing, is an error naming the path.
    pub fn create(path: impl AsRef<Path>) -> Result<Output> {
        let path = path.as_ref();
        let shown = path.display();
        let kind = match fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(Error::invalid_input(
                    format!("destination {shown}"),
                    "it is a directory; expected a file name",
                ));
            }
            Ok(m) if m.is_file() => {
                let target = fs::canonicalize(path).map_err(|e| Error::io(&shown, e))?;
                replace(target)?
            }
            Ok(_) => {
                // A device, fifo or socket: write into it, never over it. No O_CREAT, no
                // O_TRUNC: it exists, and a device has no length to cut.
                let f = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(&shown, e))?;
                Kind::Stream(f)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fs::symlink_metadata(path).is_ok() {
                    return Err(Error::invalid_input(
                        format!("destination {shown}"),
                        "it is a symlink to nothing; name the file it should point to",
                    ));
                }
                replace(path.to_path_buf())?
            }
            Err(e) => return Err(Error::io(&shown, e)),
        };
        Ok(Output {
            path: path.to_path_buf(),
            kind,
        })
    }

    /// True when the destination is written as a stream (it cannot seek, and what was
    /// written before a failure stays written).
    pub fn is_stream(&self) -> bool {
        matches!(self.kind, Kind::Stream(_))
    }

    /// The path given to [`Output::create`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file. Errors written through it should be named with [`Output::path`]; a
    /// [`Named`] writer does that.
    pub fn file(&mut self) -> &mut File {
        match &mut self.kind {
            Kind::Replace { tmp, .. } => tmp.as_file_mut(),
            Kind::Stream(f) => f,
        }
    }

    /// Finish: a replaced file is synced and renamed into place; a stream is flushed.
    pub fn commit(self) -> Result<()> {
        let shown = self.path.display();
        match self.kind {
            Kind::Replace { tmp, target } => {
                tmp.as_file().sync_all().map_err(|e| Error::io(&shown, e))?;
                tmp.persist(&target)
                    .map_err(|e| Error::io(target.display(), e.error))?;
                Ok(())
            }
            Kind::Stream(mut f) => f.flush().map_err(|e| Error::io(&shown, e)),
        }
    }
}

fn replace(target: PathBuf) -> Result<Kind> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = crate::layout::temp_builder(".hoist-out-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(dir.display(), e))?;
    Ok(Kind::Replace { tmp, target })
}

/// A writer whose errors name what it writes to (`/dev/full: No space left on device`):
/// each I/O error becomes an [`Error`] carried inside the `io::Error`, which
/// [`Error::from_io`] takes out again whatever name the caller gives the failure.
#[derive(Debug)]
pub struct Named<W> {
    inner: W,
    name: String,
}

impl<W: Write> Named<W> {
    /// Name `inner`'s errors with `name`.
    pub fn new(inner: W, name: impl fmt::Display) -> Self {
        Named {
            inner,
            name: name.to_string(),
        }
    }

    /// The writer inside.
    pub fn into_inner(self) -> W {
        self.inner
    }

    fn named(&self, e: io::Error) -> io::Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return e;
        }
        Error::io(&self.name, e).into_io()
    }
}

impl<W: Write> Write for Named<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.named(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.named(e))
    }
}

impl<W: io::Seek> io::Seek for Named<W> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_new_and_symlinked_files_are_replaced_devices_streamed() {
        let t = tempfile::tempdir().unwrap();
        let new = t.path().join("new.tar");
        let mut o = Output::create(&new).unwrap();
        assert!(!o.is_stream());
        o.file().write_all(b"one").unwrap();
        assert!(!new.exists(), "nothing visible before commit");
        o.commit().unwrap();
        assert_eq!(fs::read(&new).unwrap(), b"one");

        // Through a symlink: the target is replaced, the link stays a link.
        let link = t.path().join("link.tar");
        std::os::unix::fs::symlink(&new, &link).unwrap();
        let mut o = Output::create(&link).unwrap();
        o.file().write_all(b"two").unwrap();
        o.commit().unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs::read(&new).unwrap(), b"two");

        let dangling = t.path().join("dangling");
        std::os::unix::fs::symlink(t.path().join("nowhere"), &dangling).unwrap();
        let e = Output::create(&dangling).unwrap_err().to_string();
        assert!(e.contains("symlink to nothing"), "{e}");
        let e = Output::create(t.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");

        let mut o = Output::create("/dev/null").unwrap();
        assert!(o.is_stream());
        o.file().write_all(b"gone").unwrap();
        o.commit().unwrap();
        assert!(!fs::metadata("/dev/null").unwrap().is_file());
    }

    #[test]
    fn write_errors_name_the_destination() {
        let mut o = Output::create("/dev/full").unwrap();
        let mut w = Named::new(o.file(), "/dev/full");
        let e = w.write_all(&[0u8; 4096]).unwrap_err();
        let e = Error::from_io("layer 0", e).to_string();
        assert!(e.starts_with("/dev/full: "), "{e}");
        assert!(e.contains("No space left"), "{e}");
    }
}
