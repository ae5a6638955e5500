//! `hoist copy` and `hoist cache` as a user runs them: separate processes sharing a cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hoist_image::{Reference, layout, random, tarball, validate};

fn hoist() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
    c.env_remove("HOIST_CACHE_DIR")
        .env_remove("HOIST_CACHE_MAX")
        .env_remove("XDG_CACHE_HOME");
    c
}

/// `hoist ARGS` with the cache in `cache` (HOIST_CACHE_DIR: only verbs that use the
/// cache take --cache-dir).
fn run(args: &[&str], cache: &Path) -> Output {
    let out = hoist()
        .env("HOIST_CACHE_DIR", cache)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hoist {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// A docker-save tarball with `layers` text layers of 1 MiB.
fn archive(dir: &Path, layers: usize, seed: u64) -> PathBuf {
    let img = random::image(&random::Options {
        layers,
        size: 1 << 20,
        mode: random::Mode::Text,
        seed,
        ..Default::default()
    })
    .unwrap();
    let path = dir.join(format!("img{seed}.tar"));
    tarball::write(&path, img.as_ref(), &[Reference::parse("app:v1").unwrap()]).unwrap();
    path
}

fn valid_layout(dir: &Path, name: &str) -> usize {
    let l = layout::Layout::open(dir).unwrap();
    let img = l.image(name).unwrap();
    validate::image(img.as_ref(), Default::default())
        .unwrap()
        .layers
}

#[test]
fn the_second_copy_compresses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let tar = archive(t.path(), 3, 1);
    let cache = t.path().join("cache");
    let src = format!("docker-archive:{}", tar.display());
    let a = t.path().join("a");
    let b = t.path().join("b");

    let first = run(
        &["copy", "-v", &src, &format!("oci:{}:v1", a.display())],
        &cache,
    );
    assert!(
        stderr(&first).contains("0 hits, 3 layers compressed"),
        "{}",
        stderr(&first)
    );
    let second = run(
        &["copy", "-v", &src, &format!("oci:{}:v1", b.display())],
        &cache,
    );
    assert!(
        stderr(&second).contains("3 hits, 0 layers compressed"),
        "{}",
        stderr(&second)
    );
    // The same manifest digest, printed as DESTINATION@DIGEST.
    assert!(
        stdout(&first).starts_with(&format!("oci:{}:v1@sha256:", a.display())),
        "{}",
        stdout(&first)
    );
    let digest = |o: &Output| stdout(o).rsplit('@').next().unwrap().to_string();
    assert_eq!(digest(&first), digest(&second));
    assert!(digest(&first).starts_with("sha256:"));
    assert_eq!(valid_layout(&b, "v1"), 3);

    // Converting to zstd: decompress + seal once, then cached too.
    let z1 = run(
        &[
            "copy",
            "-v",
            "--compression",
            "zstd",
            &format!("oci:{}:v1", b.display()),
            &format!("oci:{}", t.path().join("z1").display()),
        ],
        &cache,
    );
    assert!(
        stderr(&z1).contains("0 hits, 3 layers compressed"),
        "{}",
        stderr(&z1)
    );
    let z2 = run(
        &[
            "copy",
            "-v",
            "--compression",
            "zstd",
            &src,
            &format!("oci:{}", t.path().join("z2").display()),
        ],
        &cache,
    );
    assert!(
        stderr(&z2).contains("3 hits, 0 layers compressed"),
        "{}",
        stderr(&z2)
    );
    assert_eq!(digest(&z1), digest(&z2));

    // --fast (igzip): its own cache entries, valid gzip, the same bytes on a second run.
    let f1 = run(
        &[
            "copy",
            "-v",
            "--fast",
            &src,
            &format!("oci:{}", t.path().join("f1").display()),
        ],
        &cache,
    );
    assert!(
        stderr(&f1).contains("3 layers compressed"),
        "{}",
        stderr(&f1)
    );
    let f2 = run(
        &[
            "copy",
            "-v",
            "--fast",
            "--no-cache",
            &src,
            &format!("oci:{}", t.path().join("f2").display()),
        ],
        &cache,
    );
    assert_eq!(digest(&f1), digest(&f2));
    assert_ne!(digest(&f1), digest(&z1));
    run(
        &[
            "validate",
            &format!("oci:{}", t.path().join("f1").display()),
        ],
        &cache,
    );

    let ls = run(&["cache", "ls"], &cache);
    assert_eq!(stdout(&ls).lines().count(), 9, "{}", stdout(&ls));
    assert!(stdout(&ls).contains("zstd-3") && stdout(&ls).contains("gzip.2-6"));
    assert!(stdout(&ls).contains("gzip.isal-1"));
    let pruned = run(&["cache", "prune"], &cache);
    assert!(
        stdout(&pruned).starts_with("removed 9 blobs"),
        "{}",
        stdout(&pruned)
    );
    assert_eq!(stdout(&run(&["cache", "ls"], &cache)), "");

    // And back to a docker-save tarball: the same image, and nothing compressed for it.
    let back = t.path().join("back.tar");
    let o = run(
        &[
            "copy",
            "-v",
            "--compression",
            "zstd",
            &format!("oci:{}:v1", a.display()),
            &format!("docker-archive:{}", back.display()),
        ],
        &cache,
    );
    assert!(stderr(&o).contains("0 layers compressed"), "{}", stderr(&o));
    // A docker-save tarball's digest is its image ID (the config's).
    let img = tarball::Image::open(&back, &Default::default()).unwrap();
    assert_eq!(
        stdout(&o),
        format!(
            "docker-archive:{}@{}",
            back.display(),
            hoist_image::Image::config(&img).unwrap().digest()
        )
    );
    assert_eq!(validate::image(&img, Default::default()).unwrap().layers, 3);
}

#[test]
fn two_processes_sealing_the_same_layers_at_once_agree() {
    let t = tempfile::tempdir().unwrap();
    let tar = archive(t.path(), 2, 2);
    let cache = t.path().join("cache");
    let src = format!("docker-archive:{}", tar.display());
    let children: Vec<_> = (0..2)
        .map(|i| {
            hoist()
                .args(["copy", "--threads", &(i + 1).to_string(), &src])
                .arg("--cache-dir")
                .arg(&cache)
                .arg(format!(
                    "oci:{}",
                    t.path().join(format!("out{i}")).display()
                ))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outs {
        assert!(o.status.success(), "{}", stderr(o));
    }
    let digest = |o: &Output| stdout(o).rsplit('@').next().unwrap().to_string();
    assert_eq!(
        digest(&outs[0]),
        digest(&outs[1]),
        "any thread count, the same bytes"
    );
    for i in 0..2 {
        assert_eq!(
            valid_layout(&t.path().join(format!("out{i}")), &digest(&outs[0])),
            2
        );
    }
    // The cache is whole: a third copy is served from it.
    let third = run(
        &[
            "copy",
            "-v",
            &src,
            &format!("oci:{}", t.path().join("out2").display()),
        ],
        &cache,
    );
    assert!(
        stderr(&third).contains("2 hits, 0 layers compressed"),
        "{}",
        stderr(&third)
    );
    assert_eq!(std::fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
}

#[test]
fn no_cache_and_cache_dir_settings() {
    let t = tempfile::tempdir().unwrap();
    let tar = archive(t.path(), 1, 3);
    let src = format!("docker-archive:{}", tar.display());
    let cache = t.path().join("unused");
    let o = run(
        &[
            "copy",
            "--no-cache",
            "-v",
            &src,
            &format!("oci:{}", t.path().join("n").display()),
        ],
        &cache,
    );
    assert!(stderr(&o).contains("cache disabled"));
    assert!(!cache.exists(), "--no-cache writes no cache");

    let path = |envs: &[(&str, &Path)]| {
        let mut c = hoist();
        for (k, v) in envs {
            c.env(k, v);
        }
        stdout(&c.args(["cache", "path"]).output().unwrap())
    };
    let x = t.path().join("xdg");
    let h = t.path().join("home");
    let e = t.path().join("env");
    assert_eq!(
        path(&[("XDG_CACHE_HOME", &x), ("HOME", &h)]),
        x.join("hoist").display().to_string()
    );
    assert_eq!(
        path(&[("HOME", &h)]),
        h.join(".cache/hoist").display().to_string()
    );
    assert_eq!(
        path(&[("HOIST_CACHE_DIR", &e), ("HOME", &h)]),
        e.display().to_string()
    );

    // HOIST_CACHE_DIR is used by copy.
    let o = hoist()
        .env("HOIST_CACHE_DIR", &e)
        .args([
            "copy",
            &src,
            &format!("oci:{}", t.path().join("m").display()),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(e.join("blobs/sha256")).unwrap().count(),
        1
    );
}

#[test]
fn bad_input_is_one_clear_line() {
    let t = tempfile::tempdir().unwrap();
    let tar = archive(t.path(), 1, 4);
    let src = format!("docker-archive:{}", tar.display());
    let dst = format!("oci:{}", t.path().join("o").display());
    let cases: &[(&[&str], &str)] = &[
        (
            &["copy", "--level", "13", &src, &dst],
            "invalid gzip level 13: expected 0..=12",
        ),
        (
            &["copy", "--compression", "zstd", "--level", "0", &src, &dst],
            "invalid zstd level 0",
        ),
        (
            &["copy", "--compression", "zstd", "--fast", &src, &dst],
            "the fast mode (igzip) is gzip level 1 only",
        ),
        (
            &["copy", "--compression", "keep", "--level", "3", &src, &dst],
            "--level and --fast need --compression gzip or zstd",
        ),
        (
            &["copy", "docker-archive:/nonexistent/x.tar", &dst],
            "/nonexistent/x.tar",
        ),
        (
            &["copy", "--cache-max", "lots", &src, &dst],
            "invalid size \"lots\"",
        ),
        (
            &["copy", "missing.tar", &dst],
            "location \"missing.tar\": no such file or directory",
        ),
        (
            &["copy", "dir:/tmp/x", &dst],
            "unsupported transport \"dir:\"",
        ),
        // The cache options are the verbs' own: one that does not use the cache has none.
        (
            &["validate", "--cache-dir", "x", &dst],
            "unexpected argument '--cache-dir'",
        ),
    ];
    for (args, want) in cases {
        let o = hoist()
            .env("HOIST_CACHE_DIR", t.path().join("c"))
            .args(*args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = stderr(&o);
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(
        !t.path().join("o").join("index.json").exists()
            || valid_layout_is_empty(&t.path().join("o"))
    );
}

fn valid_layout_is_empty(dir: &Path) -> bool {
    layout::Layout::open(dir)
        .unwrap()
        .index_manifest()
        .unwrap()
        .manifests
        .is_empty()
}
