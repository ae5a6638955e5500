//! Manifests, indexes and configs from untrusted bytes, with any media type a registry
//! may claim: never a panic; a manifest's digest is the sha256 of the bytes received.
#![no_main]

use hoist_image::{Config, Digest, Manifest, MediaType};
use libfuzzer_sys::fuzz_target;

const TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.config.v1+json",
    "text/plain",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, raw)) = data.split_first() else {
        return;
    };
    let claimed = TYPES
        .get(pick as usize % (TYPES.len() + 1))
        .map(|t| MediaType::from(*t));
    match Manifest::from_raw(raw.to_vec(), claimed.as_ref()) {
        Ok(m) => {
            assert_eq!(m.digest(), &Digest::sha256(raw));
            assert_eq!(&m.raw()[..], raw);
            let d = m.descriptor();
            assert_eq!(d.size, raw.len() as u64);
            if let Some(img) = m.as_image() {
                for l in &img.layers {
                    let _ = l.media_type.layer_compression();
                    let _ = l.media_type.is_nondistributable();
                }
            }
            if let Some(ix) = m.as_index() {
                for c in &ix.manifests {
                    let _ = c.platform.as_ref().map(|p| p.to_string());
                }
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
    if let Ok(c) = Config::from_raw(raw.to_vec()) {
        assert_eq!(c.digest(), &Digest::sha256(raw));
        let _ = c.parsed().rootfs.diff_ids.len();
    }
});
