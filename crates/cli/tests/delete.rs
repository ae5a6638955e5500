//! `hoist delete` destroys only what the user named: `REPO:TAG` deletes that tag (the
//! manifest and its other tags stay), `REPO@DIGEST` deletes the manifest. A registry that
//! cannot delete a tag (distribution 2.x) gets a one-line error that says how to delete
//! by digest, and nothing is deleted. `--platform` is a usage error.

use std::path::Path;
use std::process::{Command, Output};

use hoist_testkit::distribution::Distribution;
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

/// One line on stderr, exit code 1, containing every needle.
fn fails(out: &Output, needles: &[&str]) -> String {
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in {e}");
    }
    e
}

/// An image pushed to `host/name` as `v1` and `v2`; returns its digest.
fn seed(host: &str, name: &str, home: &Path) -> String {
    let src = home.join(format!("src-{}", name.replace('/', "-")));
    ok(&hoist(
        &[
            "random",
            &format!("oci:{}", src.display()),
            "--layers",
            "1",
            "--size",
            "8k",
        ],
        home,
    ));
    let out = ok(&hoist(
        &[
            "push",
            "--quiet",
            &format!("oci:{}", src.display()),
            &format!("{host}/{name}:v1"),
        ],
        home,
    ));
    ok(&hoist(&["tag", &format!("{host}/{name}:v1"), "v2"], home));
    out.trim().rsplit_once('@').unwrap().1.to_string()
}

fn digest_of(r: &str, home: &Path) -> Option<String> {
    let out = hoist(&["digest", r], home);
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
}

#[test]
fn delete_tag_keeps_the_manifest_and_other_tags() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let host = reg.host();
    let digest = seed(&host, "del/app", home);

    assert_eq!(
        ok(&hoist(&["delete", &format!("{host}/del/app:v1")], home)).trim(),
        format!("{host}/del/app:v1")
    );
    assert_eq!(digest_of(&format!("{host}/del/app:v1"), home), None);
    assert_eq!(
        digest_of(&format!("{host}/del/app:v2"), home).as_deref(),
        Some(digest.as_str()),
        "the other tag stays"
    );
    assert_eq!(
        digest_of(&format!("{host}/del/app@{digest}"), home).as_deref(),
        Some(digest.as_str()),
        "the manifest stays"
    );
    assert_eq!(
        ok(&hoist(&["ls", &format!("{host}/del/app")], home)).trim(),
        "v2"
    );

    // A tag that is not there: an error naming it, nothing else touched.
    fails(
        &hoist(&["delete", &format!("{host}/del/app:v1")], home),
        &["del/app:v1"],
    );
    // No tag and no digest: nothing is implied.
    fails(
        &hoist(&["delete", &format!("{host}/del/app")], home),
        &["name what to delete"],
    );

    // By digest: the manifest goes, and its remaining tag with it.
    ok(&hoist(
        &["delete", &format!("{host}/del/app@{digest}")],
        home,
    ));
    assert_eq!(digest_of(&format!("{host}/del/app@{digest}"), home), None);
    assert_eq!(digest_of(&format!("{host}/del/app:v2"), home), None);
}

#[test]
fn delete_platform_is_a_usage_error() {
    let t = tempfile::tempdir().unwrap();
    let out = hoist(
        &[
            "delete",
            "--platform",
            "linux/amd64",
            "127.0.0.1:1/del/app:v1",
        ],
        t.path(),
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("--platform"), "{e}");
}

#[test]
fn distribution_refuses_tag_deletion_and_nothing_is_deleted() {
    let Some(d) = Distribution::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let host = d.addr().to_string();
    let digest = seed(&host, "del/app", home);

    let e = fails(
        &hoist(&["delete", &format!("{host}/del/app:v1")], home),
        &[
            "does not support deleting a tag",
            &format!("hoist delete {host}/del/app@{digest}"),
            "removes every tag",
        ],
    );
    // The answer distribution gives is quoted, not hidden.
    assert!(
        e.contains("DIGEST_INVALID") || e.contains("UNSUPPORTED"),
        "{e}"
    );
    for tag in ["v1", "v2"] {
        assert_eq!(
            digest_of(&format!("{host}/del/app:{tag}"), home).as_deref(),
            Some(digest.as_str()),
            "{tag} must survive a refused tag deletion"
        );
    }

    // By digest, as the error says: the manifest and both tags go.
    ok(&hoist(
        &["delete", &format!("{host}/del/app@{digest}")],
        home,
    ));
    assert_eq!(digest_of(&format!("{host}/del/app@{digest}"), home), None);
    assert_eq!(digest_of(&format!("{host}/del/app:v2"), home), None);
}
