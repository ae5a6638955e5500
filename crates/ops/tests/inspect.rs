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
        // config of an index: the platform's image, by default this machine's (crane's
        // rule), anywhere the index is.
        let c = inspect::config(loc, Some(&arm), &ctx).unwrap();
        assert_eq!(c.parsed().architecture, "arm64", "{loc}");
        let host = hoist_remote::pull::host_platform();
        let c = inspect::config(loc, None, &ctx).unwrap();
        assert_eq!(c.parsed().architecture, host.architecture, "{loc}");
        let s390 = Platform::parse("linux/s390x").unwrap();
        let e = format!("{:#}", inspect::config(loc, Some(&s390), &ctx).unwrap_err());
        assert!(
            e.contains("linux/s390x") && e.contains("linux/arm64"),
            "{e}"
        );
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
