//! Sinks: [`write`] an image or an index to any [`Location`], and the [`Report`] every
//! verb that writes returns (one [`Written`] per destination).
//!
//! - A layout: blobs written once each (present ones skipped), then `index.json`
//!   (under the location's name, which must be a tag, not a digest).
//! - A docker-save tarball: single images only, layers uncompressed as `docker save`
//!   writes them; `-` is stdout (refused when it is a terminal), a device or a fifo is
//!   written as a stream, a regular file is replaced only once complete. What is
//!   reported is the image ID (the config's digest): a tarball has no manifest, and
//!   computing one would compress every layer for nothing.
//! - A registry: the push engine (HEADs, then parallel uploads of what is missing; a
//!   layer read from a repository of the same registry is mounted from there).

use std::fmt;
use std::io::IsTerminal;
use std::path::Path;

use hoist_image::layout::{self, Layout};
use hoist_image::{Child, Digest, Image, Reference, tarball};
use hoist_remote::push::{self, Pushed};
use hoist_remote::{Repository, Target};

use crate::context::Context;
use crate::error::{Context as _, Error, Result, bail};
use crate::location::{Location, STDOUT};

/// What a digest in a [`Written`] is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestKind {
    /// The manifest (of an image or an index): what a registry or a layout addresses.
    Manifest,
    /// The config (`docker images` calls it the image ID): what a tarball has.
    ImageId,
}

/// One destination written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Where.
    pub location: Location,
    /// The digest of what is there now.
    pub digest: Digest,
    /// What the digest is of.
    pub kind: DigestKind,
}

impl Written {
    /// A manifest written at `location`.
    pub(crate) fn manifest(location: Location, digest: Digest) -> Written {
        Written {
            location,
            digest,
            kind: DigestKind::Manifest,
        }
    }

    /// For a registry destination, `registry/repository@digest` (the form `hoist push`
    /// prints, with the registry host API requests go to).
    pub fn pinned(&self) -> Option<String> {
        match &self.location {
            Location::Registry(r) => {
                Some(format!("{}@{}", Repository::from_reference(r), self.digest))
            }
            _ => None,
        }
    }
}

impl Written {
    /// What a CLI prints for this destination, `REF@DIGEST`: a registry reference with
    /// the tag written and the digest (`127.0.0.1:5000/app:v1@sha256:...`; `latest` when
    /// the destination named no tag), else the location and the digest written there
    /// (`oci:out:v1@sha256:...`; for a docker-save tarball, the image ID).
    pub fn reference(&self) -> String {
        match &self.location {
            Location::Registry(r) => {
                let repo = format!("{}/{}", r.registry(), r.repository());
                match (r.tag(), r.digest()) {
                    (Some(t), _) => format!("{repo}:{t}@{}", self.digest),
                    (None, Some(_)) => format!("{repo}@{}", self.digest),
                    (None, None) => format!("{repo}:{}@{}", hoist_image::DEFAULT_TAG, self.digest),
                }
            }
            other => format!("{other}@{}", self.digest),
        }
    }
}

impl fmt::Display for Written {
    /// `LOCATION: DIGEST`, or `LOCATION: image ID DIGEST` for a tarball.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DigestKind::Manifest => write!(f, "{}: {}", self.location, self.digest),
            DigestKind::ImageId => write!(f, "{}: image ID {}", self.location, self.digest),
        }
    }
}

/// What a verb that writes did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per destination, in the order given (per tag for a copy of every tag).
    pub written: Vec<Written>,
    /// When a registry was written: what the push engine did (blobs present, mounted,
    /// uploaded, manifests put), summed over the pushes of the call.
    pub push: Option<push::Report>,
    /// When referrers were copied too (`copy` with referrers): what that moved.
    pub referrers: Option<hoist_remote::mirror::Moved>,
}

impl Report {
    /// The first destination's digest.
    pub fn digest(&self) -> Option<&Digest> {
        self.written.first().map(|w| &w.digest)
    }

    pub(crate) fn one(w: Written) -> Report {
        Report {
            written: vec![w],
            push: None,
            referrers: None,
        }
    }

    /// Add another call's report.
    pub(crate) fn extend(&mut self, other: Report) {
        self.written.extend(other.written);
        if let Some(p) = other.push {
            let mine = self.push.get_or_insert_with(push::Report::default);
            mine.pushed.extend(p.pushed);
            mine.blobs_present += p.blobs_present;
            mine.blobs_mounted += p.blobs_mounted;
            mine.blobs_uploaded += p.blobs_uploaded;
            mine.bytes_uploaded += p.bytes_uploaded;
            mine.manifests_put += p.manifests_put;
            mine.manifests_skipped += p.manifests_skipped;
        }
        if let Some(r) = other.referrers {
            *self.referrers.get_or_insert_with(Default::default) += r;
        }
    }
}

/// Write `src` to `dst`: a layout, a docker-save tarball (single images; the image ID
/// is reported) or a registry (the push engine).
pub fn write(dst: &Location, src: Child, ctx: &Context) -> Result<Report> {
    ctx.blocking(|| write_here(dst, src, ctx))
}

fn write_here(dst: &Location, src: Child, ctx: &Context) -> Result<Report> {
    match dst {
        Location::Registry(r) => {
            let opts = ctx.push_options()?;
            push_to(std::slice::from_ref(r), src, &opts, ctx)
                .with_context(|| format!("writing {dst}"))
        }
        _ => write_local(dst, crate::watch::child(src, ctx, dst)),
    }
}

/// Write to a layout, an oci-archive or a docker-save tarball.
fn write_local(dst: &Location, src: Child) -> Result<Report> {
    match dst {
        Location::Registry(_) => unreachable!("a local destination"),
        Location::Layout { name: Some(n), .. } if looks_like_digest(n) => {
            bail!("destination {dst}: name the image with a tag, not a digest")
        }
        Location::Layout { dir, name } => {
            let d = Layout::create(dir)
                .and_then(|l| match &src {
                    Child::Image(i) => layout::write(&l, i.as_ref(), name.as_deref()),
                    Child::Index(i) => layout::write_index(&l, i.as_ref(), name.as_deref()),
                })
                .with_context(|| format!("writing {dst}"))?;
            Ok(Report::one(Written::manifest(dst.clone(), d.digest)))
        }
        Location::OciArchive { name: Some(n), .. } if looks_like_digest(n) => {
            bail!("destination {dst}: name the image with a tag, not a digest")
        }
        Location::OciArchive { file, name } => {
            // The layout is made beside the archive (not in a /tmp that may be in RAM).
            let beside = match file.parent() {
                _ if dst.is_stdout() => std::env::temp_dir(),
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let tmp = tempfile::Builder::new()
                .prefix(".hoist-oci-archive-")
                .tempdir_in(&beside)
                .map_err(|e| hoist_image::Error::io(beside.display(), e))
                .with_context(|| format!("writing {dst}"))?;
            let layout = Location::Layout {
                dir: tmp.path().to_path_buf(),
                name: name.clone(),
            };
            let r = write_local(&layout, src).with_context(|| format!("writing {dst}"))?;
            crate::oci_archive::pack(tmp.path(), file).with_context(|| format!("writing {dst}"))?;
            let digest = r.digest().expect("a layout write reports").clone();
            Ok(Report::one(Written::manifest(dst.clone(), digest)))
        }
        Location::Archive { file, reference } => {
            let Child::Image(img) = src else {
                bail!(
                    "invalid destination {dst}: a docker-archive holds single images, not an index; pick a platform"
                );
            };
            let tags: Vec<Reference> = reference.iter().cloned().collect();
            write_tarball(file, img.as_ref(), &tags).with_context(|| format!("writing {dst}"))?;
            Ok(Report::one(image_id(dst, img.as_ref())?))
        }
    }
}

/// The [`Written`] of a tarball: its image ID.
pub(crate) fn image_id(dst: &Location, img: &dyn Image) -> Result<Written> {
    Ok(Written {
        location: dst.clone(),
        digest: img.config()?.digest().clone(),
        kind: DigestKind::ImageId,
    })
}

/// True for a layout name that starts like a digest (which must then be one).
pub(crate) fn looks_like_digest(name: &str) -> bool {
    name.starts_with("sha256:") || name.starts_with("sha512:")
}

/// Push `src` to registry references with the push engine (`latest` when a reference
/// has no tag; one with a digest is refused).
pub(crate) fn push_to(
    dsts: &[Reference],
    src: Child,
    opts: &push::Options,
    ctx: &Context,
) -> Result<Report> {
    let targets = dsts
        .iter()
        .map(Target::from_reference)
        .collect::<hoist_remote::Result<Vec<_>>>()?;
    let client = ctx.client()?;
    let progress = ctx.progress();
    let report = ctx.block_on(push::push(&client, src, &targets, opts, progress))?;
    Ok(pushed_report(dsts, report))
}

/// A [`Report`] from the push engine's, one [`Written`] per destination.
pub(crate) fn pushed_report(dsts: &[Reference], report: push::Report) -> Report {
    let written = dsts
        .iter()
        .zip(&report.pushed)
        .map(|(r, Pushed { digest, .. })| {
            Written::manifest(Location::Registry(r.clone()), digest.clone())
        })
        .collect();
    Report {
        written,
        push: Some(report),
        referrers: None,
    }
}

/// Write `image` as a docker-save tarball to `file`: `-` is stdout (refused when it is a
/// terminal), a device or fifo is written as a stream, a regular file is replaced only
/// once the tarball is complete.
pub fn write_tarball(file: &Path, image: &dyn Image, tags: &[Reference]) -> Result<()> {
    if file.as_os_str() != STDOUT {
        return Ok(tarball::write(file, image, tags)?);
    }
    let stdout = binary_stdout()?;
    Ok(tarball::write_stream(stdout, &"stdout", image, tags)?)
}

/// Stdout, for a tar: refused when it is a terminal (as `docker save` does).
pub fn binary_stdout() -> Result<std::io::StdoutLock<'static>> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        return Err(Error::invalid(
            "refusing to write a tar archive to a terminal; redirect stdout (> FILE, | docker load) or name a file",
        ));
    }
    Ok(stdout.lock())
}
