//! inspect: digest, manifest, config from any location; ls, catalog, blob, referrers.

mod common;

use common::*;
use hoist_image::{Digest, Platform};
use hoist_ops::inspect;
use hoist_testkit::registry::TestRegistry;

#[test]
fn what_an_image_is_wherever_it_is() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let l = layout(t.path(), "v1");
    let r = at(&reg, "ins/app:v1");
    let d = put(index(2, 1), &l, &ctx);
    put(index(2, 1), &r, &ctx);
    let arm = Platform::parse("linux/arm64").unwrap();
    for loc in [&l, &r] {
        assert_eq!(inspect::digest(loc, None, &ctx).unwrap(), d, "{loc}");
        let m = inspect::manifest(loc, Some(&arm), &ctx).unwrap();
        assert!(m.as_image().is_some(), "{loc}: the platform's image");
        let c = inspect::config(loc, Some(&arm), &ctx);
        if loc == &r {
            assert_eq!(c.unwrap().parsed().architecture, "arm64");
        } else {
            let e = c.unwrap_err();
            assert!(e.to_string().contains("has no config"), "{e}");
        }
    }
    assert_eq!(
        inspect::ls(&reference(&reg, "ins/app"), &ctx).unwrap(),
        ["v1"]
    );
    assert!(
        inspect::catalog(&reg.host(), &ctx)
            .unwrap()
            .contains(&"ins/app".to_string())
    );
    // A blob, verified: the config of the arm64 image.
    let m = inspect::manifest(&r, Some(&arm), &ctx).unwrap();
    let config = &m.as_image().unwrap().config.digest;
    let mut out = Vec::new();
    let blob = reference(&reg, &format!("ins/app@{config}"));
    inspect::blob(&blob, &mut out, &ctx).unwrap();
    assert_eq!(&Digest::sha256(&out), config);
    let e = inspect::blob(&reference(&reg, "ins/app:v1"), &mut out, &ctx).unwrap_err();
    assert!(e.to_string().contains("REPO@DIGEST"), "{e}");
    // No referrers: an empty index.
    let refs = inspect::referrers(&reference(&reg, "ins/app:v1"), &ctx).unwrap();
    assert!(refs.as_index().unwrap().manifests.is_empty());
}
