//! Image locations, as every verb takes them:
//!
//! | form                         | meaning                                               |
//! |------------------------------|-------------------------------------------------------|
//! | `oci:DIR[:NAME]`             | an OCI image layout; NAME is a ref name or a digest    |
//! | `oci-archive:FILE[:NAME]`    | a tar of an OCI image layout (skopeo's `oci-archive:`) |
//! | `docker-archive:FILE[:REF]`  | a `docker save` tarball; REF picks (or names) an image |
//! | `docker://REF`               | a registry reference                                   |
//! | `PATH` (exists)              | a directory with `oci-layout` is a layout, a file a tarball |
//! | `-`                          | a docker-save tarball on stdout (destinations only)    |
//! | anything else                | a registry reference                                   |
//!
//! skopeo's other transports (`dir:`, `containers-storage:`, `docker-daemon:`, `ostree:`,
//! `sif:`, `tarball:`) are refused by name, never taken for a Docker Hub image; so is a
//! bare name ending like a tar file (`app.tar`, `app.tar.gz`) that is not on disk.
//!
//! A tarball destination that is a device or a fifo (`/dev/stdout`, a named pipe) is
//! written as a stream, never replaced by a regular file ([`hoist_image::output`]).
//!
//! As in skopeo, `oci:` and `docker-archive:` split at the first `:` after the path, so
//! `docker-archive:x.tar:localhost:5000/app:v1` names `localhost:5000/app:v1`.
//! [`Location`]'s `Display` writes the prefixed form, which parses back to an equal value.

use std::fmt;
use std::path::{Path, PathBuf};

use hoist_image::{Digest, Reference};

use crate::error::{Context, Result, bail};

/// Where an image is (or goes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An OCI image layout directory.
    Layout {
        /// The directory.
        dir: PathBuf,
        /// A ref name (`org.opencontainers.image.ref.name`) or a digest.
        name: Option<String>,
    },
    /// A tar of an OCI image layout (`-`: stdout).
    OciArchive {
        /// The file.
        file: PathBuf,
        /// A ref name or a digest, as in a layout.
        name: Option<String>,
    },
    /// A `docker save` tarball (`-`: stdout).
    Archive {
        /// The file.
        file: PathBuf,
        /// The image's tag in `manifest.json`.
        reference: Option<Reference>,
    },
    /// An image in a registry.
    Registry(Reference),
}

/// The file name that means stdout (`hoist pull REF -`, `docker-archive:-`).
pub const STDOUT: &str = "-";

/// What a bare argument is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// A directory containing `oci-layout`.
    Layout,
    /// A directory without `oci-layout`.
    Dir,
    /// A regular file (or anything else that exists).
    File,
    /// Nothing there.
    Missing,
}

fn probe(p: &Path) -> PathKind {
    if p.is_dir() {
        if p.join("oci-layout").is_file() {
            PathKind::Layout
        } else {
            PathKind::Dir
        }
    } else if p.exists() {
        PathKind::File
    } else {
        PathKind::Missing
    }
}

/// Transports of skopeo's that hoist does not read or write.
const UNSUPPORTED_TRANSPORTS: [&str; 6] = [
    "dir",
    "containers-storage",
    "docker-daemon",
    "ostree",
    "sif",
    "tarball",
];

/// Endings of a file name that a tar file has, and an image reference practically never.
const TAR_ENDINGS: [&str; 5] = [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz"];

impl Location {
    /// True for a tarball written to stdout (`-`).
    pub fn is_stdout(&self) -> bool {
        match self {
            Location::Archive { file, .. } | Location::OciArchive { file, .. } => {
                file.as_os_str() == STDOUT
            }
            _ => false,
        }
    }

    /// Parse a location that must be local (a layout or an archive): a bare argument
    /// that is not on disk is "no such file or directory", never a registry reference.
    pub fn parse_local(s: &str) -> Result<Location> {
        Self::parse_local_with(s, probe)
    }

    /// [`Location::parse_local`] with a custom filesystem probe (for tests).
    pub fn parse_local_with(s: &str, probe: impl Fn(&Path) -> PathKind) -> Result<Location> {
        let bare = !s.contains(':') || !(s.starts_with("docker://") || has_transport(s));
        if bare && s != STDOUT && !s.is_empty() && probe(Path::new(s)) == PathKind::Missing {
            return Err(crate::Error::msg(
                crate::ErrorKind::NotFound,
                format!(
                    "location {s:?}: no such file or directory (expected oci:DIR, oci-archive:FILE, docker-archive:FILE or an existing path)"
                ),
            ));
        }
        match Self::parse_with(s, probe)? {
            Location::Registry(r) => bail!(
                "docker://{r}: expected a local image here (oci:DIR, oci-archive:FILE, docker-archive:FILE or a path); registries are reached with hoist copy"
            ),
            l => Ok(l),
        }
    }

    /// True for a registry location.
    pub fn is_registry(&self) -> bool {
        matches!(self, Location::Registry(_))
    }

    /// Parse a location, looking at the filesystem for bare arguments.
    pub fn parse(s: &str) -> Result<Location> {
        Self::parse_with(s, probe)
    }

    /// Parse a destination: as [`Location::parse`], except that a bare name ending like a
    /// tar file (`out.tar`) that is not on disk yet is a docker-save tarball to create.
    pub fn parse_destination(s: &str) -> Result<Location> {
        Self::parse_destination_with(s, probe)
    }

    /// [`Location::parse_destination`] with a custom filesystem probe (for tests).
    pub fn parse_destination_with(s: &str, probe: impl Fn(&Path) -> PathKind) -> Result<Location> {
        let bare = !s.contains("://") && !has_transport(s);
        if bare
            && TAR_ENDINGS.iter().any(|e| s.ends_with(e))
            && probe(Path::new(s)) == PathKind::Missing
        {
            return Ok(Location::Archive {
                file: s.into(),
                reference: None,
            });
        }
        Self::parse_with(s, probe)
    }

    /// Parse with a custom filesystem probe (for tests).
    pub fn parse_with(s: &str, probe: impl Fn(&Path) -> PathKind) -> Result<Location> {
        let what = || format!("location {s:?}");
        if let Some((transport, _)) = s.split_once(':')
            && UNSUPPORTED_TRANSPORTS.contains(&transport)
        {
            bail!(
                "invalid {}: unsupported transport \"{transport}:\" (hoist reads and writes oci:, oci-archive:, docker-archive: and docker://)",
                what()
            );
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, name) = split_path(rest);
            if file.is_empty() {
                bail!(
                    "invalid {}: expected oci-archive:FILE[:NAME], the file name is empty",
                    what()
                );
            }
            let name = check_layout_name(name, &what)?;
            return Ok(Location::OciArchive {
                file: file.into(),
                name,
            });
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, name) = split_path(rest);
            if dir.is_empty() {
                bail!(
                    "invalid {}: expected oci:DIR[:NAME], the directory is empty",
                    what()
                );
            }
            let name = check_layout_name(name, &what)?;
            return Ok(Location::Layout {
                dir: dir.into(),
                name,
            });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, reference) = split_path(rest);
            if file.is_empty() {
                bail!(
                    "invalid {}: expected docker-archive:FILE[:REF], the file name is empty",
                    what()
                );
            }
            let reference = reference
                .map(|r| -> Result<Reference> {
                    let r = Reference::parse(r).with_context(|| format!("invalid {}", what()))?;
                    if r.digest().is_some() {
                        bail!(
                            "invalid {}: a docker-archive names images by tag, not by digest",
                            what()
                        );
                    }
                    Ok(r)
                })
                .transpose()?;
            return Ok(Location::Archive {
                file: file.into(),
                reference,
            });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            let r = Reference::parse(rest).with_context(|| format!("invalid {}", what()))?;
            return Ok(Location::Registry(r));
        }
        if s == STDOUT {
            return Ok(Location::Archive {
                file: STDOUT.into(),
                reference: None,
            });
        }
        if s.is_empty() {
            bail!(
                "invalid location \"\": expected oci:DIR, oci-archive:FILE, docker-archive:FILE, docker://REF or a path"
            );
        }
        match probe(Path::new(s)) {
            PathKind::Layout => Ok(Location::Layout {
                dir: s.into(),
                name: None,
            }),
            PathKind::File => Ok(Location::Archive {
                file: s.into(),
                reference: None,
            }),
            PathKind::Dir => bail!(
                "invalid {}: directory has no oci-layout file; expected an OCI image layout",
                what()
            ),
            PathKind::Missing if TAR_ENDINGS.iter().any(|e| s.ends_with(e)) => {
                Err(crate::Error::msg(
                    crate::ErrorKind::NotFound,
                    format!("location {s:?}: no such file or directory"),
                ))
            }
            PathKind::Missing => {
                let r = Reference::parse(s).with_context(|| {
                    format!(
                        "invalid {}: no such file or directory, and not a registry reference",
                        what()
                    )
                })?;
                Ok(Location::Registry(r))
            }
        }
    }
}

/// True when `s` starts with a transport hoist knows (`oci:`, `docker-archive:`, ...).
fn has_transport(s: &str) -> bool {
    ["oci:", "oci-archive:", "docker-archive:", "docker://"]
        .iter()
        .any(|t| s.starts_with(t))
        || s.split_once(':')
            .is_some_and(|(t, _)| UNSUPPORTED_TRANSPORTS.contains(&t))
}

/// A layout's ref name after `:`: not empty, and a digest when it starts like one (OCI
/// ref names may contain ':').
fn check_layout_name(name: Option<&str>, what: &dyn Fn() -> String) -> Result<Option<String>> {
    if let Some(n) = name {
        if n.is_empty() {
            bail!("invalid {}: empty name after the file's ':'", what());
        }
        if n.starts_with("sha256:") || n.starts_with("sha512:") {
            Digest::parse(n).with_context(|| format!("invalid {}", what()))?;
        }
    }
    Ok(name.map(str::to_string))
}

/// `PATH[:NAME]` split at the first ':' (skopeo's rule).
fn split_path(s: &str) -> (&str, Option<&str>) {
    match s.split_once(':') {
        Some((p, n)) => (p, Some(n)),
        None => (s, None),
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Layout { dir, name } => {
                write!(f, "oci:{}", dir.display())?;
                if let Some(n) = name {
                    write!(f, ":{n}")?;
                }
                Ok(())
            }
            Location::OciArchive { file, name } => {
                write!(f, "oci-archive:{}", file.display())?;
                if let Some(n) = name {
                    write!(f, ":{n}")?;
                }
                Ok(())
            }
            Location::Archive { file, reference } => {
                write!(f, "docker-archive:{}", file.display())?;
                if let Some(r) = reference {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
            Location::Registry(r) => write!(f, "docker://{r}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(p: &Path) -> PathKind {
        match p.to_str().unwrap() {
            "layout" | "./layout" => PathKind::Layout,
            "plain-dir" => PathKind::Dir,
            "img.tar" | "/abs/img.tar" => PathKind::File,
            _ => PathKind::Missing,
        }
    }

    fn layout(dir: &str, name: Option<&str>) -> Location {
        Location::Layout {
            dir: dir.into(),
            name: name.map(Into::into),
        }
    }

    fn archive(file: &str, r: Option<&str>) -> Location {
        Location::Archive {
            file: file.into(),
            reference: r.map(|r| Reference::parse(r).unwrap()),
        }
    }

    fn registry(r: &str) -> Location {
        Location::Registry(Reference::parse(r).unwrap())
    }

    #[test]
    fn good() {
        let d = format!("sha256:{}", "a".repeat(64));
        let table: Vec<(String, Location)> = vec![
            ("oci:dir".into(), layout("dir", None)),
            ("oci:dir:v1".into(), layout("dir", Some("v1"))),
            (
                "oci:/abs/dir:v1.0-rc".into(),
                layout("/abs/dir", Some("v1.0-rc")),
            ),
            (format!("oci:dir:{d}"), layout("dir", Some(&d))),
            ("oci:missing-dir".into(), layout("missing-dir", None)),
            (
                "oci-archive:img.tar".into(),
                Location::OciArchive {
                    file: "img.tar".into(),
                    name: None,
                },
            ),
            (
                "oci-archive:/x/img.tar:v1".into(),
                Location::OciArchive {
                    file: "/x/img.tar".into(),
                    name: Some("v1".into()),
                },
            ),
            ("docker-archive:x.tar".into(), archive("x.tar", None)),
            (
                "docker-archive:x.tar:app:v1".into(),
                archive("x.tar", Some("app:v1")),
            ),
            (
                "docker-archive:/tmp/x.tar:localhost:5000/a/b:v2".into(),
                archive("/tmp/x.tar", Some("localhost:5000/a/b:v2")),
            ),
            ("docker://ubuntu".into(), registry("ubuntu")),
            (
                "docker://localhost:5000/app:v1".into(),
                registry("localhost:5000/app:v1"),
            ),
            (
                format!("docker://ghcr.io/a/b@{d}"),
                registry(&format!("ghcr.io/a/b@{d}")),
            ),
            ("layout".into(), layout("layout", None)),
            ("./layout".into(), layout("./layout", None)),
            ("img.tar".into(), archive("img.tar", None)),
            ("/abs/img.tar".into(), archive("/abs/img.tar", None)),
            ("ubuntu:24.04".into(), registry("ubuntu:24.04")),
            ("localhost:5000/app".into(), registry("localhost:5000/app")),
            (
                "gcr.io/distroless/static".into(),
                registry("gcr.io/distroless/static"),
            ),
        ];
        for (input, want) in table {
            let got = Location::parse_with(&input, fs).unwrap_or_else(|e| panic!("{input}: {e:#}"));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn bad() {
        let table = [
            ("", "expected oci:DIR"),
            ("oci:", "the directory is empty"),
            ("oci::v1", "the directory is empty"),
            ("oci:dir:", "empty name"),
            ("oci:dir:sha256:abc", "invalid digest"),
            ("docker-archive:", "the file name is empty"),
            ("docker-archive:x.tar:Bad_Ref", "must be lowercase"),
            (
                &*format!("docker-archive:x.tar:app@sha256:{}", "a".repeat(64)),
                "by tag, not by digest",
            ),
            ("docker://", "empty reference"),
            ("docker://UPPER/x:", "empty tag"),
            ("plain-dir", "no oci-layout"),
            ("./missing", "not a registry reference"),
            ("/tmp/Missing.tar", "no such file or directory"),
            ("missing.tar", "no such file or directory"),
            ("app.tar.gz", "no such file or directory"),
            ("oci-archive:", "the file name is empty"),
            ("dir:/tmp/x", "unsupported transport \"dir:\""),
            ("containers-storage:app", "unsupported transport"),
            ("docker-daemon:app:v1", "unsupported transport"),
        ];
        for (input, want) in table {
            let e = Location::parse_with(input, fs).expect_err(input);
            let msg = format!("{e:#}");
            assert!(msg.contains(want), "{input:?}: {msg:?} lacks {want:?}");
            assert!(
                msg.contains(&format!("{input:?}")),
                "{input:?}: {msg:?} does not name the input"
            );
        }
    }

    #[test]
    fn local_locations() {
        for (input, want) in [
            ("missing", "location \"missing\": no such file or directory"),
            ("app.tar", "location \"app.tar\": no such file or directory"),
            ("docker://ubuntu", "expected a local image here"),
            ("dir:x", "unsupported transport"),
        ] {
            let e = Location::parse_local_with(input, fs).expect_err(input);
            let msg = format!("{e:#}");
            assert!(msg.contains(want), "{input:?}: {msg:?} lacks {want:?}");
        }
        assert_eq!(
            Location::parse_local_with("img.tar", fs).unwrap(),
            archive("img.tar", None)
        );
        assert_eq!(
            Location::parse_local_with("oci:new-dir", fs).unwrap(),
            layout("new-dir", None)
        );
    }

    #[test]
    fn destinations() {
        assert_eq!(
            Location::parse_destination_with("new.tar", fs).unwrap(),
            archive("new.tar", None)
        );
        assert_eq!(
            Location::parse_destination_with("localhost:5000/app:v1", fs).unwrap(),
            registry("localhost:5000/app:v1")
        );
        assert_eq!(
            Location::parse_destination_with("layout", fs).unwrap(),
            layout("layout", None)
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "oci:dir:v1",
            "oci-archive:x.tar:v1",
            "docker-archive:x.tar:docker.io/library/app:v1",
            "docker://ghcr.io/a/b:c",
        ] {
            let l = Location::parse_with(s, fs).unwrap();
            assert_eq!(l.to_string(), s);
            assert_eq!(Location::parse_with(&l.to_string(), fs).unwrap(), l);
        }
    }
}
