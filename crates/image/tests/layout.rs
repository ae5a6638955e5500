//! OCI layout: write random images and indexes, read them back, validate; bad layouts fail clearly.

use std::fs;

use hoist_image::layout::{self, Layout};
use hoist_image::{Child, Image, random, validate};

fn opts(seed: u64) -> random::Options {
    random::Options {
        layers: 2,
        size: 30_000,
        seed,
        ..Default::default()
    }
}

#[test]
fn several_images_and_a_nested_index_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let a = random::image(&opts(1)).unwrap();
    let b = random::image(&opts(2)).unwrap();
    let idx = random::index(&opts(3), 3).unwrap();
    let da = layout::write(&l, a.as_ref(), Some("a")).unwrap();
    let db = layout::write(&l, b.as_ref(), Some("b")).unwrap();
    let di = layout::write_index(&l, idx.as_ref(), Some("multi")).unwrap();
    // Writing again is idempotent and replaces the named entry.
    layout::write(&l, b.as_ref(), Some("a")).unwrap();

    let l = Layout::open(dir.path()).unwrap();
    assert_eq!(l.index_manifest().unwrap().manifests.len(), 3);
    assert_eq!(l.find("a").unwrap().digest, db.digest);
    assert!(l.find(&da.digest.to_string()).is_err(), "a was replaced");
    let img = l.image("b").unwrap();
    assert_eq!(
        img.manifest().unwrap().digest(),
        b.manifest().unwrap().digest()
    );
    let r = validate::image(img.as_ref(), Default::default()).unwrap();
    assert_eq!(r.layers, 2);
    // Layers read back are byte-identical to what was written.
    assert_eq!(
        img.layers().unwrap()[1].diff_id().unwrap(),
        b.layers().unwrap()[1].diff_id().unwrap()
    );

    match l.get("multi").unwrap() {
        Child::Index(i) => {
            assert_eq!(i.manifest().unwrap().digest(), &di.digest);
            let r = validate::index(i.as_ref(), Default::default()).unwrap();
            assert_eq!((r.indexes, r.images, r.layers), (1, 3, 6));
        }
        Child::Image(_) => panic!("expected an index"),
    }
    let e = l.image("multi").unwrap_err();
    assert!(e.to_string().contains("is an image index"), "{e}");
    // The whole layout (index.json with a nested index) validates.
    let r = validate::index(l.index().unwrap().as_ref(), Default::default()).unwrap();
    assert_eq!((r.indexes, r.images), (2, 5));
    // No temp files left behind.
    for e in fs::read_dir(dir.path().join("blobs/sha256")).unwrap() {
        let name = e.unwrap().file_name();
        assert!(!name.to_string_lossy().starts_with(".tmp"), "{name:?}");
    }
}

#[test]
fn missing_blob_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let a = random::image(&opts(4)).unwrap();
    layout::write(&l, a.as_ref(), Some("a")).unwrap();
    let layer = a.manifest().unwrap().as_image().unwrap().layers[0]
        .digest
        .clone();
    fs::remove_file(l.blob_path(&layer)).unwrap();
    let img = l.image("a").unwrap();
    let e = validate::image(img.as_ref(), Default::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&layer.to_string()) && msg.contains("not found"),
        "{msg}"
    );
    // fast mode does not read layer bytes, so it does not notice.
    validate::image(img.as_ref(), validate::Options { fast: true }).unwrap();
}

#[test]
fn corrupted_blob_is_a_digest_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    let a = random::image(&opts(5)).unwrap();
    layout::write(&l, a.as_ref(), Some("a")).unwrap();
    let layer = a.manifest().unwrap().as_image().unwrap().layers[1].clone();
    let path = l.blob_path(&layer.digest);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let img = l.image("a").unwrap();
    let e = validate::image(img.as_ref(), Default::default()).unwrap_err();
    assert!(e.is_integrity(), "{e}");
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");

    // A corrupted config is caught when the image is opened.
    let config = a.manifest().unwrap().as_image().unwrap().config.clone();
    fs::write(l.blob_path(&config.digest), b"{}").unwrap();
    let e = l.image("a").unwrap().config().unwrap_err();
    assert!(
        e.is_integrity() && e.to_string().contains(&config.digest.to_string()),
        "{e}"
    );
}

#[test]
fn bad_index_json_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::create(dir.path()).unwrap();
    fs::write(dir.path().join("index.json"), b"{not json").unwrap();
    let e = l.find("x").unwrap_err();
    assert!(e.to_string().contains("index.json"), "{e}");
}
