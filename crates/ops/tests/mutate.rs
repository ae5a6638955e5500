//! mutate: a config edit reads no layer; from a registry, layers are mounted, not sent.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use hoist_image::mutate::{self, Edits};
use hoist_image::{Child, Image};
use hoist_testkit::counting::CountingImage;
use hoist_testkit::registry::TestRegistry;

fn edits() -> Edits {
    Edits {
        env: vec![mutate::parse_env("MODE=prod").unwrap()],
        labels: vec![("version".into(), "2".into())],
        ..Default::default()
    }
}

#[test]
fn editing_reads_no_layer_and_mounts_from_the_source_repository() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    // In a layout, through a counting wrapper: no layer byte is read.
    let base = layout(t.path(), "v1");
    put(image(3, 1), &base, &ctx);
    let reads = Arc::new(AtomicUsize::new(0));
    let counted: Arc<dyn Image> = Arc::new(CountingImage {
        inner: image_at(&base, &ctx),
        reads: reads.clone(),
    });
    let edited = mutate::edit(counted, &edits()).unwrap();
    let out = layout(t.path(), "edited");
    hoist_ops::write(&out, Child::Image(edited), &ctx).unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 0);
    valid(&out, &ctx);

    // From a registry to another repository of it: the config is new, the layers are
    // mounted from where they were read.
    let src = at(&reg, "mut/base:v1");
    put(image(3, 2), &src, &ctx);
    let dst = at(&reg, "mut/app:v2");
    let r = hoist_ops::mutate::mutate(&src, &edits(), &dst, &ctx).unwrap();
    let p = r.push.unwrap();
    assert_eq!((p.blobs_uploaded, p.blobs_mounted), (1, 3), "{p:?}");
    let config = image_at(&dst, &ctx).config().unwrap();
    let env = &config.parsed().rest["config"]["Env"];
    assert!(env.to_string().contains("MODE=prod"), "{env}");
    valid(&dst, &ctx);

    // An index: each image edited.
    let idx = at(&reg, "mut/multi:v1");
    put(index(2, 3), &idx, &ctx);
    let out = at(&reg, "mut/multi:v2");
    hoist_ops::mutate::mutate(&idx, &edits(), &out, &ctx).unwrap();
    assert_eq!(valid(&out, &ctx).images, 2);
}
