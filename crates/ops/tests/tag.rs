//! tag: more tags for a registry image, a manifest PUT each, none when already there.

mod common;

use common::*;
use hoist_testkit::faults::Proxy;
use hoist_testkit::registry::TestRegistry;

#[test]
fn tags_cost_one_put_each_and_none_twice() {
    let reg = TestRegistry::start();
    let ctx = ctx();
    let d = put(image(1, 1), &at(&reg, "tag/app:v1"), &ctx);
    let proxy = Proxy::start(reg.addr(), vec![]);
    let src = hoist_image::Reference::parse(&format!("{}/tag/app:v1", proxy.addr())).unwrap();
    let tags = ["stable".to_string(), "prod".to_string()];
    let r = hoist_ops::tag::tag(&src, &tags, &ctx).unwrap();
    assert_eq!(r.written.len(), 2);
    assert!(r.written.iter().all(|w| w.digest == d));
    assert_eq!(proxy.counters().method("PUT"), 2);
    hoist_ops::tag::tag(&src, &tags, &ctx).unwrap();
    assert_eq!(proxy.counters().method("PUT"), 2, "already there");
    assert_eq!(valid(&at(&reg, "tag/app:prod"), &ctx).digest, Some(d));
    let e = hoist_ops::tag::tag(&src, &["-bad".to_string()], &ctx).unwrap_err();
    assert!(e.to_string().contains("-bad"), "{e}");
}
