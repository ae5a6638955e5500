//! index: create, append, filter and list multi-platform indexes.

mod common;

use common::*;
use hoist_image::Platform;
use hoist_image::mutate::{self, Edits};
use hoist_ops::index;
use hoist_testkit::registry::TestRegistry;

#[test]
fn create_append_filter_list() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let l = t.path().join("l");
    // Two images of two platforms.
    let amd = layout(&l, "amd");
    put(image(1, 1), &amd, &ctx);
    let arm = layout(&l, "arm");
    let edits = Edits {
        platform: Some(Platform::parse("linux/arm64").unwrap()),
        ..Default::default()
    };
    let img = mutate::edit(image_at(&amd, &ctx), &edits).unwrap();
    put(hoist_image::Child::Image(img), &arm, &ctx);

    let both = at(&reg, "idx/app:v1");
    index::create(&[amd.clone(), arm.clone()], &both, &ctx).unwrap();
    let entries = index::list(&both, &ctx).unwrap();
    let platforms: Vec<String> = entries
        .iter()
        .map(|d| d.platform.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(valid(&both, &ctx).images, 2);

    let only_arm = layout(&l, "only-arm");
    index::filter(
        &both,
        &[Platform::parse("linux/arm64").unwrap()],
        &only_arm,
        &ctx,
    )
    .unwrap();
    assert_eq!(index::list(&only_arm, &ctx).unwrap().len(), 1);

    // Appending an image of a platform already there replaces it.
    let grown = layout(&l, "grown");
    index::append(&only_arm, &[amd], &grown, &ctx).unwrap();
    assert_eq!(index::list(&grown, &ctx).unwrap().len(), 2);
    valid(&grown, &ctx);

    let e = index::list(&arm, &ctx).unwrap_err();
    assert!(e.to_string().contains("not an index"), "{e}");
}
