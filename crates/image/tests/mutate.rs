//! mutate: config edits keep layers untouched, appended layers are reproducible, flatten
//! and export apply whiteouts as the OCI spec says, rebase checks its prefix.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hoist_image::layout::{self, Layout};
use hoist_image::mutate::{self, Addendum, DirOptions, Edits};
use hoist_image::pipeline::Encoding;
use hoist_image::{BoxRead, Digest, Image, Layer, MediaType, SpoolStore, Store, validate};
use hoist_testkit::counting::CountingImage;

fn store() -> Arc<dyn Store> {
    Arc::new(SpoolStore::new().unwrap())
}

/// A tar file from (path, Some(content)) files and (path, None) directories.
fn tar_file(dir: &Path, name: &str, entries: &[(&str, Option<&str>)]) -> PathBuf {
    let p = dir.join(name);
    let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
    for (path, content) in entries {
        let mut h = tar::Header::new_gnu();
        match content {
            Some(c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(c.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, path, c.as_bytes()).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_mode(0o755);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
        }
    }
    b.finish().unwrap();
    p
}

fn tar_layer(p: &Path) -> Addendum {
    Addendum {
        layer: mutate::layer_from_path(
            p,
            DirOptions::default(),
            &Encoding::gzip(),
            MediaType::OciLayerGzip,
            store(),
        )
        .unwrap(),
        created_by: format!("test {}", p.display()),
    }
}

fn image_of(layers: &[&[(&str, Option<&str>)]]) -> (tempfile::TempDir, Arc<dyn Image>) {
    let t = tempfile::tempdir().unwrap();
    let add = layers
        .iter()
        .enumerate()
        .map(|(i, e)| tar_layer(&tar_file(t.path(), &format!("l{i}.tar"), e)))
        .collect();
    let img = mutate::append(mutate::scratch(None).unwrap(), add, Some(0)).unwrap();
    // Layers from files re-read their file for the uncompressed side: keep the files.
    (t, img)
}

/// The files of a tar: path → content ("<dir>" for directories).
fn listing(r: impl Read) -> BTreeMap<String, String> {
    let mut a = tar::Archive::new(r);
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().display().to_string();
        let v = if e.header().entry_type().is_dir() {
            "<dir>".to_string()
        } else {
            let mut s = Vec::new();
            e.read_to_end(&mut s).unwrap();
            String::from_utf8_lossy(&s).into_owned()
        };
        assert!(out.insert(p.clone(), v).is_none(), "{p} twice");
    }
    out
}

fn exported(img: &dyn Image) -> BTreeMap<String, String> {
    let mut buf = Vec::new();
    mutate::export(img, &mut buf).unwrap();
    listing(&buf[..])
}

type Files<'a> = &'a [(&'a str, Option<&'a str>)];

#[test]
fn whiteouts_table_export_and_flatten() {
    #[allow(clippy::type_complexity)]
    let table: &[(&str, &[Files], &[(&str, &str)])] = &[
        (
            "upper file shadows lower",
            &[&[("a", Some("1")), ("b", Some("b"))], &[("a", Some("2"))]],
            &[("a", "2"), ("b", "b")],
        ),
        (
            "file deleted",
            &[
                &[("etc", None), ("etc/x", Some("x")), ("etc/y", Some("y"))],
                &[("etc/.wh.x", Some(""))],
            ],
            &[("etc", "<dir>"), ("etc/y", "y")],
        ),
        (
            "directory deleted with its contents",
            &[
                &[("d", None), ("d/x", Some("x")), ("k", Some("k"))],
                &[(".wh.d", Some(""))],
            ],
            &[("k", "k")],
        ),
        (
            "directory made opaque: lower contents hidden, same-layer contents kept",
            &[
                &[
                    ("d", None),
                    ("d/old", Some("o")),
                    ("d/sub", None),
                    ("d/sub/deep", Some("z")),
                ],
                &[
                    ("d", None),
                    ("d/.wh..wh..opq", Some("")),
                    ("d/new", Some("n")),
                ],
            ],
            &[("d", "<dir>"), ("d/new", "n")],
        ),
        (
            "re-created after deletion: only the new contents",
            &[
                &[("d", None), ("d/old", Some("o"))],
                &[(".wh.d", Some(""))],
                &[("d", None), ("d/new", Some("n"))],
            ],
            &[("d", "<dir>"), ("d/new", "n")],
        ),
        (
            "file re-created after deletion",
            &[
                &[("f", Some("1"))],
                &[(".wh.f", Some(""))],
                &[("f", Some("3"))],
            ],
            &[("f", "3")],
        ),
        (
            "whiteout does not hide its own layer's file",
            &[
                &[("f", Some("1"))],
                &[(".wh.f", Some("")), ("g", Some("g"))],
            ],
            &[("g", "g")],
        ),
        (
            "file replaces a directory",
            &[&[("d", None), ("d/x", Some("x"))], &[("d", Some("file"))]],
            &[("d", "file")],
        ),
        (
            "./ prefixes are the same path",
            &[&[("a", Some("1"))], &[("./a", Some("2"))]],
            &[("a", "2")],
        ),
    ];
    for (desc, layers, want) in table {
        let (_files, img) = image_of(layers);
        let want: BTreeMap<String, String> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(exported(img.as_ref()), want, "export: {desc}");
        let flat = mutate::flatten(img.clone(), &Encoding::gzip(), store(), Some(0)).unwrap();
        let ls = flat.layers().unwrap();
        assert_eq!(ls.len(), 1, "{desc}");
        assert_eq!(
            listing(ls[0].uncompressed().unwrap()),
            want,
            "flatten: {desc}"
        );
        validate::image(flat.as_ref(), Default::default())
            .unwrap_or_else(|e| panic!("{desc}: {e}"));
        assert_eq!(flat.config().unwrap().parsed().history.len(), 1, "{desc}");
    }
}

#[test]
fn dotdot_paths_are_refused() {
    let t = tempfile::tempdir().unwrap();
    // tar::Builder refuses '..'; write the name into the header by hand.
    let p = t.path().join("evil.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..13].copy_from_slice(b"../etc/passwd");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        b.finish().unwrap();
    }
    let e = mutate::TarSource::open(&p).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("evil.tar") && msg.contains("../etc/passwd") && msg.contains("'..'"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");

    // An image whose layer already holds such a path: export and flatten refuse it.
    let layer: Arc<dyn Layer> = Arc::new(hoist_image::FromUncompressed::new(
        RawTar(std::fs::read(&p).unwrap()),
        Encoding::gzip(),
        MediaType::OciLayerGzip,
        store(),
    ));
    let img = mutate::append(
        mutate::scratch(None).unwrap(),
        vec![Addendum {
            layer,
            created_by: "evil".into(),
        }],
        None,
    )
    .unwrap();
    let e = mutate::export(img.as_ref(), std::io::sink()).unwrap_err();
    assert!(e.to_string().contains("'..'"), "{e}");
    let e = mutate::flatten(img, &Encoding::gzip(), store(), None).unwrap_err();
    assert!(e.to_string().contains("'..'"), "{e}");
}

#[derive(Debug)]
struct RawTar(Vec<u8>);
impl hoist_image::UncompressedSource for RawTar {
    fn open(&self) -> hoist_image::Result<BoxRead> {
        Ok(Box::new(std::io::Cursor::new(self.0.clone())))
    }
}

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("b/c")).unwrap();
    std::fs::write(root.join("b/c/z.txt"), "zz").unwrap();
    std::fs::write(root.join("a.txt"), "aa").unwrap();
    std::fs::write(root.join("b/y.txt"), "yy").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
}

#[test]
fn directory_layers_are_reproducible() {
    let t = tempfile::tempdir().unwrap();
    let (d1, d2) = (t.path().join("one"), t.path().join("two"));
    make_tree(&d1);
    // Same tree made in another order, at another time.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    make_tree(&d2);
    let build = |d: &Path, time: u64| {
        let opts = DirOptions {
            mtime: time,
            ..Default::default()
        };
        let layer =
            mutate::layer_from_path(d, opts, &Encoding::gzip(), MediaType::OciLayerGzip, store())
                .unwrap();
        let img = mutate::append(
            mutate::scratch(None).unwrap(),
            vec![Addendum {
                layer,
                created_by: "hoist append".into(),
            }],
            Some(time),
        )
        .unwrap();
        img.manifest().unwrap().digest().clone()
    };
    let a = build(&d1, 1_700_000_000);
    assert_eq!(
        a,
        build(&d2, 1_700_000_000),
        "same tree, same time: same digest"
    );
    assert_eq!(a, build(&d1, 1_700_000_000));
    assert_ne!(a, build(&d1, 1_700_000_001), "another time: another digest");

    // The tar: sorted, root-owned, fixed mtime.
    let src = mutate::DirSource::new(
        &d1,
        DirOptions {
            mtime: 42,
            ..Default::default()
        },
    )
    .unwrap();
    let mut a = tar::Archive::new(hoist_image::UncompressedSource::open(&src).unwrap());
    let mut names = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().mtime().unwrap(), 42);
        assert_eq!(e.header().uid().unwrap(), 0);
        names.push(e.path().unwrap().display().to_string());
    }
    let mut want = vec!["a.txt", "b", "b/c", "b/c/z.txt", "b/y.txt"];
    if cfg!(unix) {
        want.push("link");
    }
    assert_eq!(names, want);
}

fn random_layout(t: &Path, layers: usize, seed: u64) -> (Layout, Arc<dyn Image>) {
    let img = hoist_image::random::image(&hoist_image::random::Options {
        layers,
        size: 4000,
        seed,
        ..Default::default()
    })
    .unwrap();
    let l = Layout::create(t).unwrap();
    let d = layout::write(&l, img.as_ref(), Some("base")).unwrap();
    let back = l.image(&d.digest.to_string()).unwrap();
    (l, back)
}

#[test]
fn config_edits_read_no_layer_and_keep_history() {
    let t = tempfile::tempdir().unwrap();
    let (l, base) = random_layout(t.path(), 10, 7);
    let reads = Arc::new(AtomicUsize::new(0));
    let counted: Arc<dyn Image> = Arc::new(CountingImage {
        inner: base.clone(),
        reads: reads.clone(),
    });
    let mut e = Edits {
        labels: vec![("a".into(), "b".into())],
        annotations: vec![("org.example".into(), "yes".into())],
        env: vec![
            mutate::parse_env("PATH=/usr/bin").unwrap(),
            mutate::parse_env("EMPTY=").unwrap(),
        ],
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        cmd: Some(vec!["echo hi".into()]),
        user: Some("1000:1000".into()),
        workdir: Some("/work".into()),
        expose: vec!["8080".into(), "53/udp".into()],
        platform: Some(hoist_image::Platform::parse("linux/arm64/v8").unwrap()),
        time: Some(1_700_000_000),
    };
    let out = mutate::edit(counted.clone(), &e).unwrap();
    let m = out.manifest().unwrap();
    assert_eq!(
        m.as_image().unwrap().layers,
        base.manifest().unwrap().as_image().unwrap().layers,
        "same layer descriptors"
    );
    assert_eq!(m.as_image().unwrap().annotations["org.example"], "yes");
    let c = out.config().unwrap();
    let p = c.parsed();
    assert_eq!(p.rootfs, base.config().unwrap().parsed().rootfs);
    assert_eq!(
        p.history.len(),
        base.config().unwrap().parsed().history.len()
    );
    assert_eq!(p.rest["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
        ("linux", "arm64", Some("v8"))
    );
    let cc = &p.rest["config"];
    assert_eq!(cc["Labels"]["a"], "b");
    assert!(
        cc["Env"]
            .as_array()
            .unwrap()
            .contains(&"PATH=/usr/bin".into())
    );
    assert!(cc["Env"].as_array().unwrap().contains(&"EMPTY=".into()));
    assert_eq!(cc["Entrypoint"][1], "-c");
    assert_eq!(cc["User"], "1000:1000");
    assert_eq!(cc["WorkingDir"], "/work");
    assert!(cc["ExposedPorts"]["8080/tcp"].is_object() && cc["ExposedPorts"]["53/udp"].is_object());
    // Writing it to a layout copies no layer (present already) and reads none.
    let d = layout::write(&l, out.as_ref(), Some("edited")).unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 0, "no layer was read");
    validate::image(l.image("edited").unwrap().as_ref(), Default::default()).unwrap();
    assert_eq!(d.digest, *m.digest());
    // Reproducible; an env edit replaces the variable.
    assert_eq!(
        mutate::edit(counted.clone(), &e)
            .unwrap()
            .manifest()
            .unwrap()
            .digest(),
        m.digest()
    );
    e.env = vec![mutate::parse_env("PATH=/x").unwrap()];
    let again = mutate::edit(out, &e).unwrap();
    let env = again.config().unwrap().parsed().rest["config"]["Env"].clone();
    assert_eq!(
        env.as_array()
            .unwrap()
            .iter()
            .filter(|v| v.as_str().unwrap().starts_with("PATH="))
            .count(),
        1
    );
    assert!(env.as_array().unwrap().contains(&"PATH=/x".into()));
}

#[test]
fn bad_edits() {
    for bad in ["NOEQUALS", "=value", ""] {
        let e = mutate::parse_env(bad).unwrap_err().to_string();
        assert!(
            e.contains("expected KEY=VALUE") && e.contains(&format!("{bad:?}")),
            "{e}"
        );
    }
    for bad in ["0", "70000", "80/xyz", "http"] {
        let e = mutate::parse_port(bad).unwrap_err().to_string();
        assert!(e.contains("expected PORT"), "{e}");
    }
    let e = mutate::edit(
        mutate::scratch(None).unwrap(),
        &Edits {
            expose: vec!["nope".into()],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");
}

#[test]
fn append_keeps_base_layers_and_history_consistent() {
    let t = tempfile::tempdir().unwrap();
    let (l, base) = random_layout(&t.path().join("l"), 3, 1);
    let reads = Arc::new(AtomicUsize::new(0));
    let counted: Arc<dyn Image> = Arc::new(CountingImage {
        inner: base.clone(),
        reads: reads.clone(),
    });
    let f = tar_file(
        t.path(),
        "x.tar",
        &[("etc", None), ("etc/hello", Some("hi"))],
    );
    let out = mutate::append(counted, vec![tar_layer(&f)], Some(5)).unwrap();
    let m = out.manifest().unwrap();
    let bm = base.manifest().unwrap();
    assert_eq!(
        m.as_image().unwrap().layers[..3],
        bm.as_image().unwrap().layers[..]
    );
    assert_eq!(m.as_image().unwrap().layers.len(), 4);
    let c = out.config().unwrap();
    let non_empty = c
        .parsed()
        .history
        .iter()
        .filter(|h| !mutate::is_empty_layer(h))
        .count();
    assert_eq!(non_empty, 4, "one history entry per layer");
    layout::write(&l, out.as_ref(), Some("appended")).unwrap();
    assert_eq!(reads.load(Ordering::SeqCst), 0, "base layers were not read");
    validate::image(l.image("appended").unwrap().as_ref(), Default::default()).unwrap();
    assert_eq!(exported(out.as_ref())["etc/hello"], "hi");
}

#[test]
fn rebase_swaps_a_prefix_or_says_why_not() {
    let t = tempfile::tempdir().unwrap();
    let (l, old) = random_layout(&t.path().join("l"), 2, 11);
    let new = {
        let img = hoist_image::random::image(&hoist_image::random::Options {
            layers: 3,
            size: 3000,
            seed: 12,
            ..Default::default()
        })
        .unwrap();
        let d = layout::write(&l, img.as_ref(), Some("new")).unwrap();
        l.image(&d.digest.to_string()).unwrap()
    };
    let f = tar_file(t.path(), "app.tar", &[("app", Some("v1"))]);
    let app = mutate::append(old.clone(), vec![tar_layer(&f)], Some(1)).unwrap();
    layout::write(&l, app.as_ref(), Some("app")).unwrap();
    let app = l.image("app").unwrap();

    let out = mutate::rebase(app.clone(), old.as_ref(), new.as_ref()).unwrap();
    let m = out.manifest().unwrap();
    let ls = &m.as_image().unwrap().layers;
    assert_eq!(ls.len(), 4);
    assert_eq!(
        ls[..3],
        new.manifest().unwrap().as_image().unwrap().layers[..]
    );
    assert_eq!(ls[3], app.manifest().unwrap().as_image().unwrap().layers[2]);
    let c = out.config().unwrap();
    let h = &c.parsed().history;
    assert_eq!(h.iter().filter(|e| !mutate::is_empty_layer(e)).count(), 4);
    assert_eq!(
        h.last().unwrap()["created_by"],
        format!("test {}", f.display())
    );
    layout::write(&l, out.as_ref(), Some("rebased")).unwrap();
    validate::image(l.image("rebased").unwrap().as_ref(), Default::default()).unwrap();

    // The new base is not a prefix of the app: refused, one line, naming both.
    let e = mutate::rebase(app.clone(), new.as_ref(), old.as_ref())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("old base") && e.contains("expected its layers to be the first layers"),
        "{e}"
    );
    assert!(!e.contains('\n'));
}

#[test]
fn docker_archive_round_trip_and_scratch_append() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("tree");
    make_tree(&d);
    let layer = mutate::layer_from_path(
        &d,
        DirOptions::default(),
        &Encoding::gzip(),
        MediaType::OciLayerGzip,
        store(),
    )
    .unwrap();
    let img = mutate::append(
        mutate::scratch(None).unwrap(),
        vec![Addendum {
            layer,
            created_by: "x".into(),
        }],
        None,
    )
    .unwrap();
    let out = t.path().join("x.tar");
    hoist_image::tarball::write(
        &out,
        img.as_ref(),
        &[hoist_image::Reference::parse("x:y").unwrap()],
    )
    .unwrap();
    let back = hoist_image::tarball::Image::open(&out, &Default::default()).unwrap();
    assert_eq!(
        back.config().unwrap().digest(),
        img.config().unwrap().digest()
    );
}

#[test]
fn layout_gc_keeps_reachable_and_refuses_when_unsure() {
    let t = tempfile::tempdir().unwrap();
    let (l, base) = random_layout(t.path(), 2, 3);
    let edited = mutate::edit(
        base.clone(),
        &Edits {
            labels: vec![("x".into(), "1".into())],
            ..Default::default()
        },
    )
    .unwrap();
    layout::write(&l, edited.as_ref(), Some("base")).unwrap(); // replaces the tag
    let s = mutate::gc(&l).unwrap();
    assert_eq!(
        (s.removed, s.kept),
        (2, 4),
        "old manifest and config: {s:?}"
    );
    assert!(!l.has_blob(base.manifest().unwrap().digest()));
    validate::image(l.image("base").unwrap().as_ref(), Default::default()).unwrap();
    // A writer's temporary file is not a blob: left alone.
    std::fs::write(t.path().join("blobs/sha256/.tmp-abc"), b"partial").unwrap();
    assert_eq!(mutate::gc(&l).unwrap().removed, 0);
    assert!(t.path().join("blobs/sha256/.tmp-abc").exists());
    // A reachable manifest that cannot be read: nothing removed.
    let orphan = Digest::sha256(b"orphan");
    std::fs::write(l.blob_path(&orphan), b"orphan").unwrap();
    let m = edited.manifest().unwrap();
    std::fs::remove_file(l.blob_path(m.digest())).unwrap();
    let e = mutate::gc(&l).unwrap_err().to_string();
    assert!(e.contains("nothing removed"), "{e}");
    assert!(l.has_blob(&orphan));
}

#[test]
fn hard_links_escaping_the_root_and_special_files_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("link.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..4].copy_from_slice(b"evil");
        h.as_old_mut().linkname[..9].copy_from_slice(b"../shadow");
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Link);
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        b.finish().unwrap();
    }
    let e = mutate::TarSource::open(&p).unwrap_err().to_string();
    assert!(e.contains("../shadow") && e.contains("'..'"), "{e}");

    #[cfg(unix)]
    {
        let d = t.path().join("tree");
        std::fs::create_dir(&d).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        let layer = mutate::layer_from_path(
            &d,
            DirOptions::default(),
            &Encoding::gzip(),
            MediaType::OciLayerGzip,
            store(),
        )
        .unwrap();
        let e = layer.digest().unwrap_err().to_string();
        assert!(
            e.contains("sock") && e.contains("unsupported file type"),
            "{e}"
        );
    }
}
