//! `oci-archive:FILE[:NAME]`: an OCI image layout in a tar file (skopeo's and buildah's
//! interchange format). Read by unpacking it into a temporary directory, which the
//! [`Context`] keeps until it goes (layers are read from there as the sink needs them);
//! written by writing a layout into a temporary directory and packing it into a
//! temporary file beside FILE, renamed into place when complete (`-`, a device or a fifo
//! is written as a stream).
//!
//! Only directories and regular files are unpacked, at paths of plain components: an
//! entry with `..`, an absolute path, a link or a device is refused, naming the archive
//! and the entry. Nothing is held in memory but one entry's header.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path};

use hoist_image::output::Output;

use crate::error::{Context as _, Error, Result, bail};
use crate::write::binary_stdout;

/// Unpack the archive at `file` into a new temporary directory.
pub(crate) fn unpack(file: &Path) -> Result<tempfile::TempDir> {
    let shown = file.display();
    let f = File::open(file).map_err(|e| hoist_image::Error::io(file.display(), e))?;
    let dir = tempfile::Builder::new()
        .prefix("hoist-oci-archive-")
        .tempdir()
        .map_err(|e| hoist_image::Error::io("temporary directory", e))?;
    let mut archive = tar::Archive::new(io::BufReader::with_capacity(1 << 20, f));
    let entries = archive
        .entries()
        .map_err(|e| hoist_image::Error::io(file.display(), e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_a_tar(file, e))?;
        let path = entry.path().map_err(|e| not_a_tar(file, e))?.into_owned();
        let plain = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !plain {
            bail!(
                "oci-archive:{shown}: entry {} leaves the archive (`..` or an absolute path)",
                path.display()
            );
        }
        let kind = entry.header().entry_type();
        let to = dir.path().join(&path);
        if kind.is_dir() {
            std::fs::create_dir_all(&to).map_err(|e| hoist_image::Error::io(to.display(), e))?;
        } else if kind.is_file() {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| hoist_image::Error::io(parent.display(), e))?;
            }
            let mut out = File::create(&to).map_err(|e| hoist_image::Error::io(to.display(), e))?;
            io::copy(&mut entry, &mut out).map_err(|e| not_a_tar(file, e))?;
        } else {
            bail!(
                "oci-archive:{shown}: entry {} is a {kind:?}; an OCI layout holds directories and regular files only",
                path.display()
            );
        }
    }
    if !dir.path().join("oci-layout").is_file() {
        bail!(
            "oci-archive:{shown}: no oci-layout file in the archive; expected a tar of an OCI image layout"
        );
    }
    Ok(dir)
}

fn not_a_tar(file: &Path, e: io::Error) -> Error {
    Error::from(hoist_image::Error::io(file.display(), e))
        .context(format!("oci-archive:{}: reading the tar", file.display()))
}

/// Pack the layout in `dir` into `file` (`-`: stdout): `oci-layout`, `index.json`, then
/// the blobs, in name order, with fixed times and owners (the same layout makes the same
/// bytes).
pub(crate) fn pack(dir: &Path, file: &Path) -> Result<()> {
    if file.as_os_str() == crate::STDOUT {
        let out = binary_stdout()?;
        return pack_into(dir, out, file).map(|_| ());
    }
    let mut out = Output::create(file)?;
    pack_into(dir, out.file(), file)?;
    out.commit()?;
    Ok(())
}

fn pack_into<W: Write>(dir: &Path, w: W, file: &Path) -> Result<W> {
    let shown = || format!("oci-archive:{}", file.display());
    let mut tar = tar::Builder::new(w);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    collect(dir, dir, &mut files, &mut dirs).with_context(shown)?;
    // The layout's own files first, then directories and blobs in name order.
    files.sort_by_key(|p| {
        let s = p.to_string_lossy().into_owned();
        (s != "oci-layout", s != "index.json", s)
    });
    dirs.sort();
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, d, io::empty())
            .map_err(|e| hoist_image::Error::io(shown(), e))?;
    }
    for f in &files {
        let path = dir.join(f);
        let src = File::open(&path).map_err(|e| hoist_image::Error::io(path.display(), e))?;
        let len = src
            .metadata()
            .map_err(|e| hoist_image::Error::io(path.display(), e))?
            .len();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(len);
        h.set_mtime(0);
        tar.append_data(&mut h, f, src.take(len))
            .map_err(|e| hoist_image::Error::io(shown(), e))?;
    }
    let mut w = tar
        .into_inner()
        .map_err(|e| hoist_image::Error::io(shown(), e))?;
    w.flush().map_err(|e| hoist_image::Error::io(shown(), e))?;
    Ok(w)
}

/// Every regular file and directory under `dir` (paths relative to `root`), skipping the
/// temporary files of writers.
fn collect(
    root: &Path,
    dir: &Path,
    files: &mut Vec<std::path::PathBuf>,
    dirs: &mut Vec<std::path::PathBuf>,
) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| hoist_image::Error::io(dir.display(), e))?;
    for e in rd {
        let e = e.map_err(|e| hoist_image::Error::io(dir.display(), e))?;
        let path = e.path();
        let rel = path.strip_prefix(root).expect("under root").to_path_buf();
        let t = e
            .file_type()
            .map_err(|e| hoist_image::Error::io(path.display(), e))?;
        if t.is_dir() {
            dirs.push(rel);
            collect(root, &path, files, dirs)?;
        } else if t.is_file() && !e.file_name().to_string_lossy().starts_with(".tmp") {
            files.push(rel);
        }
    }
    Ok(())
}
