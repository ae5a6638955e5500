//! `docker save` tarballs (the `docker-archive:` of skopeo).
//!
//! - Source: [`Archive::open`] scans the tar once, recording each member's offset and size
//!   (nothing is extracted), and parses `manifest.json`; [`Image::open`] then gives an
//!   [`crate::Image`] whose layers are [`FromUncompressed`] over the members, read lazily by
//!   seeking into the file. Layer members may be plain tars or gzip / zstd compressed
//!   (detected by magic bytes). The config's `rootfs.diff_ids` are trusted for lookups and
//!   verified whenever a layer is read.
//! - Sink: [`write`] writes uncompressed layer tars, the config, `manifest.json` and
//!   `repositories`, loadable by `docker load` and `skopeo copy docker-archive:`, to a
//!   temporary file renamed into place at the end: nothing is half-written on error. A
//!   device or fifo, and [`write_stream`]'s writer (stdout), take the tarball as a stream.
//!
//! Members named with `..`, an absolute path, or through a symlink member are refused,
//! as are symlinks pointing outside the archive.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::digest::{DiffId, HashingReader};
use crate::error::{Error, ErrorKind, Result};
use crate::layer::{BoxRead, FromUncompressed, Layer, SpoolStore, Store, UncompressedSource};
use crate::manifest::{Config, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Manifest};
use crate::media_type::{Compression, MediaType};
use crate::output::{Named, Output};
use crate::partial::Assembled;
use crate::pipeline::{self, Encoding};
use crate::quote::quote;
use crate::reference::{DOCKER_HUB, Reference};

/// Symlinks followed when resolving a member, at most.
const MAX_LINK_HOPS: usize = 16;

#[derive(Debug, Clone)]
enum Kind {
    File { offset: u64, size: u64 },
    Dir,
    Symlink(String),
    Hardlink(String),
}

/// One entry of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestEntry {
    /// Member holding the config.
    pub config: String,
    /// Tags (`ubuntu:24.04`, `localhost:5000/app:v1`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
    /// Members holding the layers, base first.
    pub layers: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// A scanned `docker save` tarball.
#[derive(Debug)]
pub struct Archive {
    path: Arc<PathBuf>,
    members: HashMap<String, Kind>,
    manifest: Vec<ManifestEntry>,
}

/// Normalise a member name: strip `./` and empty / `.` components; refuse absolute
/// names and `..`.
fn normalize(path: &Path, name: &str) -> Result<String> {
    if name.starts_with('/') {
        return Err(Error::invalid_format(
            path,
            format!(
                "tar member {} has an absolute path; refusing an archive that writes outside its root",
                quote(name)
            ),
        ));
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::invalid_format(
                    path,
                    format!(
                        "tar member {} contains '..'; refusing an archive that escapes its root",
                        quote(name)
                    ),
                ));
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Resolve a symlink target relative to the link's directory; None if it leaves the root.
fn resolve_link(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl Archive {
    /// Scan the tarball and parse `manifest.json`.
    pub fn open(path: impl AsRef<Path>) -> Result<Archive> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(path.display(), e))?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io(path.display(), e))?
            .len();
        let bad_tar = |e: io::Error| {
            Error::invalid_format(
                &path,
                format!(
                    "not a readable tar archive (truncated?): {}",
                    quote(&e.to_string())
                ),
            )
        };
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let mut end = 0u64;
        for entry in archive.entries_with_seek().map_err(bad_tar)? {
            let entry = entry.map_err(bad_tar)?;
            let raw_name = entry.path_bytes();
            let name = std::str::from_utf8(&raw_name).map_err(|_| {
                Error::invalid_format(
                    &path,
                    format!("tar member name {} is not UTF-8", quote(&raw_name[..])),
                )
            })?;
            let name = normalize(&path, name)?;
            let offset = entry.raw_file_position();
            let size = entry.size();
            // Saturating: a corrupt header may claim any size up to 2^64.
            let data_end = offset.saturating_add(size);
            end = end.max(offset.saturating_add(size.div_ceil(512).saturating_mul(512)));
            let link = || -> Result<String> {
                let l = entry.link_name_bytes().unwrap_or_default();
                Ok(std::str::from_utf8(&l)
                    .map_err(|_| {
                        Error::invalid_format(
                            &path,
                            format!("link target of {} is not UTF-8", quote(&name)),
                        )
                    })?
                    .to_string())
            };
            let kind = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    if data_end > file_len {
                        return Err(Error::invalid_format(
                            &path,
                            format!(
                                "truncated archive: member {} needs bytes up to {data_end}, the file has {file_len}",
                                quote(&name)
                            ),
                        ));
                    }
                    Kind::File { offset, size }
                }
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => {
                    let target = link()?;
                    let resolved = resolve_link(&name, &target).ok_or_else(|| {
                        Error::invalid_format(
                            &path,
                            format!(
                                "tar member {} is a symlink to {}, outside the archive",
                                quote(&name),
                                quote(&target)
                            ),
                        )
                    })?;
                    Kind::Symlink(resolved)
                }
                tar::EntryType::Link => Kind::Hardlink(normalize(&path, &link()?)?),
                // Other types (devices, fifos, GNU/PAX metadata handled by the tar crate) are
                // never referenced by manifest.json; keep nothing.
                _ => continue,
            };
            members.insert(name, kind);
        }
        // A complete tar ends with zero blocks after the last member; a file cut at a
        // member boundary has none.
        if file_len < end.saturating_add(512) {
            return Err(Error::invalid_format(
                &path,
                format!(
                    "truncated archive: it ends at byte {file_len} without the end-of-archive blocks (expected at least {})",
                    end.saturating_add(512)
                ),
            ));
        }
        // Nothing may live under a symlink (`link/x` with `link -> /etc` would write through it).
        let links: HashSet<&str> = members
            .iter()
            .filter(|(_, k)| matches!(k, Kind::Symlink(_)))
            .map(|(n, _)| n.as_str())
            .collect();
        for name in members.keys() {
            let mut prefix = name.as_str();
            while let Some(i) = prefix.rfind('/') {
                prefix = &prefix[..i];
                if links.contains(prefix) {
                    return Err(Error::invalid_format(
                        &path,
                        format!(
                            "tar member {} is under {}, which is a symlink; refusing to go through it",
                            quote(name),
                            quote(prefix)
                        ),
                    ));
                }
            }
        }
        let mut a = Archive {
            path: Arc::new(path),
            members,
            manifest: Vec::new(),
        };
        let raw = a
            .read_member("manifest.json", MAX_MANIFEST_SIZE as u64)
            .map_err(|e| {
                if e.is_not_found() {
                    Error::invalid_format(
                        a.path.as_path(),
                        "no manifest.json in the archive; expected a `docker save` tarball",
                    )
                } else {
                    e
                }
            })?;
        a.manifest = serde_json::from_slice(&raw).map_err(|e| {
            Error::invalid_format(
                a.path.as_path(),
                format!(
                    "manifest.json is malformed: {e}; expected [{{\"Config\":..,\"RepoTags\":[..],\"Layers\":[..]}}]"
                ),
            )
        })?;
        if a.manifest.is_empty() {
            return Err(Error::invalid_format(
                a.path.as_path(),
                "manifest.json lists no images",
            ));
        }
        Ok(a)
    }

    /// The tarball's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries of `manifest.json`.
    pub fn manifest(&self) -> &[ManifestEntry] {
        &self.manifest
    }

    /// Offset and size of a regular member, following symlinks and hard links inside the archive.
    fn locate(&self, name: &str) -> Result<(u64, u64)> {
        let mut name = normalize(&self.path, name)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.members.get(&name) {
                Some(Kind::File { offset, size }) => return Ok((*offset, *size)),
                Some(Kind::Symlink(t)) | Some(Kind::Hardlink(t)) => name = t.clone(),
                Some(Kind::Dir) => {
                    return Err(Error::invalid_format(
                        self.path.as_path(),
                        format!("member {} is a directory, expected a file", quote(&name)),
                    ));
                }
                None => {
                    return Err(Error::not_found(format!(
                        "member {} in {}",
                        quote(&name),
                        self.path.display()
                    )));
                }
            }
        }
        Err(Error::invalid_format(
            self.path.as_path(),
            format!(
                "member {}: more than {MAX_LINK_HOPS} links deep",
                quote(&name)
            ),
        ))
    }

    fn open_member(&self, name: &str) -> Result<BoxRead> {
        let (offset, size) = self.locate(name)?;
        Ok(Box::new(open_at(&self.path, name, offset, size)?))
    }

    fn read_member(&self, name: &str, cap: u64) -> Result<Vec<u8>> {
        let (_, size) = self.locate(name)?;
        if size > cap {
            return Err(Error::invalid_format(
                self.path.as_path(),
                format!(
                    "member {} is {size} bytes, over the {cap} byte limit",
                    quote(name)
                ),
            ));
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.open_member(name)?
            .read_to_end(&mut buf)
            .map_err(|e| Error::from_io(self.path.display(), e))?;
        Ok(buf)
    }

    /// The `i`th image of `manifest.json`.
    pub fn image(&self, i: usize, opts: &Options) -> Result<Image> {
        let entry = self.manifest.get(i).ok_or_else(|| {
            Error::not_found(format!(
                "image {i} in {} (it has {})",
                self.path.display(),
                self.manifest.len()
            ))
        })?;
        let raw = self.read_member(&entry.config, MAX_CONFIG_SIZE as u64)?;
        let config = Config::from_raw(raw).map_err(|e| {
            Error::invalid_format(
                self.path.as_path(),
                format!("config {}: {e}", quote(&entry.config)),
            )
        })?;
        let diff_ids = &config.parsed().rootfs.diff_ids;
        if diff_ids.len() != entry.layers.len() {
            return Err(Error::invalid_format(
                self.path.as_path(),
                format!(
                    "manifest.json lists {} layers, config {} has {} rootfs.diff_ids",
                    entry.layers.len(),
                    quote(&entry.config),
                    diff_ids.len()
                ),
            ));
        }
        let store: Arc<dyn Store> = match &opts.store {
            Some(s) => s.clone(),
            None => Arc::new(SpoolStore::new()?),
        };
        let media_type = MediaType::oci_layer(opts.encoding.compression);
        let mut layers: Vec<Arc<dyn Layer>> = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(diff_ids) {
            let (offset, size) = self.locate(name)?;
            layers.push(Arc::new(FromUncompressed::new(
                Member {
                    archive: self.path.clone(),
                    name: name.clone(),
                    offset,
                    size,
                    diff_id: diff_id.clone(),
                },
                opts.encoding.clone(),
                media_type.clone(),
                store.clone(),
            )));
        }
        Ok(Image {
            image: Assembled::new(config, layers)?,
            repo_tags: entry.repo_tags.clone(),
        })
    }

    /// The image tagged `tag` (compared as references: `ubuntu` matches `ubuntu:latest`
    /// and `docker.io/library/ubuntu:latest`), or the only image when `tag` is None.
    pub fn find(&self, tag: Option<&str>) -> Result<usize> {
        let all_tags = || {
            let t: Vec<String> = self
                .manifest
                .iter()
                .flat_map(|e| e.repo_tags.iter().map(|t| quote(t).to_string()))
                .collect();
            if t.is_empty() {
                "none".to_string()
            } else {
                t.join(", ")
            }
        };
        let Some(tag) = tag else {
            if self.manifest.len() == 1 {
                return Ok(0);
            }
            return Err(Error::invalid_input(
                format!("archive {}", self.path.display()),
                format!(
                    "it holds {} images; name one (tags: {})",
                    self.manifest.len(),
                    all_tags()
                ),
            ));
        };
        let want = Reference::parse(tag).ok().map(with_latest);
        self.manifest
            .iter()
            .position(|e| {
                e.repo_tags.iter().any(|t| {
                    t == tag
                        || (want.is_some() && Reference::parse(t).ok().map(with_latest) == want)
                })
            })
            .ok_or_else(|| {
                Error::not_found(format!(
                    "tag {} in {} (tags: {})",
                    quote(tag),
                    self.path.display(),
                    all_tags()
                ))
            })
    }
}

fn with_latest(r: Reference) -> Reference {
    if r.tag().is_none() && r.digest().is_none() {
        r.with_tag(crate::reference::DEFAULT_TAG).unwrap_or(r)
    } else {
        r
    }
}

/// Open the `[offset, offset+size)` range of the archive, failing on a short read.
fn open_at(path: &Path, name: &str, offset: u64, size: u64) -> Result<Exact<io::Take<File>>> {
    let mut f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(path.display(), e))?;
    Ok(Exact {
        inner: f.take(size),
        left: size,
        path: path.to_path_buf(),
        name: name.to_string(),
    })
}

/// A reader of exactly `left` bytes: ending early is an error (the file was truncated).
struct Exact<R> {
    inner: R,
    left: u64,
    path: PathBuf,
    name: String,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(Error::invalid_format(
                &self.path,
                format!(
                    "truncated archive: member {} ends {} bytes early",
                    quote(&self.name),
                    self.left
                ),
            )
            .into_io());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A layer member of a tarball: the core of a tarball layer.
#[derive(Debug)]
pub struct Member {
    archive: Arc<PathBuf>,
    name: String,
    offset: u64,
    size: u64,
    diff_id: DiffId,
}

impl UncompressedSource for Member {
    fn open(&self) -> Result<BoxRead> {
        let mut r = open_at(&self.archive, &self.name, self.offset, self.size)?;
        // Sniff the compression from the first bytes.
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < magic.len() {
            let n = r
                .read(&mut magic[got..])
                .map_err(|e| Error::from_io(self.archive.display(), e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        let head = io::Cursor::new(magic[..got].to_vec());
        let whole: BoxRead = Box::new(head.chain(r));
        let compression = match &magic[..got] {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
            _ => Compression::None,
        };
        pipeline::decoder(compression, whole)
    }
    fn diff_id_hint(&self) -> Option<DiffId> {
        Some(self.diff_id.clone())
    }
}

/// How to read a tarball's image.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which image (by tag); None: the only one.
    pub tag: Option<String>,
    /// How layers are compressed when sealed (for a manifest, a push, a layout).
    pub encoding: Encoding,
    /// Where sealed layers are kept (default: a fresh [`SpoolStore`]).
    pub store: Option<Arc<dyn Store>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tag: None,
            encoding: Encoding::gzip(),
            store: None,
        }
    }
}

/// An image of a `docker save` tarball.
#[derive(Debug)]
pub struct Image {
    image: Assembled,
    repo_tags: Vec<String>,
}

impl Image {
    /// Open the image of `opts.tag` (or the only image) of the tarball at `path`.
    pub fn open(path: impl AsRef<Path>, opts: &Options) -> Result<Image> {
        let a = Archive::open(path)?;
        let i = a.find(opts.tag.as_deref())?;
        a.image(i, opts)
    }

    /// The tags `manifest.json` gives this image.
    pub fn repo_tags(&self) -> &[String] {
        &self.repo_tags
    }
}

impl crate::image::Image for Image {
    fn manifest(&self) -> Result<Manifest> {
        self.image.manifest()
    }
    fn config(&self) -> Result<Config> {
        self.image.config()
    }
    fn layers(&self) -> Result<Vec<Arc<dyn Layer>>> {
        self.image.layers()
    }
}

/// `repo:tag` as `docker save` writes it (`ubuntu:24.04`, `localhost:5000/app:v1`).
fn familiar(r: &Reference) -> Result<(String, String)> {
    if r.digest().is_some() && r.tag().is_none() {
        return Err(Error::invalid_input(
            format!("tag {r}"),
            "a docker-save tarball names images by tag, not by digest",
        ));
    }
    let repo = match (r.registry(), r.repository().strip_prefix("library/")) {
        (DOCKER_HUB, Some(short)) if !short.contains('/') => short.to_string(),
        (DOCKER_HUB, _) => r.repository().to_string(),
        (reg, _) => format!("{reg}/{}", r.repository()),
    };
    Ok((
        repo,
        r.tag().unwrap_or(crate::reference::DEFAULT_TAG).to_string(),
    ))
}

/// Write `image` as a `docker save` tarball at `path`, tagged `repo_tags`. A regular file
/// (or a new one) is written to a temporary file beside it, renamed into place only when
/// complete; a device or fifo (`/dev/stdout`, a named pipe) is written as a stream, never
/// replaced (see [`crate::output`]).
pub fn write(
    path: impl AsRef<Path>,
    image: &dyn crate::image::Image,
    repo_tags: &[Reference],
) -> Result<()> {
    let path = path.as_ref();
    let mut out = Output::create(path)?;
    if out.is_stream() {
        write_stream(out.file(), &path.display(), image, repo_tags)?;
    } else {
        let w = Named::new(
            BufWriter::with_capacity(1 << 20, out.file()),
            path.display(),
        );
        let mut sink = Seeking { w };
        write_members(&mut sink, image, repo_tags)?;
    }
    out.commit()
}

/// Write `image` as a `docker save` tarball into a stream (stdout, a pipe) named `name`
/// in errors. A tar header comes before its member and holds its size, so each layer is
/// spooled to an anonymous temporary file first (its uncompressed size is not known
/// before it is read); memory stays bounded.
pub fn write_stream(
    w: impl Write,
    name: &dyn std::fmt::Display,
    image: &dyn crate::image::Image,
    repo_tags: &[Reference],
) -> Result<()> {
    let mut sink = Spooling {
        w: Named::new(BufWriter::with_capacity(1 << 20, w), name),
        spool: None,
    };
    write_members(&mut sink, image, repo_tags)
}

fn write_members(
    w: &mut dyn MemberSink,
    image: &dyn crate::image::Image,
    repo_tags: &[Reference],
) -> Result<()> {
    let tags = repo_tags.iter().map(familiar).collect::<Result<Vec<_>>>()?;
    // Errors of the destination carry their own name (`Named`); others are the output's.
    let io_err = |e: io::Error| Error::from_io("tarball", e);
    let config = image.config()?;
    let diff_ids = config.parsed().rootfs.diff_ids.clone();
    let layers = image.layers()?;
    if layers.len() != diff_ids.len() {
        return Err(Error::invalid_manifest(
            format!("config {}", config.digest()),
            format!(
                "rootfs.diff_ids has {} entries, the image has {} layers",
                diff_ids.len(),
                layers.len()
            ),
        ));
    }
    let config_name = format!("{}.json", config.digest().hex());
    w.file(&config_name, config.raw()).map_err(io_err)?;
    let mut written = HashSet::new();
    let mut layer_names = Vec::new();
    for (i, (layer, diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
        let name = format!("{}.tar", diff_id.digest().hex());
        if written.insert(name.clone()) {
            let what = format!("layer {i}");
            w.streamed(&name, layer.uncompressed()?, diff_id.digest())
                .map_err(|e| {
                    crate::validate::name_diff_id_error(
                        Error::from_io(&what, e),
                        &what,
                        diff_id.digest(),
                    )
                })?;
        }
        layer_names.push(name);
    }
    let manifest = vec![ManifestEntry {
        config: config_name,
        repo_tags: tags.iter().map(|(r, t)| format!("{r}:{t}")).collect(),
        layers: layer_names,
    }];
    w.file(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("manifest.json serializes"),
    )
    .map_err(io_err)?;
    if let Some(top) = diff_ids.last() {
        let mut repos: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for (r, t) in &tags {
            repos.entry(r).or_default().insert(t, top.digest().hex());
        }
        if !repos.is_empty() {
            w.file(
                "repositories",
                &serde_json::to_vec(&repos).expect("repositories serializes"),
            )
            .map_err(io_err)?;
        }
    }
    w.finish().map_err(io_err)
}

/// Where tar members go: a seekable file, or a stream.
trait MemberSink {
    /// A member whose bytes are at hand.
    fn file(&mut self, name: &str, data: &[u8]) -> io::Result<()>;
    /// A member read from `src` (size unknown until its end), whose bytes must hash to
    /// `diff_id`.
    fn streamed(
        &mut self,
        name: &str,
        src: BoxRead,
        diff_id: &crate::digest::Digest,
    ) -> io::Result<()>;
    /// The end-of-archive blocks, flushed.
    fn finish(&mut self) -> io::Result<()>;
}

fn header(name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(name)
        .expect("hoist's member names are short ascii");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h
}

fn pad(w: &mut impl Write, size: u64) -> io::Result<()> {
    let pad = (512 - (size % 512) as usize) % 512;
    w.write_all(&[0u8; 512][..pad])
}

fn file_member(w: &mut impl Write, name: &str, data: &[u8]) -> io::Result<()> {
    w.write_all(header(name, data.len() as u64).as_bytes())?;
    w.write_all(data)?;
    pad(w, data.len() as u64)
}

/// A member's hash against its diff_id, the mismatch as an error for the member's reader.
fn check(src: HashingReader<BoxRead>, diff_id: &crate::digest::Digest) -> io::Result<()> {
    let (_, actual, bytes_read) = src.finish();
    if &actual == diff_id {
        return Ok(());
    }
    Err(Error::new(ErrorKind::DigestMismatch {
        expected: diff_id.clone(),
        actual,
        bytes_read,
    })
    .into_io())
}

/// Members into a seekable file: a provisional header, the data, then the real header
/// written over the provisional one. Each byte written once.
struct Seeking<W: Write + Seek> {
    w: W,
}

impl<W: Write + Seek> MemberSink for Seeking<W> {
    fn file(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        file_member(&mut self.w, name, data)
    }

    fn streamed(
        &mut self,
        name: &str,
        src: BoxRead,
        diff_id: &crate::digest::Digest,
    ) -> io::Result<()> {
        let mut src = HashingReader::with_algorithm(src, diff_id.algorithm());
        let start = self.w.stream_position()?;
        self.w.write_all(&[0u8; 512])?;
        let size = io::copy(&mut src, &mut self.w)?;
        check(src, diff_id)?;
        pad(&mut self.w, size)?;
        let end = self.w.stream_position()?;
        self.w.seek(SeekFrom::Start(start))?;
        self.w.write_all(header(name, size).as_bytes())?;
        self.w.seek(SeekFrom::Start(end))?;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.w.write_all(&[0u8; 1024])?;
        self.w.flush()
    }
}

/// Members into a stream: each streamed member is spooled to an anonymous temporary
/// file to learn its size, then written after its header.
struct Spooling<W: Write> {
    w: W,
    spool: Option<File>,
}

impl<W: Write> MemberSink for Spooling<W> {
    fn file(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        file_member(&mut self.w, name, data)
    }

    fn streamed(
        &mut self,
        name: &str,
        src: BoxRead,
        diff_id: &crate::digest::Digest,
    ) -> io::Result<()> {
        let mut src = HashingReader::with_algorithm(src, diff_id.algorithm());
        let spool = match &mut self.spool {
            Some(f) => f,
            None => self.spool.insert(
                tempfile::tempfile().map_err(|e| Error::io("temporary spool file", e).into_io())?,
            ),
        };
        spool.set_len(0)?;
        spool.seek(SeekFrom::Start(0))?;
        let size = io::copy(
            &mut src,
            &mut Named::new(&mut *spool, "temporary spool file"),
        )?;
        // Checked before a byte of the member reaches the stream, which cannot take it back.
        check(src, diff_id)?;
        spool.seek(SeekFrom::Start(0))?;
        self.w.write_all(header(name, size).as_bytes())?;
        let copied = io::copy(&mut (&mut *spool).take(size), &mut self.w)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "temporary spool file shrank",
            ));
        }
        pad(&mut self.w, size)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.w.write_all(&[0u8; 1024])?;
        self.w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_and_links() {
        let p = Path::new("x.tar");
        assert_eq!(normalize(p, "./a//b/./c").unwrap(), "a/b/c");
        assert!(
            normalize(p, "../x")
                .unwrap_err()
                .to_string()
                .contains("'..'")
        );
        assert!(normalize(p, "a/../../x").is_err());
        assert!(
            normalize(p, "/etc/x")
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
        assert_eq!(
            resolve_link("a/layer.tar", "../b/layer.tar").as_deref(),
            Some("b/layer.tar")
        );
        assert_eq!(resolve_link("a/layer.tar", "../../etc/passwd"), None);
        assert_eq!(resolve_link("a", "/etc/passwd"), None);
    }

    #[test]
    fn familiar_names() {
        let f = |s: &str| familiar(&Reference::parse(s).unwrap()).unwrap();
        assert_eq!(f("ubuntu"), ("ubuntu".into(), "latest".into()));
        assert_eq!(f("bitnami/redis:7"), ("bitnami/redis".into(), "7".into()));
        assert_eq!(
            f("localhost:5000/a/b:v1"),
            ("localhost:5000/a/b".into(), "v1".into())
        );
        assert!(
            familiar(&Reference::parse(&format!("a@sha256:{}", "0".repeat(64))).unwrap()).is_err()
        );
    }
}
