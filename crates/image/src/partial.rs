//! Images derived from a small core, in the spirit of go-containerregistry's `partial`
//! package: [`Assembled`] is a config plus a list of layers, and its manifest is derived
//! from them on first use and memoized. Generated images ([`crate::random`]), converted
//! ones ([`crate::pipeline::recompress`]), changed ones ([`crate::mutate`]) and a
//! tarball's images are all this one type.
//!
//! Asking for the manifest asks each layer for its descriptor: a field read for layers
//! that are sealed already (a layout's, a registry's, a cache hit), one sealing pass for
//! the others (each at most once: layers memoize it; [`crate::pipeline::SEAL_JOBS`] at
//! once).
//!
//! ```
//! use std::sync::Arc;
//! use hoist_image::{partial::Assembled, random, Image};
//! let img = random::image(&random::Options { layers: 1, size: 1000, ..Default::default() }).unwrap();
//! let copy = Assembled::new(img.config().unwrap(), img.layers().unwrap()).unwrap();
//! assert_eq!(copy.manifest().unwrap().digest(), img.manifest().unwrap().digest());
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::image::Image;
use crate::layer::Layer;
use crate::manifest::{Config, ImageManifest, Manifest};
use crate::media_type::MediaType;

/// An image made of a config and layers; its manifest (OCI unless [`Assembled::docker`])
/// is built when first asked and then memoized.
#[derive(Debug)]
pub struct Assembled {
    config: Config,
    layers: Vec<Arc<dyn Layer>>,
    docker: bool,
    annotations: BTreeMap<String, String>,
    manifest: OnceLock<Manifest>,
}

impl Assembled {
    /// An OCI image of `config` and `layers`, base layer first. The config's
    /// `rootfs.diff_ids` must list one diff_id per layer.
    pub fn new(config: Config, layers: Vec<Arc<dyn Layer>>) -> Result<Assembled> {
        let diff_ids = config.parsed().rootfs.diff_ids.len();
        if diff_ids != layers.len() {
            return Err(Error::invalid_manifest(
                format!("config {}", config.digest()),
                format!(
                    "rootfs.diff_ids has {diff_ids} entries for {} layers",
                    layers.len()
                ),
            ));
        }
        Ok(Assembled {
            config,
            layers,
            docker: false,
            annotations: BTreeMap::new(),
            manifest: OnceLock::new(),
        })
    }

    /// Describe the image with Docker schema 2 media types (manifest and config) instead
    /// of OCI's. Docker manifests have no annotations: those set are left out.
    pub fn docker(mut self, docker: bool) -> Assembled {
        self.docker = docker;
        self
    }

    /// The manifest's annotations (OCI only).
    pub fn annotations(mut self, annotations: BTreeMap<String, String>) -> Assembled {
        self.annotations = annotations;
        self
    }

    /// True when described with Docker schema 2 media types.
    pub fn is_docker(&self) -> bool {
        self.docker
    }
}

impl Image for Assembled {
    fn manifest(&self) -> Result<Manifest> {
        if let Some(m) = self.manifest.get() {
            return Ok(m.clone());
        }
        let layers = crate::pipeline::descriptors(&self.layers)?;
        let (manifest_type, config_type, annotations) = if self.docker {
            (
                MediaType::DockerManifest,
                MediaType::DockerConfig,
                BTreeMap::new(),
            )
        } else {
            (
                MediaType::OciManifest,
                MediaType::OciConfig,
                self.annotations.clone(),
            )
        };
        let m = Manifest::from_image(&ImageManifest {
            schema_version: 2,
            media_type: Some(manifest_type),
            artifact_type: None,
            config: self.config.descriptor(config_type),
            layers,
            subject: None,
            annotations,
        })?;
        Ok(self.manifest.get_or_init(|| m).clone())
    }
    fn config(&self) -> Result<Config> {
        Ok(self.config.clone())
    }
    fn layers(&self) -> Result<Vec<Arc<dyn Layer>>> {
        Ok(self.layers.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ConfigFile, RootFs};
    use crate::random;

    #[test]
    fn docker_and_annotations() {
        let img = random::image(&random::Options {
            layers: 2,
            size: 3000,
            ..Default::default()
        })
        .unwrap();
        let note = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let oci = Assembled::new(img.config().unwrap(), img.layers().unwrap())
            .unwrap()
            .annotations(note.clone());
        let m = oci.manifest().unwrap();
        assert_eq!(m.media_type(), &MediaType::OciManifest);
        assert_eq!(m.as_image().unwrap().annotations, note);
        assert_eq!(m.as_image().unwrap().layers.len(), 2);
        // Memoized: the same bytes every time.
        assert_eq!(oci.manifest().unwrap().raw(), m.raw());

        let docker = Assembled::new(img.config().unwrap(), img.layers().unwrap())
            .unwrap()
            .annotations(note)
            .docker(true);
        let m = docker.manifest().unwrap();
        assert_eq!(m.media_type(), &MediaType::DockerManifest);
        let parsed = m.as_image().unwrap();
        assert_eq!(parsed.config.media_type, MediaType::DockerConfig);
        assert!(parsed.annotations.is_empty());
    }

    #[test]
    fn diff_ids_must_match_the_layers() {
        let config = Config::from_file(&ConfigFile {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: Vec::new(),
            },
            history: Vec::new(),
            rest: Default::default(),
        });
        let img = random::image(&random::Options {
            layers: 1,
            size: 100,
            ..Default::default()
        })
        .unwrap();
        let e = Assembled::new(config, img.layers().unwrap()).unwrap_err();
        assert!(e.to_string().contains("0 entries for 1 layers"), "{e}");
    }
}
