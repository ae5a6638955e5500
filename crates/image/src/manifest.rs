//! Descriptors, manifests, indexes and configs, each kept as the raw bytes received plus
//! the parsed form. A digest is always of the raw bytes, never of a re-serialization.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::digest::{DiffId, Digest};
use crate::error::{Error, Result};
use crate::media_type::MediaType;
use crate::quote::quote;

/// Manifests (and indexes) larger than this are refused, as registries do.
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

/// Configs larger than this are refused (they are read into memory whole).
pub const MAX_CONFIG_SIZE: usize = 16 << 20;

/// Annotation key naming an image in an OCI layout's index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: MediaType,
    /// Digest of the referenced bytes.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Alternate download locations (non-distributable layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform, for index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Embedded content (base64), rarely used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    /// A plain descriptor.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type,
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            data: None,
        }
    }
}

/// A platform: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// Architecture (amd64, arm64, ...).
    pub architecture: String,
    /// Operating system (linux, windows, ...).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (v7, v8, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::invalid_input(
                format!("platform {}", quote(s)),
                "expected os/arch or os/arch/variant, like linux/amd64 or linux/arm/v7",
            ));
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
            os_version: None,
            os_features: Vec::new(),
        })
    }

    /// True when `self` (a wanted platform) is satisfied by `other` (an index entry):
    /// os and architecture equal, and the variant equal when `self` names one.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The parsed form of an image manifest (OCI or Docker schema 2; same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (optional in OCI, required by Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The parsed form of an index / manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Artifact type (OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The children.
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What a manifest document is.
#[allow(clippy::large_enum_variant)] // one per manifest; boxing buys nothing
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An image manifest.
    Image(ImageManifest),
    /// An index / manifest list.
    Index(IndexManifest),
}

/// A manifest or index: the raw bytes (the truth), their digest, the media type and the parsed form.
#[derive(Debug, Clone)]
pub struct Manifest {
    raw: Bytes,
    digest: Digest,
    media_type: MediaType,
    parsed: Parsed,
}

impl Manifest {
    /// Parse raw manifest bytes. `media_type` is the type it was served or stored with
    /// (a Content-Type or a descriptor's mediaType), used when the document has no
    /// `mediaType` field; when both exist they must agree.
    pub fn from_raw(raw: impl Into<Bytes>, media_type: Option<&MediaType>) -> Result<Manifest> {
        let raw = raw.into();
        if raw.len() > MAX_MANIFEST_SIZE {
            return Err(Error::invalid_manifest(
                "manifest",
                format!(
                    "{} bytes is over the {} byte limit",
                    raw.len(),
                    MAX_MANIFEST_SIZE
                ),
            ));
        }
        let digest = Digest::sha256(&raw);
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            media_type: Option<MediaType>,
            manifests: Option<serde_json::Value>,
            config: Option<serde_json::Value>,
        }
        let what = || format!("manifest {digest}");
        let probe: Probe = serde_json::from_slice(&raw)
            .map_err(|e| Error::invalid_manifest(what(), format!("not valid JSON: {e}")))?;
        let mt = match (&probe.media_type, media_type) {
            (Some(inner), Some(outer)) if inner != outer && is_manifest_type(outer) => {
                return Err(Error::invalid_manifest(
                    what(),
                    format!(
                        "its mediaType {} disagrees with {}",
                        quote(inner.as_str()),
                        quote(outer.as_str())
                    ),
                ));
            }
            (Some(inner), _) => inner.clone(),
            (None, Some(outer)) if is_manifest_type(outer) => outer.clone(),
            (None, _) if probe.manifests.is_some() => MediaType::OciIndex,
            (None, _) if probe.config.is_some() => MediaType::OciManifest,
            (None, _) => {
                return Err(Error::invalid_manifest(
                    what(),
                    "no mediaType, and neither config nor manifests",
                ));
            }
        };
        let parsed = if mt.is_manifest() {
            let m: ImageManifest = serde_json::from_slice(&raw)
                .map_err(|e| Error::invalid_manifest(what(), e.to_string()))?;
            Parsed::Image(m)
        } else if mt.is_index() {
            let m: IndexManifest = serde_json::from_slice(&raw)
                .map_err(|e| Error::invalid_manifest(what(), e.to_string()))?;
            Parsed::Index(m)
        } else {
            return Err(Error::invalid_manifest(
                what(),
                format!("unknown manifest media type {}", quote(mt.as_str())),
            ));
        };
        let schema = match &parsed {
            Parsed::Image(m) => m.schema_version,
            Parsed::Index(m) => m.schema_version,
        };
        if schema != 2 {
            return Err(Error::invalid_manifest(
                what(),
                format!("schemaVersion {schema}, expected 2"),
            ));
        }
        Ok(Manifest {
            raw,
            digest,
            media_type: mt,
            parsed,
        })
    }

    /// Serialize an image manifest (compact JSON) and wrap it.
    pub fn from_image(m: &ImageManifest) -> Result<Manifest> {
        let mt = m.media_type.clone().unwrap_or(MediaType::OciManifest);
        let raw = serde_json::to_vec(m).expect("manifest serializes");
        Manifest::from_raw(raw, Some(&mt))
    }

    /// Serialize an index (compact JSON) and wrap it.
    pub fn from_index(m: &IndexManifest) -> Result<Manifest> {
        let mt = m.media_type.clone().unwrap_or(MediaType::OciIndex);
        let raw = serde_json::to_vec(m).expect("index serializes");
        Manifest::from_raw(raw, Some(&mt))
    }

    /// The raw bytes.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// sha256 of the raw bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The media type.
    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }

    /// The parsed form.
    pub fn parsed(&self) -> &Parsed {
        &self.parsed
    }

    /// The image manifest, if this is one.
    pub fn as_image(&self) -> Option<&ImageManifest> {
        match &self.parsed {
            Parsed::Image(m) => Some(m),
            Parsed::Index(_) => None,
        }
    }

    /// The index, if this is one.
    pub fn as_index(&self) -> Option<&IndexManifest> {
        match &self.parsed {
            Parsed::Index(m) => Some(m),
            Parsed::Image(_) => None,
        }
    }

    /// A descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.raw.len() as u64,
        );
        d.artifact_type = match &self.parsed {
            Parsed::Image(m) => m.artifact_type.clone(),
            Parsed::Index(m) => m.artifact_type.clone(),
        };
        d
    }
}

fn is_manifest_type(m: &MediaType) -> bool {
    m.is_manifest() || m.is_index()
}

/// `rootfs` of a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always "layers".
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layers, base first.
    pub diff_ids: Vec<DiffId>,
}

/// The parsed form of an image config. Only the fields hoist reasons about are typed;
/// everything else is kept in `rest`, so a parse + serialize keeps unknown fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The layers' diff_ids.
    pub rootfs: RootFs,
    /// History entries (kept as JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<serde_json::Value>,
    /// Every other field, verbatim.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl ConfigFile {
    /// The platform this config describes.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
            os_version: None,
            os_features: Vec::new(),
        }
    }
}

/// An image config: raw bytes, digest and parsed form.
#[derive(Debug, Clone)]
pub struct Config {
    raw: Bytes,
    digest: Digest,
    parsed: ConfigFile,
}

impl Config {
    /// Parse raw config bytes.
    pub fn from_raw(raw: impl Into<Bytes>) -> Result<Config> {
        let raw = raw.into();
        let digest = Digest::sha256(&raw);
        if raw.len() > MAX_CONFIG_SIZE {
            return Err(Error::invalid_manifest(
                format!("config {digest}"),
                format!(
                    "{} bytes is over the {MAX_CONFIG_SIZE} byte limit",
                    raw.len()
                ),
            ));
        }
        let parsed: ConfigFile = serde_json::from_slice(&raw)
            .map_err(|e| Error::invalid_manifest(format!("config {digest}"), e.to_string()))?;
        Ok(Config {
            raw,
            digest,
            parsed,
        })
    }

    /// Serialize a config (compact JSON) and wrap it.
    pub fn from_file(f: &ConfigFile) -> Config {
        let raw = Bytes::from(serde_json::to_vec(f).expect("config serializes"));
        Config {
            digest: Digest::sha256(&raw),
            raw,
            parsed: f.clone(),
        }
    }

    /// The raw bytes.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// sha256 of the raw bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The parsed form.
    pub fn parsed(&self) -> &ConfigFile {
        &self.parsed
    }

    /// A descriptor for this config with the given media type.
    pub fn descriptor(&self, media_type: MediaType) -> Descriptor {
        Descriptor::new(media_type, self.digest.clone(), self.raw.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

    #[test]
    fn raw_is_truth() {
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_str::<serde_json::Value>(M).unwrap())
                .unwrap();
        let a = Manifest::from_raw(M.as_bytes().to_vec(), None).unwrap();
        let b = Manifest::from_raw(pretty.clone(), None).unwrap();
        assert_eq!(a.parsed(), b.parsed());
        assert_ne!(a.digest(), b.digest());
        assert_eq!(*b.digest(), Digest::sha256(&pretty));
        assert!(a.as_image().is_some());
    }

    #[test]
    fn refuses_bad() {
        let big = vec![b' '; MAX_MANIFEST_SIZE + 1];
        assert!(
            Manifest::from_raw(big, None)
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
        assert!(
            Manifest::from_raw(&b"{not json"[..], None)
                .unwrap_err()
                .to_string()
                .contains("JSON")
        );
        let e = Manifest::from_raw(M.as_bytes().to_vec(), Some(&MediaType::OciIndex)).unwrap_err();
        assert!(e.to_string().contains("disagrees"), "{e}");
        let e = Manifest::from_raw(&br#"{"schemaVersion":1,"config":{"mediaType":"a","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#[..], None).unwrap_err();
        assert!(e.to_string().contains("schemaVersion"), "{e}");
    }

    #[test]
    fn platform() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!(
            Platform::parse("linux/amd64")
                .unwrap()
                .matches(&Platform::parse("linux/amd64/v2").unwrap())
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//").is_err());
    }
}
