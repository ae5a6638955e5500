//! `docker save` tarballs from untrusted bytes: scanning, picking images, reading their
//! config and layers (plain, gzip or zstd members, symlinks and hard links between
//! members) and writing them out again as a stream. Never a panic, never a path outside
//! the archive, and what reads back matches the diff_ids the config claims.
#![no_main]

use std::io::Read;

use hoist_image::pipeline::Encoding;
use hoist_image::{Image, tarball};
use libfuzzer_sys::fuzz_target;

/// Bytes read from one layer at most (a zip bomb of a gzip member is cut here).
const MAX_LAYER_READ: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let dir = hoist_fuzz::scratch();
    let path = dir.path().join("in.tar");
    std::fs::write(&path, data).expect("scratch file");
    let archive = match tarball::Archive::open(&path) {
        Ok(a) => a,
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "{e}");
            return;
        }
    };
    let opts = tarball::Options {
        encoding: Encoding::none(),
        ..Default::default()
    };
    for i in 0..archive.manifest().len().min(4) {
        let Ok(img) = archive.image(i, &opts) else {
            continue;
        };
        let _ = img.repo_tags();
        let Ok(layers) = img.layers() else { continue };
        for l in &layers {
            if let Ok(r) = l.uncompressed() {
                let mut buf = Vec::new();
                let _ = r.take(MAX_LAYER_READ).read_to_end(&mut buf);
            }
            let _ = l.diff_id();
        }
        // Out again as a stream: each layer spooled, checked against its diff_id.
        let _ = tarball::write_stream(std::io::sink(), &"sink", &img, &[]);
        let _ = img.manifest();
    }
});
