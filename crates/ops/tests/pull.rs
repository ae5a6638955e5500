//! pull: a registry image or index into a layout or a tarball.

mod common;

use common::*;
use hoist_image::Platform;
use hoist_ops::pull::{self, Options};
use hoist_ops::{DigestKind, Location};
use hoist_testkit::registry::TestRegistry;

#[test]
fn index_to_layout_and_one_platform_to_a_tarball() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let top = put(index(2, 1), &at(&reg, "pull/app:v1"), &ctx);
    let src = reference(&reg, "pull/app:v1");
    let dir = t.path().join("l");
    let r = pull::pull(&src, &layout(&dir, "v1"), &Options::default(), &ctx).unwrap();
    assert_eq!(r.digest(), Some(&top));
    let v = valid(&layout(&dir, "v1"), &ctx);
    assert_eq!((v.indexes, v.images), (1, 2));

    let tar = t.path().join("arm.tar");
    let opts = Options {
        platforms: hoist_ops::Platforms::one(Platform::parse("linux/arm64").unwrap()),
        ..Options::default()
    };
    let w = &pull::pull(&src, &archive(&tar), &opts, &ctx)
        .unwrap()
        .written[0];
    assert_eq!(
        w.kind,
        DigestKind::Manifest,
        "a registry image's digest is known"
    );
    let img = image_at(&archive(&tar), &ctx);
    assert_eq!(img.config().unwrap().parsed().architecture, "arm64");
    valid(&archive(&tar), &ctx);

    // Not a registry destination, not a missing tag.
    let e = pull::pull(&src, &at(&reg, "pull/x"), &Options::default(), &ctx).unwrap_err();
    assert!(e.to_string().contains("use hoist copy"), "{e}");
    let nope = reference(&reg, "pull/app:nope");
    let missing = t.path().join("never");
    let e = pull::pull(&nope, &layout(&missing, "x"), &Options::default(), &ctx).unwrap_err();
    assert!(format!("{e:#}").contains("nope"), "{e:#}");
    assert!(!missing.exists(), "nothing left behind");
}

#[test]
fn destinations() {
    let t = tempfile::tempdir().unwrap();
    let new_tar = t.path().join("new.tar");
    let new_dir = t.path().join("new-dir");
    let cases = [
        (new_tar.display().to_string(), "docker-archive"),
        (format!("{}/", new_dir.display()), "oci"),
        ("-".to_string(), "docker-archive:-"),
        (format!("oci:{}", new_tar.display()), "oci"),
    ];
    for (arg, want) in cases {
        let l = pull::destination(&arg).unwrap();
        assert!(l.to_string().starts_with(want), "{arg}: {l}");
    }
    assert!(matches!(
        pull::destination("localhost:5000/x:y").unwrap(),
        Location::Layout { .. }
    ));
}
