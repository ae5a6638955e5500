//! Rebase: swap the base layers of an image for another base's.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::image::Image;

use super::{assemble, is_docker, is_empty_layer};

/// `image` with the layers of `old_base` (which must be its first layers, by digest and
/// diff_id) replaced by the layers of `new_base`. The config is `image`'s, with
/// `rootfs.diff_ids` and `history` rebuilt: `new_base`'s history, then the entries of
/// `image` that come after `old_base`'s. Layers above the base are `image`'s own objects.
pub fn rebase(
    image: Arc<dyn Image>,
    old_base: &dyn Image,
    new_base: &dyn Image,
) -> Result<Arc<dyn Image>> {
    let m = image.manifest()?;
    let layers = image.layers()?;
    let config = image.config()?;
    let old_m = old_base.manifest()?;
    let old_config = old_base.config()?;
    let old_ids = &old_config.parsed().rootfs.diff_ids;
    let ids = &config.parsed().rootfs.diff_ids;
    let old_layers = old_m
        .as_image()
        .map(|x| x.layers.clone())
        .unwrap_or_default();
    let img_layers = m.as_image().map(|x| x.layers.clone()).unwrap_or_default();
    let not_prefix = |why: String| {
        Error::invalid_input(
            format!("old base {}", old_m.digest()),
            format!(
                "expected its layers to be the first layers of image {}: {why}",
                m.digest()
            ),
        )
    };
    if old_layers.len() > img_layers.len() {
        return Err(not_prefix(format!(
            "it has {} layers, the image {}",
            old_layers.len(),
            img_layers.len()
        )));
    }
    for (i, (o, l)) in old_layers.iter().zip(&img_layers).enumerate() {
        if o.digest != l.digest {
            return Err(not_prefix(format!(
                "layer {i} is {} in the old base, {} in the image",
                o.digest, l.digest
            )));
        }
        if old_ids.get(i) != ids.get(i) {
            return Err(not_prefix(format!("layer {i}'s diff_id differs")));
        }
    }
    let new_config = new_base.config()?;
    let mut out = config.parsed().clone();
    let np = new_config.parsed();
    if (np.os.as_str(), np.architecture.as_str()) != (out.os.as_str(), out.architecture.as_str()) {
        return Err(Error::invalid_input(
            format!("new base {}", new_base.manifest()?.digest()),
            format!(
                "expected platform {}, found {}",
                out.platform(),
                np.platform()
            ),
        ));
    }
    let k = old_layers.len();
    let mut new_layers = new_base.layers()?;
    out.rootfs.diff_ids = np.rootfs.diff_ids.clone();
    out.rootfs.diff_ids.extend(ids[k..].iter().cloned());
    new_layers.extend(layers[k..].iter().cloned());
    // History: drop the entries that belong to the old base's layers (all its entries when
    // the image's history starts with them, else the leading entries up to its k-th layer).
    let old_h = &old_config.parsed().history;
    let h = &out.history;
    let skip = if !old_h.is_empty() && h.starts_with(old_h) {
        old_h.len()
    } else {
        let mut seen = 0;
        let mut n = 0;
        for e in h {
            if seen == k {
                break;
            }
            if !is_empty_layer(e) {
                seen += 1;
            }
            n += 1;
        }
        n
    };
    let mut history = np.history.clone();
    history.extend(h[skip.min(h.len())..].iter().cloned());
    out.history = history;
    let annotations = m
        .as_image()
        .map(|x| x.annotations.clone())
        .unwrap_or_default();
    Ok(Arc::new(assemble(
        out,
        new_layers,
        is_docker(image.as_ref())? && is_docker(new_base)?,
        annotations,
    )?))
}
