//! append: directory and tar layers on scratch or on an image, reproducibly.

mod common;

use common::*;
use hoist_ops::append::{self, Base, Options};
use hoist_testkit::registry::TestRegistry;

#[test]
fn a_directory_layer_on_scratch_and_on_a_registry_image() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let dir = t.path().join("app");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/hello"), b"#!/bin/sh\necho hello\n").unwrap();
    let opts = Options {
        time: Some(0),
        ..Options::default()
    };
    let out = layout(&t.path().join("l"), "v1");
    let a = append::append(
        &Base::Scratch(None),
        std::slice::from_ref(&dir),
        &opts,
        &out,
        &ctx,
    )
    .unwrap();
    // The same inputs give the same digest.
    let again = layout(&t.path().join("l"), "v2");
    let b = append::append(
        &Base::Scratch(None),
        std::slice::from_ref(&dir),
        &opts,
        &again,
        &ctx,
    )
    .unwrap();
    assert_eq!(a.digest(), b.digest());
    let img = image_at(&out, &ctx);
    assert_eq!(img.layers().unwrap().len(), 1);
    valid(&out, &ctx);

    // On a registry image, to the registry: only the new layer and config are sent.
    let base = at(&reg, "app/base:v1");
    put(image(2, 1), &base, &ctx);
    let dst = at(&reg, "app/app:v1");
    let r = append::append(&Base::Image(base), &[dir], &opts, &dst, &ctx).unwrap();
    let p = r.push.unwrap();
    assert_eq!((p.blobs_uploaded, p.blobs_mounted), (2, 2), "{p:?}");
    assert_eq!(valid(&dst, &ctx).layers, 3);

    let e = append::append(&Base::Scratch(None), &[], &opts, &out, &ctx).unwrap_err();
    assert!(e.to_string().contains("no layer"), "{e}");
}
