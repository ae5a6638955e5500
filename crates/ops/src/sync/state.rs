//! The state file of a sync: what earlier runs did, so a run that was killed (or lost
//! its network) continues where it stopped.
//!
//! One JSON object per line, appended as things happen (a line is one `write` on a file
//! opened for appending, so lines of concurrent runs do not interleave, and a run killed
//! mid-line leaves one torn last line, which the next run skips):
//! - `{"t":"blob","registry":R,"repo":N,"digest":D}`: the blob is in that repository. A
//!   later run mounts it from there instead of uploading it again.
//! - `{"t":"session","registry":R,"repo":N,"digest":D,"url":U}` (`"url":null` when
//!   committed): where a large upload's session is. A later run asks the registry how
//!   much of it arrived and sends only the rest.
//! - `{"t":"repo","registry":R,"repo":N}`: a run began sending blobs and tags, without
//!   `HEAD`s, into this repository the registry did not have. A later run `HEAD`s blobs
//!   and tags there (the killed run may have written some it had no time to note).
//! - `{"t":"image","source":S,"digest":D,"platforms":P,"written":W}`: the source image
//!   `S` at `D`, narrowed to the platforms `P`, was written as the manifest `W`: a later
//!   run tells an unchanged narrowed image without fetching the source's index.
//!
//! Nothing here is needed for correctness — every fact is checked against the registry
//! before it is relied on (a mount the registry refuses is an upload; a session it lost
//! is a new one) — so a lost or stale file only costs time. A file over
//! [`COMPACT_BYTES`] is rewritten with the latest fact of each key when opened.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hoist_image::Digest;
use hoist_remote::Repository;
use hoist_remote::mirror::Journal;
use serde::{Deserialize, Serialize};

use crate::error::{Context as _, Result};

/// A state file larger than this is compacted when a run opens it.
pub const COMPACT_BYTES: u64 = 8 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
enum Line {
    Blob {
        registry: String,
        repo: String,
        digest: String,
    },
    Session {
        registry: String,
        repo: String,
        digest: String,
        url: Option<String>,
    },
    Repo {
        registry: String,
        repo: String,
    },
    Image {
        source: String,
        digest: String,
        platforms: String,
        written: String,
    },
}

#[derive(Debug, Default)]
struct Facts {
    /// (registry, digest) → a repository holding it.
    blobs: HashMap<(String, String), String>,
    /// (registry, repo, digest) → an open session.
    sessions: HashMap<(String, String, String), String>,
    /// (source, digest, platforms) → the manifest written.
    images: HashMap<(String, String, String), String>,
    /// (registry, repo) a run began filling without `HEAD`s.
    filled: HashSet<(String, String)>,
}

impl Facts {
    fn apply(&mut self, l: Line) {
        match l {
            Line::Blob {
                registry,
                repo,
                digest,
            } => {
                self.blobs.insert((registry, digest), repo);
            }
            Line::Session {
                registry,
                repo,
                digest,
                url,
            } => {
                let key = (registry, repo, digest);
                match url {
                    Some(u) => self.sessions.insert(key, u),
                    None => self.sessions.remove(&key),
                };
            }
            Line::Repo { registry, repo } => {
                self.filled.insert((registry, repo));
            }
            Line::Image {
                source,
                digest,
                platforms,
                written,
            } => {
                self.images.insert((source, digest, platforms), written);
            }
        }
    }

    fn lines(&self) -> Vec<Line> {
        let mut out = Vec::new();
        for ((registry, digest), repo) in &self.blobs {
            out.push(Line::Blob {
                registry: registry.clone(),
                repo: repo.clone(),
                digest: digest.clone(),
            });
        }
        for ((registry, repo, digest), url) in &self.sessions {
            out.push(Line::Session {
                registry: registry.clone(),
                repo: repo.clone(),
                digest: digest.clone(),
                url: Some(url.clone()),
            });
        }
        for (registry, repo) in &self.filled {
            out.push(Line::Repo {
                registry: registry.clone(),
                repo: repo.clone(),
            });
        }
        for ((source, digest, platforms), written) in &self.images {
            out.push(Line::Image {
                source: source.clone(),
                digest: digest.clone(),
                platforms: platforms.clone(),
                written: written.clone(),
            });
        }
        out
    }
}

/// A sync's state file, open for appending; see the [module docs](self).
#[derive(Debug)]
pub struct State {
    path: PathBuf,
    file: Mutex<File>,
    facts: Mutex<Facts>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Upload URLs carry registries' session state: readable by the owner only.
        o.mode(0o600);
    }
    o.open(path)
}

impl State {
    /// Open (or create) the state file at `path`, reading what earlier runs wrote.
    pub fn open(path: &Path) -> Result<State> {
        let what = || format!("state file {}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| hoist_image::Error::from_io(what(), e))
                .with_context(what)?;
        }
        let mut facts = Facts::default();
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(hoist_image::Error::from_io(what(), e).into()),
        };
        let mut skipped = 0usize;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Line>(line) {
                Ok(l) => facts.apply(l),
                Err(_) => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::debug!(file = %path.display(), skipped, "state file lines not understood; skipped");
        }
        if text.len() as u64 > COMPACT_BYTES {
            let tmp = path.with_extension("compacting");
            let mut body = Vec::new();
            for l in facts.lines() {
                body.extend(serde_json::to_vec(&l).expect("state lines serialize"));
                body.push(b'\n');
            }
            std::fs::write(&tmp, &body)
                .and_then(|_| std::fs::rename(&tmp, path))
                .map_err(|e| hoist_image::Error::from_io(what(), e))?;
        }
        let mut file = open_append(path).map_err(|e| hoist_image::Error::from_io(what(), e))?;
        if text.last().is_some_and(|b| *b != b'\n') && text.len() as u64 <= COMPACT_BYTES {
            // End the torn line of a killed run, so the next line stands on its own.
            file.write_all(b"\n")
                .map_err(|e| hoist_image::Error::from_io(what(), e))?;
        }
        Ok(State {
            path: path.to_path_buf(),
            file: Mutex::new(file),
            facts: Mutex::new(facts),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, l: Line) {
        let mut buf = serde_json::to_vec(&l).expect("state lines serialize");
        buf.push(b'\n');
        let r = self.file.lock().expect("state file lock").write_all(&buf);
        if let Err(e) = r {
            tracing::warn!(file = %self.path.display(), error = %e, "state file not written");
        }
        self.facts.lock().expect("facts lock").apply(l);
    }

    /// The manifest an earlier run wrote for the source image `source` at `digest`
    /// narrowed to `platforms`.
    pub fn written(&self, source: &str, digest: &Digest, platforms: &str) -> Option<Digest> {
        let f = self.facts.lock().expect("facts lock");
        let w = f.images.get(&(
            source.to_string(),
            digest.to_string(),
            platforms.to_string(),
        ))?;
        Digest::parse(w).ok()
    }

    /// Record that `source` at `digest`, narrowed to `platforms`, was written as `written`.
    pub fn image_done(&self, source: &str, digest: &Digest, platforms: &str, written: &Digest) {
        if self.written(source, digest, platforms).as_ref() == Some(written) {
            return;
        }
        self.append(Line::Image {
            source: source.to_string(),
            digest: digest.to_string(),
            platforms: platforms.to_string(),
            written: written.to_string(),
        });
    }
}

impl Journal for State {
    fn blob_in(&self, repo: &Repository, digest: &Digest) {
        let known = self
            .facts
            .lock()
            .expect("facts lock")
            .blobs
            .get(&(repo.registry().to_string(), digest.to_string()))
            .is_some_and(|r| r == repo.name());
        if !known {
            self.append(Line::Blob {
                registry: repo.registry().to_string(),
                repo: repo.name().to_string(),
                digest: digest.to_string(),
            });
        }
    }

    fn holder(&self, registry: &str, digest: &Digest) -> Option<String> {
        self.facts
            .lock()
            .expect("facts lock")
            .blobs
            .get(&(registry.to_string(), digest.to_string()))
            .cloned()
    }

    fn session(&self, repo: &Repository, digest: &Digest, url: Option<&str>) {
        self.append(Line::Session {
            registry: repo.registry().to_string(),
            repo: repo.name().to_string(),
            digest: digest.to_string(),
            url: url.map(str::to_string),
        });
    }

    fn filling(&self, repo: &Repository) {
        if !self.filled_before(repo) {
            self.append(Line::Repo {
                registry: repo.registry().to_string(),
                repo: repo.name().to_string(),
            });
        }
    }

    fn filled_before(&self, repo: &Repository) -> bool {
        self.facts
            .lock()
            .expect("facts lock")
            .filled
            .contains(&(repo.registry().to_string(), repo.name().to_string()))
    }

    fn open_session(&self, repo: &Repository, digest: &Digest) -> Option<String> {
        self.facts
            .lock()
            .expect("facts lock")
            .sessions
            .get(&(
                repo.registry().to_string(),
                repo.name().to_string(),
                digest.to_string(),
            ))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_survive_a_restart_and_a_torn_line() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("sub/state.jsonl");
        let repo = Repository::new("127.0.0.1:5000", "a/b").unwrap();
        let (d1, d2) = (Digest::sha256(b"1"), Digest::sha256(b"2"));
        {
            let s = State::open(&path).unwrap();
            s.blob_in(&repo, &d1);
            s.blob_in(&repo, &d1); // known: not written twice
            s.session(
                &repo,
                &d2,
                Some("http://127.0.0.1:5000/v2/a/b/blobs/uploads/x"),
            );
            s.image_done("src/a:v1", &d1, "linux/amd64", &d2);
            s.filling(&repo);
            s.filling(&repo); // known: not written twice
        }
        // A run killed in the middle of a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"t":"blob","regis"#)
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        let s = State::open(&path).unwrap();
        s.blob_in(&Repository::new("127.0.0.1:5000", "c").unwrap(), &d2);
        let s = State::open(&path).unwrap();
        assert_eq!(s.holder("127.0.0.1:5000", &d2).as_deref(), Some("c"));
        assert_eq!(s.holder("127.0.0.1:5000", &d1).as_deref(), Some("a/b"));
        assert!(s.open_session(&repo, &d2).unwrap().ends_with("/uploads/x"));
        assert_eq!(s.written("src/a:v1", &d1, "linux/amd64"), Some(d2.clone()));
        assert_eq!(s.written("src/a:v1", &d1, ""), None);
        assert!(s.filled_before(&repo));
        assert!(!s.filled_before(&Repository::new("127.0.0.1:5000", "c").unwrap()));
        // A committed session is forgotten.
        s.session(&repo, &d2, None);
        let s = State::open(&path).unwrap();
        assert_eq!(s.open_session(&repo, &d2), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
