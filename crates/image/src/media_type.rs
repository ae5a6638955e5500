//! Media types of OCI and Docker schema 2 objects, with predicates.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A media type. Known ones are variants; anything else is kept verbatim in `Other`.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaType {
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex,
    /// `application/vnd.oci.image.config.v1+json`
    OciConfig,
    /// `application/vnd.oci.image.layer.v1.tar`
    OciLayer,
    /// `application/vnd.oci.image.layer.v1.tar+gzip`
    OciLayerGzip,
    /// `application/vnd.oci.image.layer.v1.tar+zstd`
    OciLayerZstd,
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar`
    OciLayerNondistributable,
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar+gzip`
    OciLayerNondistributableGzip,
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar+zstd`
    OciLayerNondistributableZstd,
    /// `application/vnd.oci.empty.v1+json`
    OciEmpty,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList,
    /// `application/vnd.docker.container.image.v1+json`
    DockerConfig,
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip`
    DockerLayerGzip,
    /// `application/vnd.docker.image.rootfs.foreign.diff.tar.gzip`
    DockerForeignLayerGzip,
    /// Any other media type, verbatim.
    Other(String),
}

const TABLE: &[(MediaType, &str)] = &[
    (
        MediaType::OciManifest,
        "application/vnd.oci.image.manifest.v1+json",
    ),
    (
        MediaType::OciIndex,
        "application/vnd.oci.image.index.v1+json",
    ),
    (
        MediaType::OciConfig,
        "application/vnd.oci.image.config.v1+json",
    ),
    (
        MediaType::OciLayer,
        "application/vnd.oci.image.layer.v1.tar",
    ),
    (
        MediaType::OciLayerGzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    (
        MediaType::OciLayerZstd,
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ),
    (
        MediaType::OciLayerNondistributable,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
    ),
    (
        MediaType::OciLayerNondistributableGzip,
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ),
    (
        MediaType::OciLayerNondistributableZstd,
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    ),
    (MediaType::OciEmpty, "application/vnd.oci.empty.v1+json"),
    (
        MediaType::DockerManifest,
        "application/vnd.docker.distribution.manifest.v2+json",
    ),
    (
        MediaType::DockerManifestList,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ),
    (
        MediaType::DockerConfig,
        "application/vnd.docker.container.image.v1+json",
    ),
    (
        MediaType::DockerLayerGzip,
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    (
        MediaType::DockerForeignLayerGzip,
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ),
];

/// How a layer blob is compressed, as told by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Lowercase name: none, gzip, zstd.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MediaType {
    /// The media type string.
    pub fn as_str(&self) -> &str {
        if let MediaType::Other(s) = self {
            return s;
        }
        TABLE
            .iter()
            .find(|(m, _)| m == self)
            .map(|(_, s)| *s)
            .expect("every known variant is in TABLE")
    }

    /// An image manifest (OCI or Docker schema 2).
    pub fn is_manifest(&self) -> bool {
        matches!(self, MediaType::OciManifest | MediaType::DockerManifest)
    }

    /// An index / manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }

    /// An image config.
    pub fn is_config(&self) -> bool {
        matches!(self, MediaType::OciConfig | MediaType::DockerConfig)
    }

    /// Any layer media type (OCI or Docker, distributable or not).
    pub fn is_layer(&self) -> bool {
        self.layer_compression().is_some()
    }

    /// A non-distributable ("foreign") layer: registries may not hold it.
    pub fn is_nondistributable(&self) -> bool {
        matches!(
            self,
            MediaType::OciLayerNondistributable
                | MediaType::OciLayerNondistributableGzip
                | MediaType::OciLayerNondistributableZstd
                | MediaType::DockerForeignLayerGzip
        )
    }

    /// For a layer, how it is compressed; `None` for anything that is not a layer.
    pub fn layer_compression(&self) -> Option<Compression> {
        Some(match self {
            MediaType::OciLayer | MediaType::OciLayerNondistributable => Compression::None,
            MediaType::OciLayerGzip
            | MediaType::OciLayerNondistributableGzip
            | MediaType::DockerLayerGzip
            | MediaType::DockerForeignLayerGzip => Compression::Gzip,
            MediaType::OciLayerZstd | MediaType::OciLayerNondistributableZstd => Compression::Zstd,
            _ => return None,
        })
    }

    /// True for Docker schema 2 types.
    pub fn is_docker(&self) -> bool {
        self.as_str().starts_with("application/vnd.docker.")
    }

    /// The OCI layer type for a compression.
    pub fn oci_layer(c: Compression) -> MediaType {
        match c {
            Compression::None => MediaType::OciLayer,
            Compression::Gzip => MediaType::OciLayerGzip,
            Compression::Zstd => MediaType::OciLayerZstd,
        }
    }

    /// The same kind of layer with another compression, keeping the family (OCI or Docker)
    /// when it has that compression; Docker has no zstd or plain type, so those become OCI.
    pub fn with_compression(&self, c: Compression) -> MediaType {
        match (self, c) {
            (MediaType::DockerLayerGzip, Compression::Gzip) => MediaType::DockerLayerGzip,
            (MediaType::DockerForeignLayerGzip, Compression::Gzip) => {
                MediaType::DockerForeignLayerGzip
            }
            (m, c) if m.is_nondistributable() => match c {
                Compression::None => MediaType::OciLayerNondistributable,
                Compression::Gzip => MediaType::OciLayerNondistributableGzip,
                Compression::Zstd => MediaType::OciLayerNondistributableZstd,
            },
            (_, c) => MediaType::oci_layer(c),
        }
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        TABLE
            .iter()
            .find(|(_, t)| *t == s)
            .map(|(m, _)| m.clone())
            .unwrap_or_else(|| MediaType::Other(s.to_string()))
    }
}

impl FromStr for MediaType {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(MediaType::from(s))
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaType({})", self.as_str())
    }
}

impl Serialize for MediaType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(MediaType::from(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_predicates() {
        for (m, s) in TABLE {
            assert_eq!(MediaType::from(*s), *m);
            assert_eq!(m.as_str(), *s);
        }
        assert!(MediaType::DockerManifestList.is_index());
        assert!(MediaType::OciManifest.is_manifest());
        assert!(MediaType::DockerConfig.is_config());
        assert_eq!(
            MediaType::DockerLayerGzip.layer_compression(),
            Some(Compression::Gzip)
        );
        assert_eq!(
            MediaType::OciLayerZstd.layer_compression(),
            Some(Compression::Zstd)
        );
        assert!(MediaType::DockerForeignLayerGzip.is_nondistributable());
        assert!(!MediaType::OciConfig.is_layer());
        assert_eq!(
            MediaType::DockerLayerGzip.with_compression(Compression::Zstd),
            MediaType::OciLayerZstd
        );
        let other = MediaType::from("application/x-custom");
        assert_eq!(other.as_str(), "application/x-custom");
        assert!(!other.is_layer());
    }
}
