//! `hoist pull`, `hoist copy docker://...` and the inspect verbs, as processes, against the
//! in-process registry: round trips validated, platforms selected, registry-to-registry
//! copies byte-identical, and bad input answered with one-line errors.

use std::path::Path;
use std::process::{Command, Output};

use hoist_testkit::registry::TestRegistry;

fn hoist(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .env("HOIST_CACHE_DIR", home.join("cache"))
        .env("HOME", home)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output, needle: &str) {
    assert!(!out.status.success(), "should fail");
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    assert!(e.contains(needle), "{needle:?} not in {e}");
}

/// A two-platform index pushed to `reg` as `name:v1`; returns its digest.
fn seed_index(reg: &TestRegistry, home: &Path, name: &str) -> String {
    let src = home.join("src");
    ok(&hoist(
        &[
            "random",
            &format!("oci:{}", src.display()),
            "--layers",
            "2",
            "--size",
            "64k",
            "--index",
            "2",
        ],
        home,
    ));
    let out = ok(&hoist(
        &[
            "push",
            "--quiet",
            &format!("oci:{}", src.display()),
            &format!("{}/{name}:v1", reg.host()),
        ],
        home,
    ));
    out.trim().rsplit_once('@').unwrap().1.to_string()
}

#[test]
fn pull_index_to_layout_platform_and_tarball() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let digest = seed_index(&reg, home, "pull/app");
    let src = format!("{}/pull/app:v1", reg.host());

    // Whole index into a layout, validated, same digest.
    let dst = home.join("out");
    let run = hoist(&["pull", &src, &format!("oci:{}", dst.display())], home);
    let out = ok(&run);
    assert_eq!(out.trim(), format!("oci:{}@{digest}", dst.display()));
    // Progress on stderr (not a terminal here: one line per blob), nothing with --quiet,
    // and blobs already in the layout are reported as such.
    let progress = String::from_utf8_lossy(&run.stderr);
    let pulled = progress.lines().filter(|l| l.contains(" pulled (")).count();
    assert!(pulled >= 4, "{progress}");
    let again = hoist(&["pull", &src, &format!("oci:{}", dst.display())], home);
    ok(&again);
    let again = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        again.lines().filter(|l| l.contains(" exists (")).count(),
        pulled,
        "{again}"
    );
    let quiet = hoist(
        &[
            "pull",
            "-q",
            &src,
            &format!("oci:{}", home.join("q").display()),
        ],
        home,
    );
    ok(&quiet);
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let v = ok(&hoist(
        &["validate", &format!("oci:{}", dst.display())],
        home,
    ));
    assert!(v.contains("2 images"), "{v}");
    assert_eq!(
        ok(&hoist(
            &["digest", &format!("oci:{}:v1", dst.display())],
            home
        ))
        .trim(),
        digest
    );

    // One platform: an image, not the index.
    let one = home.join("one");
    let out = ok(&hoist(
        &[
            "pull",
            "--platform",
            "linux/arm64",
            &src,
            &format!("oci:{}", one.display()),
        ],
        home,
    ));
    let img_digest = out.trim().rsplit_once('@').unwrap().1.to_string();
    assert_ne!(img_digest, digest);
    assert_eq!(
        ok(&hoist(&["digest", "--platform", "linux/arm64", &src], home)).trim(),
        img_digest
    );
    ok(&hoist(
        &["validate", &format!("oci:{}", one.display())],
        home,
    ));

    // A tarball: the requested platform, loadable (validated).
    let tar = home.join("img.tar");
    ok(&hoist(
        &[
            "pull",
            "--platform",
            "linux/amd64",
            &src,
            &format!("docker-archive:{}", tar.display()),
        ],
        home,
    ));
    let v = ok(&hoist(
        &["validate", &format!("docker-archive:{}", tar.display())],
        home,
    ));
    assert!(v.contains("1 image"), "{v}");

    // A tarball without --platform: the host's platform (linux/amd64 or linux/arm64,
    // both in the index).
    let host = home.join("host.tar");
    let out = ok(&hoist(
        &["pull", &src, &format!("docker-archive:{}", host.display())],
        home,
    ));
    let host_arch = if cfg!(target_arch = "aarch64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let want = ok(&hoist(&["digest", "--platform", host_arch, &src], home));
    assert!(out.trim().ends_with(want.trim()), "{out} vs {want}");

    // Bare new paths: a directory becomes a layout, a .tar name a tarball.
    let bare = home.join("bare");
    ok(&hoist(&["pull", &src, bare.to_str().unwrap()], home));
    assert!(bare.join("oci-layout").is_file());
    let bare_tar = home.join("bare.tar");
    ok(&hoist(&["pull", &src, bare_tar.to_str().unwrap()], home));
    ok(&hoist(
        &[
            "validate",
            &format!("docker-archive:{}", bare_tar.display()),
        ],
        home,
    ));

    // --fast on the registry: structure only.
    let v = ok(&hoist(
        &["validate", "--fast", &format!("docker://{src}")],
        home,
    ));
    assert!(v.contains("not read (--fast)"), "{v}");

    // Referrers: none yet (text: no line), as an OCI index (JSON).
    assert_eq!(ok(&hoist(&["referrers", &src], home)), "");
    let r = ok(&hoist(&["referrers", "-o", "json", &src], home));
    let parsed: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(parsed["manifests"].as_array().map(Vec::len), Some(0), "{r}");

    // Validate on the registry itself, and the inspect verbs.
    let v = ok(&hoist(&["validate", &format!("docker://{src}")], home));
    assert!(v.contains("2 images"), "{v}");
    let m = ok(&hoist(&["manifest", &src], home));
    let parsed: serde_json::Value = serde_json::from_str(&m).unwrap();
    assert_eq!(parsed["manifests"].as_array().unwrap().len(), 2);
    let c = ok(&hoist(&["config", "--platform", "linux/arm64", &src], home));
    let parsed: serde_json::Value = serde_json::from_str(&c).unwrap();
    assert_eq!(parsed["architecture"], "arm64");
    assert_eq!(
        ok(&hoist(&["ls", &format!("{}/pull/app", reg.host())], home)).trim(),
        "v1"
    );
    let cat = ok(&hoist(&["catalog", &reg.host()], home));
    assert!(cat.lines().any(|l| l == "pull/app"), "{cat}");
}

#[test]
fn copy_registry_to_registry_and_layout() {
    let reg = TestRegistry::start();
    let other = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let digest = seed_index(&reg, home, "copy/src");
    let src = format!("docker://{}/copy/src:v1", reg.host());

    // Same registry: byte-identical, blobs mounted; another registry: streamed.
    let a = format!("docker://{}/copy/dst:v1", reg.host());
    assert_eq!(
        ok(&hoist(&["copy", &src, &a], home)).trim(),
        format!("{}/copy/dst:v1@{digest}", reg.host())
    );
    let b = format!("docker://{}/copy/dst:v1", other.host());
    assert_eq!(
        ok(&hoist(&["copy", &src, &b], home)).trim(),
        format!("{}/copy/dst:v1@{digest}", other.host())
    );
    ok(&hoist(&["validate", &b], home));

    // --no-clobber refuses an existing tag.
    fails(
        &hoist(&["copy", "--no-clobber", &src, &b], home),
        "--no-clobber",
    );

    // --all-tags copies the repository.
    ok(&hoist(
        &["tag", &format!("{}/copy/src:v1", reg.host()), "v2"],
        home,
    ));
    let all = ok(&hoist(
        &[
            "copy",
            "--all-tags",
            &format!("docker://{}/copy/src", reg.host()),
            &format!("docker://{}/copy/all", other.host()),
        ],
        home,
    ));
    // REF@DIGEST per tag, and nothing else on stdout.
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        [
            format!("{}/copy/all:v1@{digest}", other.host()),
            format!("{}/copy/all:v2@{digest}", other.host())
        ]
    );
    let tags = ok(&hoist(&["ls", &format!("{}/copy/all", other.host())], home));
    assert_eq!(tags.lines().collect::<Vec<_>>(), ["v1", "v2"]);

    // --compression zstd on one platform: converted layers, valid image.
    let z = format!("docker://{}/copy/zstd:v1", other.host());
    ok(&hoist(
        &[
            "copy",
            "--platform",
            "linux/amd64",
            "--compression",
            "zstd",
            &src,
            &z,
        ],
        home,
    ));
    let m = ok(&hoist(&["manifest", &z], home));
    assert!(m.contains("tar+zstd"), "{m}");
    ok(&hoist(&["validate", &z], home));

    // The whole index converted: both images rewritten, the index lists the new digests.
    let zi = format!("docker://{}/copy/zstd-index:v1", other.host());
    ok(&hoist(&["copy", "--compression", "zstd", &src, &zi], home));
    let v = ok(&hoist(&["validate", &zi], home));
    assert!(v.contains("2 images"), "{v}");
    for p in ["linux/amd64", "linux/arm64"] {
        let m = ok(&hoist(&["manifest", "--platform", p, &zi], home));
        assert!(m.contains("tar+zstd") && !m.contains("tar+gzip"), "{m}");
    }
    let zl = home.join("zl");
    ok(&hoist(
        &[
            "copy",
            "--compression",
            "zstd",
            &src,
            &format!("oci:{}", zl.display()),
        ],
        home,
    ));
    let v = ok(&hoist(
        &["validate", &format!("oci:{}", zl.display())],
        home,
    ));
    assert!(v.contains("2 images"), "{v}");
    // A converted index copied locally again: already zstd, so unchanged.
    let zz = home.join("zz");
    let zl_loc = format!("oci:{}", zl.display());
    ok(&hoist(
        &[
            "copy",
            "--compression",
            "zstd",
            &zl_loc,
            &format!("oci:{}", zz.display()),
        ],
        home,
    ));
    assert_eq!(
        ok(&hoist(&["digest", &format!("oci:{}", zz.display())], home)),
        ok(&hoist(&["digest", &zl_loc], home))
    );
    assert_eq!(
        ok(&hoist(&["digest", &zl_loc], home)),
        ok(&hoist(&["digest", &zi], home))
    );

    // copy docker:// to a layout, and a blob to stdout.
    let dir = home.join("l");
    ok(&hoist(
        &["copy", &src, &format!("oci:{}", dir.display())],
        home,
    ));
    let c = ok(&hoist(&["config", "--platform", "linux/amd64", &src], home));
    let cd = hoist_image::Digest::sha256(c.as_bytes());
    let blob = hoist(&["blob", &format!("{}/copy/src@{cd}", reg.host())], home);
    assert_eq!(ok(&blob), c);

    // delete, then the tag is gone.
    ok(&hoist(
        &["delete", &format!("{}/copy/dst:v1", reg.host())],
        home,
    ));
    fails(
        &hoist(&["digest", &format!("{}/copy/dst:v1", reg.host())], home),
        "copy/dst",
    );
}

#[test]
fn bad_input_is_one_line() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    seed_index(&reg, home, "bad/app");
    let dst = home.join("never");
    let d = format!("oci:{}", dst.display());
    fails(
        &hoist(&["pull", &format!("{}/bad/app:nope", reg.host()), &d], home),
        "nope",
    );
    assert!(!dst.exists(), "nothing left behind");
    fails(
        &hoist(
            &["pull", &format!("{}/bad/app@sha256:abc", reg.host()), &d],
            home,
        ),
        "sha256:abc",
    );
    fails(
        &hoist(
            &[
                "pull",
                "--platform",
                "plan9/mips",
                &format!("{}/bad/app:v1", reg.host()),
                &d,
            ],
            home,
        ),
        "plan9/mips",
    );
    assert!(!dst.exists(), "nothing left behind");
    fails(
        &hoist(
            &[
                "pull",
                "--platform",
                "linux",
                &format!("{}/bad/app:v1", reg.host()),
                &d,
            ],
            home,
        ),
        "platform",
    );
    fails(
        &hoist(&["blob", &format!("{}/bad/app:v1", reg.host())], home),
        "REPO@DIGEST",
    );
}
