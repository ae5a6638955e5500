//! export: the merged filesystem as one tar, to a file (replaced only when complete) or a
//! writer.

mod common;

use common::*;

#[test]
fn export_to_a_file_and_to_a_writer_agree() {
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let src = archive(&t.path().join("src.tar"));
    put(image(2, 1), &src, &ctx);
    let file = t.path().join("fs.tar");
    hoist_ops::export::export(&src, &file, &ctx).unwrap();
    let mut mem = Vec::new();
    hoist_ops::export::export_to(&src, &mut mem, &ctx).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), mem);
    let mut names = Vec::new();
    for e in tar::Archive::new(&mem[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("file-")),
        "{names:?}"
    );
    // A directory is not a file: nothing written, one clear error.
    let e = hoist_ops::export::export(&src, t.path(), &ctx).unwrap_err();
    assert!(format!("{e:#}").contains("directory"), "{e:#}");
}
