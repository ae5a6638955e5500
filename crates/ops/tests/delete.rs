//! delete: a tag only, or a manifest with its tags.

mod common;

use common::*;
use hoist_ops::delete::{Deleted, delete};
use hoist_testkit::registry::TestRegistry;

#[test]
fn a_tag_then_a_manifest() {
    let reg = TestRegistry::start();
    let ctx = ctx();
    let d = put(image(1, 1), &at(&reg, "del/app:v1"), &ctx);
    put(image(1, 1), &at(&reg, "del/app:v2"), &ctx);
    let r = delete(&reference(&reg, "del/app:v1"), &ctx).unwrap();
    assert!(matches!(&r, Deleted::Tag(_, t) if t == "v1"), "{r}");
    assert_eq!(r.to_string(), format!("{}/del/app:v1", reg.host()));
    let tags = hoist_ops::inspect::ls(&reference(&reg, "del/app"), &ctx).unwrap();
    assert_eq!(tags, ["v2"]);
    let by_digest = reference(&reg, &format!("del/app@{d}"));
    assert!(matches!(
        delete(&by_digest, &ctx).unwrap(),
        Deleted::Manifest(..)
    ));
    let e = hoist_ops::inspect::digest(&at(&reg, "del/app:v2"), None, &ctx).unwrap_err();
    assert!(e.is_not_found(), "{e:#}");
    // Nothing implied.
    let e = delete(&reference(&reg, "del/app"), &ctx).unwrap_err();
    assert!(e.to_string().contains("name what to delete"), "{e}");
}
