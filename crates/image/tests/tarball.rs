//! docker-save tarballs: round trips, compressed members, and every bad input the issue lists.

use std::fs;
use std::io::Write;
use std::path::Path;

use hoist_image::tarball::{self, Archive};
use hoist_image::{Image, Reference, random, validate};

fn opts(seed: u64) -> random::Options {
    random::Options {
        layers: 3,
        size: 40_000,
        seed,
        ..Default::default()
    }
}

/// Append a member with a raw name (bypassing the tar crate's own path checks).
fn raw_member(
    b: &mut tar::Builder<impl Write>,
    name: &str,
    data: &[u8],
    kind: tar::EntryType,
    link: Option<&str>,
) {
    let mut h = tar::Header::new_old();
    let n = name.as_bytes();
    h.as_old_mut().name[..n.len()].copy_from_slice(n);
    if let Some(l) = link {
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

/// A docker-save tarball whose single layer is stored with `compress`.
fn handmade(
    path: &Path,
    layer_tar: &[u8],
    stored: &[u8],
    extra: impl FnOnce(&mut tar::Builder<fs::File>),
) {
    let diff_id = hoist_image::Digest::sha256(layer_tar);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let manifest =
        r#"[{"Config":"config.json","RepoTags":["hand:made"],"Layers":["abc/layer.tar"]}]"#;
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    raw_member(
        &mut b,
        "config.json",
        config.as_bytes(),
        tar::EntryType::Regular,
        None,
    );
    raw_member(
        &mut b,
        "abc/layer.tar",
        stored,
        tar::EntryType::Regular,
        None,
    );
    raw_member(
        &mut b,
        "manifest.json",
        manifest.as_bytes(),
        tar::EntryType::Regular,
        None,
    );
    extra(&mut b);
    b.finish().unwrap();
}

fn small_layer_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = b"hello from a layer\n".repeat(500);
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/hello").unwrap();
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn write_then_read_back_validates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img.tar");
    let img = random::image(&opts(1)).unwrap();
    let tags = [
        Reference::parse("example/app:v1").unwrap(),
        Reference::parse("localhost:5000/app").unwrap(),
    ];
    tarball::write(&path, img.as_ref(), &tags).unwrap();

    let a = Archive::open(&path).unwrap();
    assert_eq!(
        a.manifest()[0].repo_tags,
        ["example/app:v1", "localhost:5000/app:latest"]
    );
    for tag in [
        "example/app:v1",
        "docker.io/example/app:v1",
        "localhost:5000/app",
    ] {
        let back = tarball::Image::open(
            &path,
            &tarball::Options {
                tag: Some(tag.into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            back.config().unwrap().digest(),
            img.config().unwrap().digest()
        );
    }
    let back = tarball::Image::open(&path, &Default::default()).unwrap();
    // Same layers, same encoding: the same blobs and manifest, whichever source (the
    // pipeline's output does not depend on how the source chunks its reads).
    assert_eq!(
        back.manifest().unwrap().digest(),
        img.manifest().unwrap().digest()
    );
    let r = validate::image(&back, Default::default()).unwrap();
    assert_eq!(r.layers, 3);
    let e = tarball::Image::open(
        &path,
        &tarball::Options {
            tag: Some("nope:1".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("example/app:v1"), "{e}");
    // Only the tarball in the directory: no temporary file left.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn compressed_layer_members_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let layer = small_layer_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&layer).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&layer[..], 3).unwrap();
    for (name, stored) in [("plain", layer.clone()), ("gzip", gz), ("zstd", zst)] {
        let path = dir.path().join(format!("{name}.tar"));
        handmade(&path, &layer, &stored, |_| {});
        let img = tarball::Image::open(&path, &Default::default()).unwrap();
        validate::image(&img, Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut back = Vec::new();
        std::io::Read::read_to_end(
            &mut img.layers().unwrap()[0].uncompressed().unwrap(),
            &mut back,
        )
        .unwrap();
        assert_eq!(back, layer, "{name}");
    }
}

#[test]
fn docker_legacy_symlinked_layers_resolve_inside_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linked.tar");
    let layer = small_layer_tar();
    let diff_id = hoist_image::Digest::sha256(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}","{diff_id}"]}}}}"#
    );
    let manifest =
        r#"[{"Config":"c.json","RepoTags":null,"Layers":["a/layer.tar","b/layer.tar"]}]"#;
    let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
    raw_member(
        &mut b,
        "c.json",
        config.as_bytes(),
        tar::EntryType::Regular,
        None,
    );
    raw_member(&mut b, "a/layer.tar", &layer, tar::EntryType::Regular, None);
    raw_member(
        &mut b,
        "b/layer.tar",
        b"",
        tar::EntryType::Symlink,
        Some("../a/layer.tar"),
    );
    raw_member(
        &mut b,
        "manifest.json",
        manifest.as_bytes(),
        tar::EntryType::Regular,
        None,
    );
    b.finish().unwrap();
    let img = tarball::Image::open(&path, &Default::default()).unwrap();
    assert_eq!(validate::image(&img, Default::default()).unwrap().layers, 2);
}

fn open_err(path: &Path) -> String {
    let e = tarball::Image::open(path, &Default::default()).unwrap_err();
    e.to_string()
}

#[test]
fn truncated_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.tar");
    tarball::write(&path, random::image(&opts(2)).unwrap().as_ref(), &[]).unwrap();
    let full = fs::read(&path).unwrap();
    // Cut inside a layer, inside a header, and exactly at a member boundary (before the end blocks).
    for cut in [full.len() / 2, 512 + 100, full.len() - 1024] {
        fs::write(&path, &full[..cut]).unwrap();
        let msg = open_err(&path);
        assert!(
            msg.contains("t.tar") && msg.contains("truncated"),
            "cut {cut}: {msg}"
        );
    }
}

#[test]
fn member_named_dot_dot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.tar");
    handmade(&path, &small_layer_tar(), &small_layer_tar(), |b| {
        raw_member(b, "../x", b"evil", tar::EntryType::Regular, None)
    });
    let msg = open_err(&path);
    assert!(msg.contains("\"../x\"") && msg.contains("'..'"), "{msg}");
}

#[test]
fn member_with_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.tar");
    handmade(&path, &small_layer_tar(), &small_layer_tar(), |b| {
        raw_member(b, "/etc/x", b"evil", tar::EntryType::Regular, None)
    });
    let msg = open_err(&path);
    assert!(
        msg.contains("\"/etc/x\"") && msg.contains("absolute"),
        "{msg}"
    );
}

#[test]
fn member_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.tar");
    handmade(&path, &small_layer_tar(), &small_layer_tar(), |b| {
        raw_member(b, "link", b"", tar::EntryType::Symlink, Some("abc"));
        raw_member(b, "link/x", b"evil", tar::EntryType::Regular, None);
    });
    let msg = open_err(&path);
    assert!(
        msg.contains("\"link/x\"") && msg.contains("symlink"),
        "{msg}"
    );

    handmade(&path, &small_layer_tar(), &small_layer_tar(), |b| {
        raw_member(b, "out", b"", tar::EntryType::Symlink, Some("/etc/passwd"));
    });
    let msg = open_err(&path);
    assert!(
        msg.contains("\"out\"") && msg.contains("outside the archive"),
        "{msg}"
    );
}

#[test]
fn manifest_json_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nomanifest.tar");
    let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
    raw_member(&mut b, "config.json", b"{}", tar::EntryType::Regular, None);
    b.finish().unwrap();
    let msg = open_err(&path);
    assert!(
        msg.contains("nomanifest.tar") && msg.contains("no manifest.json"),
        "{msg}"
    );
}

#[test]
fn manifest_json_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.tar");
    for bad in [
        &b"{not json"[..],
        br#"{"Config":"x"}"#,
        br#"[{"Config":"x"}]"#,
        b"[]",
    ] {
        let mut b = tar::Builder::new(fs::File::create(&path).unwrap());
        raw_member(&mut b, "manifest.json", bad, tar::EntryType::Regular, None);
        b.finish().unwrap();
        let msg = open_err(&path);
        assert!(
            msg.contains("bad.tar") && msg.contains("manifest.json"),
            "{msg}"
        );
    }
}

#[test]
fn layer_not_matching_its_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lie.tar");
    let layer = small_layer_tar();
    let mut other = layer.clone();
    other[600] ^= 1;
    handmade(&path, &layer, &other, |_| {});
    // Opening trusts the diff_id (lookups); reading the layer checks it.
    let img = tarball::Image::open(&path, &Default::default()).unwrap();
    let e = validate::image(&img, Default::default()).unwrap_err();
    assert!(e.is_integrity(), "{e}");
    let diff_id = hoist_image::Digest::sha256(&layer).to_string();
    let msg = e.to_string();
    assert!(
        msg.contains(&diff_id) && msg.starts_with("layer 0: uncompressed content hashes to"),
        "{msg}"
    );
    // Writing it elsewhere fails too, and leaves nothing behind.
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let e = tarball::write(out.join("copy.tar"), &img, &[]).unwrap_err();
    assert!(
        e.is_integrity() && e.to_string().contains("rootfs.diff_ids lists"),
        "{e}"
    );
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
    let l = hoist_image::layout::Layout::create(out.join("l")).unwrap();
    let e = hoist_image::layout::write(&l, &img, Some("x")).unwrap_err();
    assert!(
        e.is_integrity() && e.to_string().starts_with("layer 0: "),
        "{e}"
    );
    assert!(l.index_manifest().unwrap().manifests.is_empty());
}

#[test]
fn conversions_are_lossless_and_deterministic() {
    for encoding in [
        hoist_image::pipeline::Encoding::gzip(),
        hoist_image::pipeline::Encoding::zstd(),
        hoist_image::pipeline::Encoding::none(),
    ] {
        convert(encoding);
    }
}

fn convert(enc: hoist_image::pipeline::Encoding) {
    let dir = tempfile::tempdir().unwrap();
    let img = random::image(&random::Options {
        mode: random::Mode::Text,
        encoding: enc.clone(),
        ..opts(11)
    })
    .unwrap();
    let topts = tarball::Options {
        encoding: enc,
        ..Default::default()
    };
    let tags = [Reference::parse("conv:1").unwrap()];
    // random -> tarball -> tarball: byte-identical archives.
    let first = dir.path().join("first.tar");
    tarball::write(&first, img.as_ref(), &tags).unwrap();
    let read = tarball::Image::open(&first, &topts).unwrap();
    let second = dir.path().join("second.tar");
    tarball::write(&second, &read, &tags).unwrap();
    assert_eq!(fs::read(&first).unwrap(), fs::read(&second).unwrap());
    // tarball -> layout -> tarball: same manifest, and byte-identical archives again.
    let l = hoist_image::layout::Layout::create(dir.path().join("l")).unwrap();
    let d = hoist_image::layout::write(&l, &read, Some("conv")).unwrap();
    assert_eq!(d.digest, *img.manifest().unwrap().digest());
    let from_layout = l.image("conv").unwrap();
    validate::image(from_layout.as_ref(), Default::default()).unwrap();
    let third = dir.path().join("third.tar");
    tarball::write(&third, from_layout.as_ref(), &tags).unwrap();
    assert_eq!(fs::read(&first).unwrap(), fs::read(&third).unwrap());
}

/// Many truncations and single-byte corruptions of a small archive: errors, never a panic.
#[test]
fn damaged_archives_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.tar");
    let img = random::image(&random::Options {
        layers: 2,
        size: 3000,
        seed: 5,
        ..Default::default()
    })
    .unwrap();
    tarball::write(&good, img.as_ref(), &[Reference::parse("a:b").unwrap()]).unwrap();
    let bytes = fs::read(&good).unwrap();
    let bad = dir.path().join("bad.tar");
    let check = |data: &[u8]| {
        fs::write(&bad, data).unwrap();
        let none = tarball::Options {
            encoding: hoist_image::pipeline::Encoding::none(),
            ..Default::default()
        };
        if let Ok(img) = tarball::Image::open(&bad, &none) {
            let _ = validate::image(&img, Default::default());
        }
    };
    for cut in (0..bytes.len()).step_by(211) {
        check(&bytes[..cut]);
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..150 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut d = bytes.clone();
        let i = (x as usize) % d.len();
        d[i] ^= (x >> 32) as u8 | 1;
        check(&d);
    }
}

/// A fuzz finding: the `tar` crate's message for a broken header quotes the header's
/// bytes (newlines, escape sequences) and the error went out as several lines. Such
/// messages are quoted now: one line, no control character.
#[test]
fn a_broken_tar_header_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut header = [0u8; 512];
    header[..8].copy_from_slice(b"a\nb\x1b[2Jc");
    // The checksum field is not a number: the tar crate quotes it and the name.
    header[148..156].copy_from_slice(b"n\nin\x1b[3x");
    let mut data = header.to_vec();
    data.extend_from_slice(&[0u8; 1024]);
    let bad = dir.path().join("bad.tar");
    fs::write(&bad, &data).unwrap();
    let e = tarball::Archive::open(&bad).unwrap_err().to_string();
    assert!(
        !e.chars().any(|c| c.is_control()),
        "raw control characters in {e:?}"
    );
    assert!(e.contains("not a readable tar archive"), "{e}");
    // And through the layer reader (export, flatten, append's checks).
    let e = hoist_image::mutate::check_tar(&data[..], "layer 0")
        .unwrap_err()
        .to_string();
    assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
}
