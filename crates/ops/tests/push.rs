//! push: a layout or a tarball to several destinations; a re-push sends nothing.

mod common;

use common::*;
use hoist_ops::push::{self, Options};
use hoist_testkit::registry::TestRegistry;

#[test]
fn a_tarball_to_two_destinations_then_again() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = cached(&t.path().join("cache"));
    let tar = archive(&t.path().join("src.tar"));
    put(image(3, 1), &tar, &ctx);
    let dsts = [reference(&reg, "push/a:v1"), reference(&reg, "push/b")];
    let r = push::push(&tar, &dsts, &Options::default(), &ctx).unwrap();
    assert_eq!(r.written.len(), 2);
    assert_eq!(r.written[0].digest, r.written[1].digest);
    let p = r.push.as_ref().unwrap();
    assert_eq!((p.blobs_uploaded, p.blobs_mounted), (4, 4), "{p:?}");
    // `latest` when no tag is given.
    assert_eq!(
        valid(&at(&reg, "push/b:latest"), &ctx).digest.as_ref(),
        r.digest()
    );
    // Again, as another process: the cache has every layer sealed, the registry every
    // blob.
    let ctx = cached(&t.path().join("cache"));
    let again = push::push(&tar, &dsts, &Options::default(), &ctx).unwrap();
    let p = again.push.unwrap();
    assert_eq!((p.blobs_uploaded, p.manifests_put), (0, 0), "{p:?}");
    assert_eq!(ctx.cache().unwrap().unwrap().stats().sealed, 0);
    assert_eq!(again.written, r.written);

    let e = push::push(&at(&reg, "push/a:v1"), &dsts, &Options::default(), &ctx).unwrap_err();
    assert!(e.to_string().contains("takes a local image"), "{e}");
}
