//! `hoist push` and `hoist tag` against the distribution registry: stdout is one
//! `REF@DIGEST` per destination, a re-push compresses nothing (the cache), what the
//! registry serves checks out, and bad destinations are one-line errors.

use std::process::{Command, Output};

use hoist_remote::{Client, Repository, validate};
use hoist_testkit::distribution::Distribution;

fn hoist(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn push_tarball_to_two_destinations_then_repush_and_tag() {
    let Some(reg) = Distribution::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let tar = t.path().join("img.tar");
    let cache = t.path().join("cache");
    let home = t.path().join("home");
    let env = [
        ("HOIST_CACHE_DIR", cache.to_str().unwrap()),
        ("HOME", home.to_str().unwrap()),
    ];
    ok(&hoist(
        &[
            "random",
            &format!("docker-archive:{}", tar.display()),
            "--layers",
            "3",
            "--size",
            "256k",
            "--mode",
            "text",
        ],
        &env,
    ));
    let a = format!("{}/cli/app:v1", reg.addr());
    let b = format!("{}/cli/other:latest", reg.addr());
    let out = hoist(&["push", tar.to_str().unwrap(), &a, &b], &env);
    let stdout = ok(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let digest = lines[0].split_once('@').unwrap().1.to_string();
    // REF@DIGEST per destination: the tag written and the digest.
    assert_eq!(lines[0], format!("{}/cli/app:v1@{digest}", reg.addr()));
    assert_eq!(
        lines[1],
        format!("{}/cli/other:latest@{digest}", reg.addr())
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mounted"),
        "second repository mounts: {stderr}"
    );

    // Re-push: every blob exists; nothing compressed again (the cache answers).
    let out = hoist(&["push", tar.to_str().unwrap(), &a], &env);
    assert_eq!(
        ok(&out).trim(),
        format!("{}/cli/app:v1@{digest}", reg.addr())
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("pushed ("), "{stderr}");
    assert!(stderr.contains("manifest v1 unchanged"), "{stderr}");

    // --quiet: stdout only.
    let out = hoist(&["push", "--quiet", tar.to_str().unwrap(), &a], &env);
    ok(&out);
    assert!(out.stderr.is_empty());

    // Tag: one line per tag.
    let out = hoist(&["tag", &a, "v2", "v3"], &env);
    let stdout = ok(&out);
    assert_eq!(stdout.lines().count(), 2);
    assert!(stdout.contains(&format!("cli/app:v3@{digest}")), "{stdout}");

    // --strategy stream: the same image, the same digest (deterministic compression).
    let st = format!("{}/cli/streamed:v1", reg.addr());
    let out = hoist(
        &["push", "--strategy", "stream", tar.to_str().unwrap(), &st],
        &env,
    );
    assert_eq!(
        ok(&out).trim(),
        format!("{}/cli/streamed:v1@{digest}", reg.addr())
    );

    // copy to a registry goes through the same engine.
    let c = format!("{}/cli/copied:v1", reg.addr());
    let out = hoist(&["copy", tar.to_str().unwrap(), &c], &env);
    assert!(ok(&out).contains(&digest), "same image, same digest");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new().unwrap();
    let repo = Repository::new(reg.addr().to_string(), "cli/app").unwrap();
    for tag in ["v1", "v2", "v3"] {
        let r = rt
            .block_on(validate(&client, &repo, tag, Default::default()))
            .unwrap();
        assert_eq!(r.digest.unwrap().to_string(), digest);
        assert_eq!(r.layers, 3);
    }
}

#[test]
fn bad_destinations_are_one_line_errors() {
    let t = tempfile::tempdir().unwrap();
    let tar = t.path().join("img.tar");
    ok(&hoist(
        &[
            "random",
            &format!("docker-archive:{}", tar.display()),
            "--size",
            "1k",
        ],
        &[],
    ));
    for (dst, want) in [
        ("localhost:1/Bad", "invalid destination"),
        (
            "localhost:1/x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "not a digest",
        ),
    ] {
        let out = hoist(&["push", "--no-cache", tar.to_str().unwrap(), dst], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
    // Nothing listening: a connection error naming the URL, after bounded retries.
    let out = hoist(
        &[
            "push",
            "--no-cache",
            "--retries",
            "0",
            tar.to_str().unwrap(),
            "127.0.0.1:1/x:y",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("127.0.0.1:1") && err.contains("connection"),
        "{err}"
    );
}

/// `hoist auth login|get|logout` against the distribution registry with htpasswd, then a
/// push with the stored credentials; the password never shows on stdout/stderr of push.
#[test]
fn auth_login_get_logout_and_push_with_stored_credentials() {
    let Some(htpasswd) = hoist_testkit::peers::require("htpasswd") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let out = Command::new(htpasswd)
        .args(["-Bbn", "bob", "s3cret-pw-42"])
        .output()
        .unwrap();
    let file = t.path().join("htpasswd");
    std::fs::write(&file, &out.stdout).unwrap();
    let Some(reg) = Distribution::start_with(hoist_testkit::distribution::Options {
        htpasswd: Some(file),
    }) else {
        return;
    };
    let home = t.path().join("home");
    let docker = home.join(".docker");
    let env = [
        ("HOME", home.to_str().unwrap()),
        ("DOCKER_CONFIG", docker.to_str().unwrap()),
    ];
    let registry = reg.addr().to_string();
    // Wrong password: refused, nothing stored.
    let out = hoist(
        &["auth", "login", &registry, "-u", "bob", "-p", "wrong-pw-1"],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("wrong-pw-1"));
    assert!(!home.join(".docker/config.json").exists());
    ok(&hoist(
        &[
            "auth",
            "login",
            &registry,
            "-u",
            "bob",
            "-p",
            "s3cret-pw-42",
        ],
        &env,
    ));
    let got = ok(&hoist(&["auth", "get", &registry], &env));
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        (v["Username"].as_str(), v["Secret"].as_str()),
        (Some("bob"), Some("s3cret-pw-42"))
    );

    let tar = t.path().join("img.tar");
    ok(&hoist(
        &[
            "random",
            &format!("docker-archive:{}", tar.display()),
            "--size",
            "64k",
        ],
        &env,
    ));
    let dst = format!("{registry}/auth/app:v1");
    let out = hoist(&["push", "--no-cache", tar.to_str().unwrap(), &dst], &env);
    ok(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cret"));

    ok(&hoist(&["auth", "logout", &registry], &env));
    let out = hoist(&["push", "--no-cache", tar.to_str().unwrap(), &dst], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("401"), "{err}");
}

/// `hoist demo`: embedded registry, cold push, re-push, second tag, validate, a table;
/// the registry is stopped afterwards.
#[test]
fn demo_runs_and_reports() {
    let out = hoist(&["demo", "--layers", "2", "--size", "256k"], &[]);
    let stdout = ok(&out);
    for want in [
        "cold push",
        "re-push",
        "second tag",
        "validate",
        "3 blobs present",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    assert!(
        stdout.contains("0 uploaded, 0 manifest PUTs"),
        "re-push uploads nothing: {stdout}"
    );
    assert!(
        stdout.contains("1 manifest PUT, 0 uploaded"),
        "a tag costs one PUT: {stdout}"
    );
    let addr = stdout
        .split("http://")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "registry stopped"
    );
}
