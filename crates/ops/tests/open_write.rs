//! open and write: every kind of location as a source and as a sink.

mod common;

use common::*;
use hoist_image::Child;
use hoist_ops::{DigestKind, Location, open};
use hoist_testkit::registry::TestRegistry;

#[test]
fn layouts_and_tarballs_open_and_write() {
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let dir = t.path().join("l");
    let img = image(1, 1);
    let one = put(img.clone(), &layout(&dir, "one"), &ctx);
    // One entry: the bare layout opens as that image; a second tag of it changes nothing.
    put(img.clone(), &layout(&dir, "again"), &ctx);
    let bare = Location::parse(&dir.display().to_string()).unwrap();
    match open(&bare, &ctx).unwrap() {
        Child::Image(i) => assert_eq!(i.manifest().unwrap().digest(), &one),
        Child::Index(_) => panic!("two tags of one manifest are one image"),
    }
    // Another image: the whole index.json.
    put(index(2, 2), &layout(&dir, "multi"), &ctx);
    assert!(matches!(open(&bare, &ctx).unwrap(), Child::Index(_)));
    // The oracle checks every entry of index.json: the image under both names, and the
    // two images of the index.
    assert_eq!(valid(&bare, &ctx).images, 4);

    // A tarball holds single images, and reports the image ID.
    let tar = t.path().join("x.tar");
    let e = hoist_ops::write(&archive(&tar), index(2, 2), &ctx).unwrap_err();
    assert!(format!("{e:#}").contains("not an index"), "{e:#}");
    let w = &hoist_ops::write(&archive(&tar), img.clone(), &ctx)
        .unwrap()
        .written[0];
    assert_eq!(w.kind, DigestKind::ImageId);
    let Child::Image(i) = open(&archive(&tar), &ctx).unwrap() else {
        panic!("a tarball holds images");
    };
    assert_eq!(i.config().unwrap().digest(), &w.digest);
    assert_eq!(valid(&archive(&tar), &ctx).images, 1);

    // A layout destination is named by a tag, not a digest.
    let e = hoist_ops::write(&layout(&dir, &one.to_string()), img, &ctx).unwrap_err();
    assert!(e.to_string().contains("not a digest"), "{e}");
    // Stdout is a destination only.
    let e = open(&Location::parse("-").unwrap(), &ctx).unwrap_err();
    assert!(e.to_string().contains("stdout is a destination"), "{e}");
}

#[test]
fn registries_open_and_write_through_the_push_engine() {
    let reg = TestRegistry::start();
    let ctx = ctx();
    let dst = at(&reg, "ow/app:v1");
    let report = hoist_ops::write(&dst, image(3, 3), &ctx).unwrap();
    let push = report.push.as_ref().unwrap();
    assert_eq!(push.blobs_uploaded, 4, "three layers and a config");
    let w = &report.written[0];
    assert_eq!(w.location, dst);
    assert_eq!(
        w.pinned().unwrap(),
        format!("{}/ow/app@{}", reg.host(), w.digest)
    );
    let r = valid(&dst, &ctx);
    assert_eq!(
        (r.images, r.layers, r.digest.as_ref()),
        (1, 3, Some(&w.digest))
    );
    // An index, every platform; open_image picks one.
    let idx = at(&reg, "ow/multi:v1");
    put(index(2, 4), &idx, &ctx);
    assert!(matches!(open(&idx, &ctx).unwrap(), Child::Index(_)));
    let how = hoist_ops::Open {
        platform: Some(hoist_image::Platform::parse("linux/arm64").unwrap()),
        ..Default::default()
    };
    let arm = hoist_ops::open_image(&idx, &how, &ctx).unwrap();
    assert_eq!(arm.config().unwrap().parsed().architecture, "arm64");
}
