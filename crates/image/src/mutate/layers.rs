//! New layers: a directory made into a deterministic tar ([`DirSource`]) or a tar file
//! ([`TarSource`], plain, gzip or zstd), both streamed and sealed once.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layer::{BoxRead, FromUncompressed, Layer, Store, UncompressedSource};
use crate::media_type::{Compression, MediaType};
use crate::pipeline::{self, Encoding};

use super::pipe;

/// How a directory becomes a tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirOptions {
    /// mtime of every entry (seconds since the epoch).
    pub mtime: u64,
    /// Owner of every entry.
    pub uid: u64,
    /// Group of every entry.
    pub gid: u64,
}

impl Default for DirOptions {
    /// Epoch mtimes, owned by root: the same tree gives the same bytes anywhere.
    fn default() -> Self {
        DirOptions {
            mtime: 0,
            uid: 0,
            gid: 0,
        }
    }
}

/// A directory as a layer tar: entries sorted by name (bytes), paths relative to the
/// directory, fixed mtime and owner, permission bits kept, symlinks stored as links.
/// Generated on a thread as it is read: never whole in memory.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
    opts: DirOptions,
}

impl DirSource {
    /// A directory source; `root` must be a directory.
    pub fn new(root: impl Into<PathBuf>, opts: DirOptions) -> Result<DirSource> {
        let root = root.into();
        let meta = fs::metadata(&root).map_err(|e| Error::io(root.display(), e))?;
        if !meta.is_dir() {
            return Err(Error::invalid_input(root.display(), "expected a directory"));
        }
        Ok(DirSource { root, opts })
    }
}

impl UncompressedSource for DirSource {
    fn open(&self) -> Result<BoxRead> {
        let root = self.root.clone();
        let opts = self.opts;
        Ok(pipe::spawn(move |w| {
            let mut b = tar::Builder::new(w);
            add_dir(&mut b, &root, Path::new(""), &opts)?;
            b.finish().map_err(|e| Error::io(root.display(), e))?;
            Ok(())
        }))
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64, opts: &DirOptions) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(opts.mtime);
    h.set_uid(opts.uid);
    h.set_gid(opts.gid);
    h
}

#[cfg(unix)]
fn mode_of(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(meta: &fs::Metadata) -> u32 {
    if meta.is_dir() { 0o755 } else { 0o644 }
}

fn add_dir(
    b: &mut tar::Builder<&mut dyn Write>,
    dir: &Path,
    rel: &Path,
    opts: &DirOptions,
) -> Result<()> {
    let mut entries = fs::read_dir(dir)
        .and_then(|it| it.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| Error::io(dir.display(), e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = rel.join(e.file_name());
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(path.display(), e))?;
        let io = |e| Error::io(path.display(), e);
        let ft = meta.file_type();
        if ft.is_dir() {
            let mut h = header(tar::EntryType::Directory, mode_of(&meta), 0, opts);
            b.append_data(&mut h, &name, std::io::empty()).map_err(io)?;
            add_dir(b, &path, &name, opts)?;
        } else if ft.is_file() {
            let f = File::open(&path).map_err(io)?;
            let mut h = header(tar::EntryType::Regular, mode_of(&meta), meta.len(), opts);
            let mut body = Exact {
                inner: f.take(meta.len()),
                left: meta.len(),
                path: path.clone(),
            };
            b.append_data(&mut h, &name, &mut body).map_err(io)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io)?;
            let mut h = header(tar::EntryType::Symlink, 0o777, 0, opts);
            b.append_link(&mut h, &name, &target).map_err(io)?;
        } else {
            return Err(Error::invalid_input(
                path.display(),
                "unsupported file type (only files, directories and symlinks go in a layer)",
            ));
        }
    }
    Ok(())
}

/// A file read to exactly its stat size: one that shrank while being read is an error,
/// never a corrupt tar.
struct Exact {
    inner: std::io::Take<File>,
    left: u64,
    path: PathBuf,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} shrank while being read", self.path.display()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A tar file as a layer: plain, gzip or zstd (sniffed), its paths checked when opened.
#[derive(Debug, Clone)]
pub struct TarSource {
    path: PathBuf,
    compression: Compression,
}

impl TarSource {
    /// Open a tar file: its compression is sniffed from the first bytes and every entry's
    /// path is checked ([`check_tar`]), so a tar that escapes its root is refused here.
    pub fn open(path: impl Into<PathBuf>) -> Result<TarSource> {
        let path = path.into();
        let mut magic = [0u8; 4];
        let mut f = File::open(&path).map_err(|e| Error::io(path.display(), e))?;
        let n = read_up_to(&mut f, &mut magic).map_err(|e| Error::io(path.display(), e))?;
        let compression = match &magic[..n] {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
            _ => Compression::None,
        };
        let s = TarSource { path, compression };
        check_tar(s.open()?, &s.path.display().to_string())?;
        Ok(s)
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl UncompressedSource for TarSource {
    fn open(&self) -> Result<BoxRead> {
        let f = File::open(&self.path).map_err(|e| Error::io(self.path.display(), e))?;
        pipeline::decoder(self.compression, Box::new(f))
    }
}

/// Normalize a layer entry's path: `./a/b/` → `a/b`, a leading `/` dropped. `..` is an
/// error naming `what` (the layer). The root itself gives an empty path.
pub(crate) fn clean_path(p: &Path, what: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::invalid_input(
                    format!(
                        "{what}: tar entry {}",
                        crate::quote(p.as_os_str().as_encoded_bytes())
                    ),
                    "expected a path inside the layer, without '..'",
                ));
            }
        }
    }
    Ok(out)
}

/// Read a layer tar through, checking every entry's path and every hard link's target
/// for `..`. Errors name `what` and the entry.
pub fn check_tar(r: impl Read, what: &str) -> Result<()> {
    let mut a = tar::Archive::new(r);
    let io = |e| Error::from_io(what, crate::quote::untrusted_io(e));
    for entry in a.entries().map_err(io)? {
        let entry = entry.map_err(io)?;
        clean_path(&entry.path().map_err(io)?, what)?;
        if entry.header().entry_type() == tar::EntryType::Link
            && let Some(target) = entry.link_name().map_err(io)?
        {
            clean_path(&target, what)?;
        }
    }
    Ok(())
}

/// A new layer from a directory ([`DirSource`]) or a tar file ([`TarSource`]), to be sealed
/// with `encoding` into `store`, described as `media_type`.
pub fn layer_from_path(
    path: &Path,
    dir: DirOptions,
    encoding: &Encoding,
    media_type: MediaType,
    store: Arc<dyn Store>,
) -> Result<Arc<dyn Layer>> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path.display(), e))?;
    Ok(if meta.is_dir() {
        Arc::new(FromUncompressed::new(
            DirSource::new(path, dir)?,
            encoding.clone(),
            media_type,
            store,
        ))
    } else {
        Arc::new(FromUncompressed::new(
            TarSource::open(path)?,
            encoding.clone(),
            media_type,
            store,
        ))
    })
}
