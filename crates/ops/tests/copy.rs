//! copy: between every kind of location, each layer compressed at most once.

mod common;

use common::*;
use hoist_image::Compression;
use hoist_ops::copy::{self, Layers, Options};
use hoist_testkit::registry::TestRegistry;

#[test]
fn tarball_to_layout_compresses_once_per_cache() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let tar = archive(&t.path().join("src.tar"));
    put(image(3, 1), &tar, &ctx());
    let ctx1 = cached(&cache);
    let a = copy::copy(
        &tar,
        &layout(&t.path().join("a"), "v1"),
        &Options::default(),
        &ctx1,
    )
    .unwrap();
    assert_eq!(ctx1.cache().unwrap().unwrap().stats().sealed, 3);
    // Another process, the same cache: nothing compressed, the same digest.
    let ctx2 = cached(&cache);
    let b = copy::copy(
        &tar,
        &layout(&t.path().join("b"), "v1"),
        &Options::default(),
        &ctx2,
    )
    .unwrap();
    let s = ctx2.cache().unwrap().unwrap().stats();
    assert_eq!((s.hits, s.sealed), (3, 0));
    assert_eq!(a.digest(), b.digest());
    valid(&layout(&t.path().join("b"), "v1"), &ctx2);

    // Layers converted: every one zstd, the image checks out.
    let z = layout(&t.path().join("z"), "v1");
    let opts = Options {
        layers: Layers::To(Compression::Zstd),
        ..Options::default()
    };
    copy::copy(&layout(&t.path().join("a"), "v1"), &z, &opts, &ctx2).unwrap();
    let m = image_at(&z, &ctx2).manifest().unwrap();
    let layers = &m.as_image().unwrap().layers;
    assert!(
        layers
            .iter()
            .all(|l| l.media_type.as_str().ends_with("zstd"))
    );
    valid(&z, &ctx2);

    // keep with a level is a contradiction.
    let bad = Options {
        layers: Layers::Keep,
        level: Some(3),
        ..Options::default()
    };
    let e = copy::copy(&tar, &z, &bad, &ctx2).unwrap_err();
    assert!(e.to_string().contains("--level and --fast"), "{e}");
}

#[test]
fn to_and_between_registries() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let src = layout(t.path(), "v1");
    let digest = put(image(2, 2), &src, &ctx);
    let a = at(&reg, "copy/a:v1");
    let r = copy::copy(&src, &a, &Options::default(), &ctx).unwrap();
    assert_eq!(r.digest(), Some(&digest), "keep: the layout's digest");
    // Registry to registry in one registry: the blobs are mounted, never uploaded.
    let b = at(&reg, "copy/b:v1");
    let r = copy::copy(&a, &b, &Options::default(), &ctx).unwrap();
    let p = r.push.unwrap();
    assert_eq!((p.blobs_uploaded, p.manifests_put), (0, 1), "{p:?}");
    assert_eq!(valid(&b, &ctx).digest, Some(digest.clone()));
    // no_clobber refuses an existing tag.
    let opts = Options {
        no_clobber: true,
        ..Options::default()
    };
    let e = copy::copy(&src, &b, &opts, &ctx).unwrap_err();
    assert!(e.to_string().contains("--no-clobber"), "{e}");
    // Every tag of a repository.
    put(image(1, 3), &at(&reg, "copy/a:v2"), &ctx);
    let all = Options {
        all_tags: true,
        ..Options::default()
    };
    let r = copy::copy(&at(&reg, "copy/a"), &at(&reg, "copy/all"), &all, &ctx).unwrap();
    assert_eq!(r.written.len(), 2);
    for w in &r.written {
        assert_eq!(valid(&w.location, &ctx).digest.as_ref(), Some(&w.digest));
    }
    // A local source has no repository to take every tag of.
    let e = copy::copy(&src, &b, &all, &ctx).unwrap_err();
    assert!(
        e.to_string().contains("copies a registry repository"),
        "{e}"
    );
}
