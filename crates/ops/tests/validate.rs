//! validate: the oracle on layouts, tarballs and registries; corruption is caught.

mod common;

use common::*;
use hoist_image::validate::Options;
use hoist_testkit::registry::TestRegistry;

#[test]
fn every_location_and_a_corrupt_blob() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let tar = archive(&t.path().join("x.tar"));
    put(image(2, 1), &tar, &ctx);
    let v = valid(&tar, &ctx);
    assert_eq!((v.images, v.layers), (1, 2));
    assert!(v.uncompressed_bytes > 40_000);
    let fast = hoist_ops::validate::validate(&tar, Options { fast: true }, &ctx).unwrap();
    assert_eq!((fast.layers, fast.bytes), (2, 0));

    let r = at(&reg, "val/app:v1");
    let d = put(index(2, 2), &r, &ctx);
    let v = valid(&r, &ctx);
    assert_eq!((v.indexes, v.images, v.digest), (1, 2, Some(d)));

    // One flipped byte in a layout's layer: an error naming the blob.
    let dir = t.path().join("l");
    let l = layout(&dir, "v1");
    put(image(1, 3), &l, &ctx);
    let m = image_at(&l, &ctx).manifest().unwrap();
    let blob = &m.as_image().unwrap().layers[0].digest;
    let path = dir.join("blobs/sha256").join(blob.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let e = hoist_ops::validate::validate(&l, Options::default(), &ctx).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("is not valid") && msg.contains(blob.hex()),
        "{msg}"
    );
}
