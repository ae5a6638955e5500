//! flatten: one layer of the merged filesystem.

mod common;

use std::collections::BTreeMap;
use std::io::Read;

use common::*;
use hoist_image::Layer;
use hoist_image::pipeline::Encoding;

/// Path → content of a layer's regular files.
fn files(l: &dyn Layer) -> BTreeMap<String, Vec<u8>> {
    let mut tar = Vec::new();
    l.uncompressed().unwrap().read_to_end(&mut tar).unwrap();
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(name, data);
        }
    }
    out
}

#[test]
fn flattened_image_has_one_layer_with_the_merged_files() {
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let src = layout(t.path(), "v1");
    put(image(3, 1), &src, &ctx);
    let out = layout(t.path(), "flat");
    hoist_ops::flatten::flatten(&src, &Encoding::zstd(), Some(0), &out, &ctx).unwrap();
    let layers = image_at(&out, &ctx).layers().unwrap();
    assert_eq!(layers.len(), 1);
    assert!(layers[0].media_type().unwrap().as_str().ends_with("zstd"));
    // Every layer writes the same file names: the top layer's files win.
    let mut want = BTreeMap::new();
    for l in image_at(&src, &ctx).layers().unwrap() {
        want.extend(files(l.as_ref()));
    }
    assert_eq!(files(layers[0].as_ref()), want);
    valid(&out, &ctx);
}
