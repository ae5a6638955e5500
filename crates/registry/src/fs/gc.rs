//! Garbage collection's side of the filesystem backend: the inventory (blobs, a
//! repository's manifests), touches and guarded removals.
//!
//! A blob's (or a manifest revision's) last-touch time is its file's mtime. A touch sets it
//! to now, then checks the file is still in place. A removal moves the file to
//! `ROOT/gc-trash/` (one rename: from then on it is gone for every request), reads the mtime
//! again, and moves it back if a touch got there since the cutoff; otherwise deletes it.
//! A touch that set the time before that rename is seen by the second read, and one that
//! came after it finds no file: so a touch that answered `true` always keeps its file.
//! A crash between the rename and the decision leaves the file in `gc-trash/`; opening the
//! storage puts it back (the next collection decides again). `gc-trash/` is one flat
//! directory (see [`trash_name`]): a removal is a rename, a stat and an unlink.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hoist_image::{Descriptor, Digest};

use super::{Fs, io_err, not_found_is_none};
use crate::error::{Error, Result};
use crate::names::RepoName;
use crate::storage::{BlobEntry, ManifestEntry};

/// Files being removed, under their path relative to the root.
const TRASH: &str = "gc-trash";

impl Fs {
    pub(super) fn blobs(&self) -> Result<Vec<BlobEntry>> {
        let mut out = Vec::new();
        let blobs = self.root.join("blobs");
        for alg in read_dir(&blobs)? {
            let Some(algorithm) = name_of(&alg) else {
                continue;
            };
            for prefix in read_dir(&alg)? {
                for file in read_dir(&prefix)? {
                    let Some(digest) = name_of(&file)
                        .and_then(|hex| Digest::parse(&format!("{algorithm}:{hex}")).ok())
                    else {
                        continue;
                    };
                    let Some(meta) =
                        not_found_is_none(fs::metadata(&file)).map_err(io_err(&file))?
                    else {
                        continue;
                    };
                    out.push(BlobEntry {
                        digest,
                        size: meta.len(),
                        touched: meta.modified().map_err(io_err(&file))?,
                    });
                }
            }
        }
        Ok(out)
    }

    pub(super) fn manifests(&self, repo: &RepoName) -> Result<Vec<ManifestEntry>> {
        let revisions = self.repo_dir(repo).join("_manifests/revisions");
        let mut out = Vec::new();
        for alg in read_dir(&revisions)? {
            let Some(algorithm) = name_of(&alg) else {
                continue;
            };
            for file in read_dir(&alg)? {
                let Some(digest) = name_of(&file)
                    .and_then(|hex| Digest::parse(&format!("{algorithm}:{hex}")).ok())
                else {
                    continue;
                };
                let Some(meta) = not_found_is_none(fs::metadata(&file)).map_err(io_err(&file))?
                else {
                    continue;
                };
                out.push(ManifestEntry {
                    digest,
                    touched: meta.modified().map_err(io_err(&file))?,
                });
            }
        }
        Ok(out)
    }

    /// Set `path`'s mtime to now; whether it is (still) there afterwards.
    pub(super) fn touch(&self, path: &Path) -> Result<bool> {
        let Some(f) = not_found_is_none(File::open(path)).map_err(io_err(path))? else {
            return Ok(false);
        };
        f.set_modified(SystemTime::now()).map_err(io_err(path))?;
        drop(f);
        Ok(path.exists())
    }

    pub(super) fn blob_remove(&self, digest: &Digest, cutoff: SystemTime) -> Result<Option<u64>> {
        self.remove_unless_touched(&self.blob_path(digest), cutoff)
    }

    pub(super) fn manifest_remove(
        &self,
        repo: &RepoName,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> Result<bool> {
        let rev = self.revision_path(repo, digest);
        if self.remove_unless_touched(&rev, cutoff)?.is_none() {
            return Ok(false);
        }
        // Its entry among its subject's referrers.
        #[derive(serde::Deserialize)]
        struct Subject {
            subject: Option<Descriptor>,
        }
        let raw = not_found_is_none(fs::read(self.blob_path(digest))).unwrap_or_default();
        if let Some(Ok(Subject {
            subject: Some(subject),
        })) = raw.map(|r| serde_json::from_slice::<Subject>(&r))
        {
            let p = self
                .referrers_dir(repo, &subject.digest)
                .join(Self::referrer_file(digest));
            let _ = fs::remove_file(p);
        }
        Ok(true)
    }

    /// Remove `path` unless its mtime is at or after `cutoff`, safe against a concurrent
    /// [`Fs::touch`] (module docs). Returns the size removed.
    fn remove_unless_touched(&self, path: &Path, cutoff: SystemTime) -> Result<Option<u64>> {
        let fresh = |p: &Path| -> Result<Option<bool>> {
            not_found_is_none(fs::metadata(p))
                .map_err(io_err(p))?
                .map(|m| m.modified().map(|t| t >= cutoff))
                .transpose()
                .map_err(io_err(p))
        };
        match fresh(path)? {
            None | Some(true) => return Ok(None),
            Some(false) => {}
        }
        let trash = self
            .root
            .join(TRASH)
            .join(trash_name(&self.random_id(), &self.root, path));
        match fs::rename(path, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path.display(), e)),
        }
        let meta = fs::metadata(&trash).map_err(io_err(&trash))?;
        if meta.modified().map_err(io_err(&trash))? >= cutoff {
            // Touched between the first look and the rename: put it back (over a copy
            // stored meanwhile, which has the same bytes).
            fs::rename(&trash, path).map_err(io_err(path))?;
            return Ok(None);
        }
        fs::remove_file(&trash).map_err(io_err(&trash))?;
        Ok(Some(meta.len()))
    }
}

/// Put back whatever a collection was removing when the process stopped (see the module
/// docs): each file returns to its place unless a file is there already.
pub(super) fn restore_trash(root: &Path) -> Result<()> {
    let trash = root.join(TRASH);
    fs::create_dir_all(&trash).map_err(io_err(&trash))?;
    for f in read_dir(&trash)? {
        let to = name_of(&f).and_then(|n| {
            let (_, rel) = n.split_once('~')?;
            Some(root.join(rel.replace('~', "/")))
        });
        match to {
            Some(to) if !to.exists() => {
                if let Some(p) = to.parent() {
                    fs::create_dir_all(p).map_err(io_err(p))?;
                }
                fs::rename(&f, &to).map_err(io_err(&to))?;
                tracing::info!(path = %to.display(), "gc: put back a file an interrupted collection was removing");
            }
            _ => fs::remove_file(&f).map_err(io_err(&f))?,
        }
    }
    Ok(())
}

/// The name in `gc-trash/` of `path` (under `root`): `ID~` and the relative path with `~`
/// for `/` (no repository name, tag or digest has a `~`), so one flat directory holds
/// everything being removed and the name says where it goes back.
fn trash_name(id: &str, root: &Path, path: &Path) -> String {
    let rel = path
        .strip_prefix(root)
        .expect("storage paths are under the root")
        .to_string_lossy()
        .replace('/', "~");
    format!("{id}~{rel}")
}

/// The entries of `dir` (none when it does not exist).
fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let Some(rd) = not_found_is_none(fs::read_dir(dir)).map_err(io_err(dir))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in rd {
        out.push(e.map_err(io_err(dir))?.path());
    }
    Ok(out)
}

fn name_of(p: &Path) -> Option<String> {
    p.file_name()?.to_str().map(str::to_string)
}
