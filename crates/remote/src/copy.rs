//! Copy registry to registry through the push engine: the source is a registry
//! [`crate::source::Remote`] image or index whose layers stream from the source registry
//! into the uploads (bounded channels, no spool), byte-identical unless a compression is
//! asked for. Blobs already in another repository of the destination registry (the
//! source repository, when both are on one registry) are mounted, not sent.

use std::sync::Arc;

use hoist_image::pipeline::{self, Encoding};
use hoist_image::{Child, Platform, Store};

use crate::blobs::{Mount, Presence};
use crate::error::{Error, Result};
use crate::pull::{resolve, walk};
use crate::push::{self, Progress, Report};
use crate::repo::{Repository, Target};
use crate::source::Remote;
use crate::transport::Client;

/// How to copy.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The push engine's options (jobs, memory).
    pub push: push::Options,
    /// Copy only this platform of an index.
    pub platform: Option<Platform>,
    /// Convert layers to this compression (single images), sealing into `store`.
    pub encoding: Option<Encoding>,
    /// Where converted layers are sealed (a spool when `None`).
    pub store: Option<Arc<dyn Store>>,
    /// Refuse to overwrite a tag that exists at a destination.
    pub no_clobber: bool,
}

/// Copy `src:reference` to every target.
pub async fn copy(
    client: &Client,
    src: &Repository,
    reference: &str,
    targets: &[Target],
    opts: &Options,
    progress: Arc<dyn Progress>,
) -> Result<Report> {
    if opts.no_clobber {
        for t in targets {
            if let Some(tag) = &t.tag
                && let Some(d) = client.manifest_digest(&t.repo, tag).await?
            {
                return Err(Error::invalid_input(
                    format!("destination {t}"),
                    format!("the tag exists (at {d}) and --no-clobber is set"),
                ));
            }
        }
    }
    let (top, _) = resolve(client, src, reference, opts.platform.as_ref()).await?;
    if opts.encoding.is_none() {
        // Mount every blob into destination repositories on the source's registry.
        let same: Vec<&Target> = targets
            .iter()
            .filter(|t| t.repo.registry() == src.registry() && t.repo.name() != src.name())
            .collect();
        if !same.is_empty() {
            let (_, blobs) = walk(client, src, top.clone()).await?;
            for t in same {
                for d in &blobs {
                    mount_one(client, &t.repo, &d.digest, src.name()).await;
                }
            }
        }
    }
    let remote = Remote::new(
        client.clone(),
        src.clone(),
        crate::runtime::Runtime::from_handle(tokio::runtime::Handle::current()),
    );
    let encoding = opts.encoding.clone();
    let store = opts.store.clone();
    let source = tokio::task::spawn_blocking(move || -> Result<Child> {
        Ok(match remote.child_of(top) {
            Child::Image(img) => match encoding {
                Some(e) => {
                    let store: Arc<dyn Store> = match store {
                        Some(s) => s,
                        None => Arc::new(hoist_image::SpoolStore::new()?),
                    };
                    Child::Image(pipeline::recompress(img, &e, store)?)
                }
                None => Child::Image(img),
            },
            Child::Index(i) => match encoding {
                Some(e) => {
                    let store: Arc<dyn Store> = match store {
                        Some(s) => s,
                        None => Arc::new(hoist_image::SpoolStore::new()?),
                    };
                    Child::Index(pipeline::recompress_index(i, &e, store)?)
                }
                None => Child::Index(i),
            },
        })
    })
    .await
    .map_err(|e| Error::io("copy task", std::io::Error::other(e.to_string())))??;
    push::push(client, source, targets, &opts.push, progress).await
}

/// Mount a blob from `from` unless `repo` has it; a refused mount is left to the push
/// engine (which uploads), and an upload session the registry opened instead is cancelled.
async fn mount_one(client: &Client, repo: &Repository, digest: &hoist_image::Digest, from: &str) {
    if matches!(client.head_blob(repo, digest).await, Ok(Presence::Present)) {
        return;
    }
    match client.mount(repo, digest, from).await {
        Ok(Mount::Mounted) => {}
        Ok(Mount::Started(url)) => crate::upload::cancel(client, repo, url).await,
        Err(e) => tracing::debug!(%digest, error = %e, "mount refused"),
    }
}
