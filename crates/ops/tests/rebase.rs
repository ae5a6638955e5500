//! rebase: the old base's layers replaced by the new base's, nothing read.

mod common;

use common::*;
use hoist_ops::append::{self, Base};

#[test]
fn an_image_moves_to_a_new_base() {
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let old = layout(t.path(), "old");
    let new = layout(t.path(), "new");
    put(image(2, 1), &old, &ctx);
    put(image(3, 2), &new, &ctx);
    let dir = t.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.txt"), b"the app").unwrap();
    let app = layout(t.path(), "app");
    append::append(
        &Base::Image(old.clone()),
        &[dir],
        &Default::default(),
        &app,
        &ctx,
    )
    .unwrap();
    let out = layout(t.path(), "rebased");
    hoist_ops::rebase::rebase(&app, &old, &new, &out, &ctx).unwrap();
    let layers = |l| {
        image_at(l, &ctx)
            .manifest()
            .unwrap()
            .as_image()
            .unwrap()
            .layers
            .iter()
            .map(|d| d.digest.clone())
            .collect::<Vec<_>>()
    };
    let (got, base, own) = (layers(&out), layers(&new), layers(&app));
    assert_eq!(got.len(), 4);
    assert_eq!(got[..3], base[..]);
    assert_eq!(got[3], own[2]);
    valid(&out, &ctx);
    // Not the base of it: refused.
    let e = hoist_ops::rebase::rebase(&app, &new, &old, &out, &ctx).unwrap_err();
    assert!(format!("{e:#}").contains("rebasing"), "{e:#}");
}
