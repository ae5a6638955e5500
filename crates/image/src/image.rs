//! The [`Image`] and [`ImageIndex`] traits: what every source (layout, tarball, registry,
//! random, mutate) offers and every sink (layout, tarball, push) consumes.

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::layer::Layer;
use crate::manifest::{Config, Descriptor, Manifest};

/// A single-platform image.
pub trait Image: Send + Sync + fmt::Debug {
    /// The manifest (raw bytes are the truth). For a source whose layers are not yet
    /// compressed, this seals them first.
    fn manifest(&self) -> Result<Manifest>;
    /// The config.
    fn config(&self) -> Result<Config>;
    /// The layers, base first, in manifest order.
    fn layers(&self) -> Result<Vec<Arc<dyn Layer>>>;
}

/// A child of an index.
#[derive(Debug, Clone)]
pub enum Child {
    /// An image manifest.
    Image(Arc<dyn Image>),
    /// A nested index.
    Index(Arc<dyn ImageIndex>),
}

/// A multi-platform index (or an OCI layout's top-level index).
pub trait ImageIndex: Send + Sync + fmt::Debug {
    /// The index manifest.
    fn manifest(&self) -> Result<Manifest>;
    /// Resolve a child descriptor of this index to an image or a nested index.
    fn child(&self, descriptor: &Descriptor) -> Result<Child>;
}
