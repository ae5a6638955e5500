//! Multi-platform indexes from images and other indexes: [`create`], [`append_to`],
//! [`filter`]. The result is a lazy [`ImageIndex`]: its children are the given images (or
//! the base index's own children), so writing it copies or mounts what exists and reads
//! nothing else.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::image::{Child, Image, ImageIndex};
use crate::manifest::{Descriptor, IndexManifest, Manifest, Platform};
use crate::media_type::MediaType;

/// Where an [`Assembled`] index finds a child.
#[derive(Debug, Clone)]
enum Origin {
    /// Given directly.
    Own(Child),
    /// A child of another index, resolved there when asked.
    Of(Arc<dyn ImageIndex>),
}

/// An index built here; children resolve to the images given or to the base index's.
#[derive(Debug)]
pub struct Assembled {
    manifest: Manifest,
    children: Vec<(Descriptor, Origin)>,
}

impl ImageIndex for Assembled {
    fn manifest(&self) -> Result<Manifest> {
        Ok(self.manifest.clone())
    }
    fn child(&self, descriptor: &Descriptor) -> Result<Child> {
        let (d, origin) = self
            .children
            .iter()
            .find(|(d, _)| d.digest == descriptor.digest)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "manifest {} in index {}",
                    descriptor.digest,
                    self.manifest.digest()
                ))
            })?;
        match origin {
            Origin::Own(c) => Ok(c.clone()),
            Origin::Of(base) => base.child(d),
        }
    }
}

/// The index descriptor of an image: its manifest's, with the platform of its config.
pub fn image_descriptor(image: &dyn Image) -> Result<Descriptor> {
    let mut d = image.manifest()?.descriptor();
    let p = image.config()?.parsed().platform();
    if !p.os.is_empty() && !p.architecture.is_empty() {
        d.platform = Some(p);
    }
    Ok(d)
}

fn child_descriptor(child: &Child) -> Result<Descriptor> {
    match child {
        Child::Image(i) => image_descriptor(i.as_ref()),
        Child::Index(i) => Ok(i.manifest()?.descriptor()),
    }
}

fn assemble(
    children: Vec<(Descriptor, Origin)>,
    annotations: BTreeMap<String, String>,
) -> Result<Arc<Assembled>> {
    // One entry per manifest: a platform listed twice is ambiguous for clients.
    let mut seen = BTreeMap::new();
    for (d, _) in &children {
        if let Some(p) = &d.platform
            && let Some(other) = seen.insert(p.to_string(), d.digest.clone())
            && other != d.digest
        {
            return Err(Error::invalid_input(
                format!("platform {p}"),
                format!(
                    "expected one image per platform in an index, found {other} and {}",
                    d.digest
                ),
            ));
        }
    }
    let manifest = Manifest::from_index(&IndexManifest {
        schema_version: 2,
        media_type: Some(MediaType::OciIndex),
        artifact_type: None,
        manifests: children.iter().map(|(d, _)| d.clone()).collect(),
        subject: None,
        annotations,
    })?;
    Ok(Arc::new(Assembled { manifest, children }))
}

/// An OCI index of `children` (images or nested indexes), in the order given.
pub fn create(children: Vec<Child>) -> Result<Arc<Assembled>> {
    let c = children
        .into_iter()
        .map(|c| Ok((child_descriptor(&c)?, Origin::Own(c))))
        .collect::<Result<Vec<_>>>()?;
    assemble(c, BTreeMap::new())
}

/// An index's entries, each with where to resolve it.
type Entries = Vec<(Descriptor, Origin)>;

fn base_entries(base: &Arc<dyn ImageIndex>) -> Result<(Entries, BTreeMap<String, String>)> {
    let m = base.manifest()?;
    let idx = m.as_index().ok_or_else(|| {
        Error::invalid_manifest(format!("manifest {}", m.digest()), "expected an index")
    })?;
    Ok((
        idx.manifests
            .iter()
            .map(|d| (d.clone(), Origin::Of(base.clone())))
            .collect(),
        idx.annotations.clone(),
    ))
}

/// `base` with `children` added at the end. A child whose platform is already in `base`
/// replaces that entry (an index holds one image per platform).
pub fn append_to(base: Arc<dyn ImageIndex>, children: Vec<Child>) -> Result<Arc<Assembled>> {
    let (mut entries, annotations) = base_entries(&base)?;
    for c in children {
        let d = child_descriptor(&c)?;
        entries.retain(|(e, _)| {
            e.digest != d.digest && (d.platform.is_none() || e.platform != d.platform)
        });
        entries.push((d, Origin::Own(c)));
    }
    assemble(entries, annotations)
}

/// `base` with only the entries whose platform matches one of `platforms`
/// ([`Platform::matches`]: a variant is compared only when asked). None matching is an error.
pub fn filter(base: Arc<dyn ImageIndex>, platforms: &[Platform]) -> Result<Arc<Assembled>> {
    let (mut entries, annotations) = base_entries(&base)?;
    let all: Vec<String> = entries
        .iter()
        .filter_map(|(d, _)| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    entries.retain(|(d, _)| {
        d.platform
            .as_ref()
            .is_some_and(|p| platforms.iter().any(|want| want.matches(p)))
    });
    if entries.is_empty() {
        let want: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
        return Err(Error::not_found(format!(
            "platform {} in index {} (it has: {})",
            want.join(", "),
            base.manifest()?.digest(),
            if all.is_empty() {
                "none".to_string()
            } else {
                all.join(", ")
            }
        )));
    }
    assemble(entries, annotations)
}
