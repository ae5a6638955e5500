//! The content cache never changes output bytes: `hoist copy TARBALL oci:X` gives the same
//! digest with a clean cache, after a pull of the same layers compressed at another level
//! (pulled blobs are of unknown provenance and never served for "gzip level N"), and after
//! pushes of the same layers at other levels and of other images.

use std::path::Path;
use std::process::{Command, Output};

use hoist_testkit::registry::TestRegistry;

fn hoist(args: &[&str], dir: &Path, cache: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .current_dir(dir)
        .env("HOIST_CACHE_DIR", dir.join(cache))
        .env("HOME", dir)
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

/// `hoist copy src.tar oci:NAME [extra]` with `cache`: the manifest digest.
fn copy(dir: &Path, cache: &str, name: &str, extra: &[&str]) -> String {
    let dst = format!("oci:{name}");
    let mut args = vec!["copy", "src.tar", &dst];
    args.extend_from_slice(extra);
    let out = ok(&hoist(&args, dir, cache));
    // `oci:NAME@DIGEST`
    let (at, digest) = out.trim().rsplit_once('@').unwrap();
    assert_eq!(at, dst, "{out}");
    digest.to_string()
}

#[test]
fn cache_never_changes_output_bytes() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let random = |dst: &str, seed: &str| {
        ok(&hoist(
            &[
                "random", dst, "--layers", "2", "--size", "256k", "--mode", "text", "--seed", seed,
            ],
            dir,
            "scratch-cache",
        ));
    };
    random("docker-archive:src.tar", "7");
    random("docker-archive:other.tar", "8");
    let zstd: &[&str] = &["--compression", "zstd"];

    // With clean caches: the reference digests.
    let gzip_clean = copy(dir, "cache-clean-gzip", "clean-gzip", &[]);
    let zstd_clean = copy(dir, "cache-clean-zstd", "clean-zstd", zstd);

    // The same layers at other levels reach a registry (no cache), and are pulled into
    // the cache under test: its blobs are gzip level 1 and zstd level 19 now.
    let host = reg.host();
    let r1 = format!("{host}/cache/gzip1:v1");
    ok(&hoist(
        &[
            "push",
            "--no-cache",
            "--quiet",
            "--level",
            "1",
            "src.tar",
            &r1,
        ],
        dir,
        "unused",
    ));
    let r19 = format!("docker://{host}/cache/zstd19:v1");
    ok(&hoist(
        &[
            "copy",
            "--no-cache",
            "src.tar",
            &r19,
            "--compression",
            "zstd",
            "--level",
            "19",
        ],
        dir,
        "unused",
    ));
    ok(&hoist(&["pull", "-q", &r1, "oci:pulled"], dir, "cache"));
    ok(&hoist(&["pull", "-q", &r19, "oci:pulled"], dir, "cache"));
    let entries = ok(&hoist(&["cache", "ls"], dir, "cache"));
    assert!(
        entries.contains("gzip.pulled") && entries.contains("zstd.pulled"),
        "pulled blobs are in the cache, keyed as such: {entries}"
    );
    assert_eq!(copy(dir, "cache", "after-pull-gzip", &[]), gzip_clean);
    assert_eq!(copy(dir, "cache", "after-pull-zstd", zstd), zstd_clean);

    // Pushes through the cache: the same layers at another level, and other images.
    for (src, level) in [("src.tar", "9"), ("other.tar", "1"), ("other.tar", "6")] {
        let r = format!("{host}/cache/pushed-{level}:v1");
        ok(&hoist(
            &["push", "--quiet", "--level", level, src, &r],
            dir,
            "cache",
        ));
    }
    assert_eq!(copy(dir, "cache", "after-push-gzip", &[]), gzip_clean);
    assert_eq!(copy(dir, "cache", "after-push-zstd", zstd), zstd_clean);
    // And the cache still serves: a second copy compresses nothing.
    let again = hoist(&["copy", "-v", "src.tar", "oci:again"], dir, "cache");
    ok(&again);
    let report = String::from_utf8_lossy(&again.stderr);
    assert!(report.contains("0 layers compressed"), "{report}");
}
