//! Garbage collection of `hoist serve`'s storage, offline (`hoist registry gc`) and online
//! (`hoist serve --gc-interval`): images pushed with hoist, one deleted, garbage collected;
//! every surviving image then validated by hoist and pulled by skopeo and crane (when on
//! PATH), the deleted one's blobs gone.

mod serve_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use hoist_testkit::peers;
use serve_common::Server;

fn hoist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .env(
            "HOIST_CACHE_DIR",
            std::env::temp_dir().join("hoist-registry-gc-cache"),
        )
        .env_remove("HOIST_ROOT")
        .env_remove("HOIST_CONFIG")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(files(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Push `app:v1`, `app:v2` (sharing nothing but what random images share) and a two-platform
/// index `tools:multi`, then delete v2's manifest. Returns v2's manifest digest and its layer
/// digests.
fn populate(t: &Path, host: &str) -> (String, Vec<String>) {
    for (name, seed, index) in [
        ("v1", "1", None),
        ("v2", "2", None),
        ("multi", "3", Some("2")),
    ] {
        let layout = format!("oci:{}:{name}", t.join(format!("layout-{name}")).display());
        let mut args = vec![
            "random", &layout, "--layers", "2", "--size", "40k", "--seed", seed,
        ];
        if let Some(n) = index {
            args.extend(["--index", n]);
        }
        ok(&hoist(&args));
        let repo = if index.is_some() { "tools" } else { "app" };
        ok(&hoist(&[
            "push",
            "--quiet",
            &layout,
            &format!("{host}/{repo}:{name}"),
        ]));
    }
    let v2 = format!("{host}/app:v2");
    let m: serde_json::Value = serde_json::from_str(&ok(&hoist(&["manifest", &v2]))).unwrap();
    let layers = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let digest = ok(&hoist(&["digest", &v2])).trim().to_string();
    ok(&hoist(&["delete", &format!("{host}/app@{digest}")]));
    (digest, layers)
}

/// Everything tagged validates (hoist re-hashes every blob), and skopeo and crane pull it.
fn survivors_pull_whole(t: &Path, host: &str) {
    for r in ["app:v1", "tools:multi"] {
        ok(&hoist(&["validate", &format!("docker://{host}/{r}")]));
    }
    if let Some(skopeo) = peers::require("skopeo") {
        for r in ["app:v1", "tools:multi"] {
            let dst = t.join(format!("skopeo-{}", r.replace(':', "-")));
            let out = Command::new(&skopeo)
                .env("XDG_DATA_HOME", t.join("xdg"))
                .env("HOME", t)
                .args([
                    "copy",
                    "--quiet",
                    "--all",
                    "--src-tls-verify=false",
                    &format!("docker://{host}/{r}"),
                ])
                .arg(format!("oci:{}:x", dst.display()))
                .output()
                .unwrap();
            ok(&out);
            ok(&hoist(&["validate", &format!("oci:{}:x", dst.display())]));
        }
    }
    // crane is built only from sources here: used when present, even under HOIST_REQUIRE_PEERS.
    if let Some(crane) = peers::which("crane").or_else(|| peers::which("/usr/local/bin/crane")) {
        for r in ["app:v1", "tools:multi"] {
            let dst = t.join(format!("crane-{}", r.replace(':', "-")));
            let out = Command::new(&crane)
                .env("HOME", t)
                .args([
                    "pull",
                    "--insecure",
                    "--format",
                    "oci",
                    &format!("{host}/{r}"),
                ])
                .arg(&dst)
                .output()
                .unwrap();
            ok(&out);
        }
    } else {
        eprintln!("skipping crane: not on PATH");
    }
}

#[test]
fn offline_gc_dry_run_then_collect_keeps_every_tagged_image() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let (v2, v2_layers) = {
        let server = Server::start(&root, &[]);
        populate(t.path(), &server.addr())
    };
    let before = files(&root.join("blobs"));
    let r = root.to_str().unwrap();
    let dry = ok(&hoist(&["registry", "gc", "--root", r, "--dry-run"]));
    assert_eq!(
        files(&root.join("blobs")),
        before,
        "a dry run removes nothing"
    );
    for d in v2_layers.iter().chain([&v2]) {
        assert!(
            dry.contains(&format!("would remove blob {d}")),
            "{d} not listed: {dry}"
        );
    }
    let listed = dry
        .lines()
        .filter(|l| l.starts_with("would remove blob"))
        .count();
    assert_eq!(listed, 4, "v2's manifest, config and two layers: {dry}");
    assert!(
        dry.lines()
            .last()
            .unwrap()
            .starts_with("would remove 4 blobs ("),
        "{dry}"
    );

    // With a grace period, the garbage just made is young: kept, and counted as such.
    let graced = ok(&hoist(&["registry", "gc", "--root", r, "--grace", "1h"]));
    assert!(
        graced
            .lines()
            .last()
            .unwrap()
            .starts_with("removed 0 blobs")
            && graced
                .trim_end()
                .ends_with("4 unreached blobs kept as younger than 1h"),
        "{graced}"
    );
    assert_eq!(files(&root.join("blobs")), before);
    // A zero grace is no grace: the error names the value.
    let zero = hoist(&["registry", "gc", "--root", r, "--grace", "0s"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&zero.stderr).contains("\"0s\": must be more than 0"),
        "{}",
        String::from_utf8_lossy(&zero.stderr)
    );

    let out = ok(&hoist(&["registry", "gc", "--root", r]));
    assert!(
        out.lines().last().unwrap().starts_with("removed 4 blobs ("),
        "{out}"
    );
    assert_eq!(files(&root.join("blobs")).len(), before.len() - 4);
    let again = ok(&hoist(&["registry", "gc", "--root", r]));
    assert!(
        again.lines().last().unwrap().starts_with("removed 0 blobs"),
        "{again}"
    );

    let server = Server::start(&root, &[]);
    let host = server.addr();
    survivors_pull_whole(t.path(), &host);
    assert!(
        !hoist(&["blob", &format!("{host}/app@{}", v2_layers[0])])
            .status
            .success()
    );
    // A storage that is not a registry's is refused, not created.
    let out = hoist(&[
        "registry",
        "gc",
        "--root",
        t.path().join("nothing").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(!t.path().join("nothing").exists());
}

#[test]
fn online_gc_collects_old_garbage_while_serving() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let (_, v2_layers) = {
        let server = Server::start(&root, &[]);
        populate(t.path(), &server.addr())
    };
    // The garbage is two hours old: past the grace period.
    let old = SystemTime::now() - Duration::from_secs(7200);
    for f in files(&root.join("blobs")) {
        std::fs::File::open(&f).unwrap().set_modified(old).unwrap();
    }
    let server = Server::start(&root, &["--gc-interval", "1s", "--gc-grace", "1h"]);
    let host = server.addr();
    let metrics = format!("{}/metrics", server.url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut text = String::new();
    for _ in 0..200 {
        text = rt.block_on(async { reqwest::get(&metrics).await.unwrap().text().await.unwrap() });
        if text.contains("hoist_gc_runs_total{result=\"ok\"}") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let freed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("hoist_gc_freed_bytes_total "))
        .unwrap_or_else(|| panic!("no collection ran: {text}"))
        .parse()
        .unwrap();
    assert!(freed > 40_000, "{text}");
    assert!(
        !hoist(&["blob", &format!("{host}/app@{}", v2_layers[0])])
            .status
            .success()
    );
    survivors_pull_whole(t.path(), &host);
    // A push while collections run: its fresh blobs stay.
    let layout = format!("oci:{}:v3", t.path().join("layout-v3").display());
    ok(&hoist(&[
        "random", &layout, "--layers", "2", "--size", "40k", "--seed", "4",
    ]));
    ok(&hoist(&[
        "push",
        "--quiet",
        &layout,
        &format!("{host}/app:v3"),
    ]));
    std::thread::sleep(Duration::from_millis(1500));
    ok(&hoist(&["validate", &format!("docker://{host}/app:v3")]));
}

#[test]
fn online_grace_below_a_minute_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let out = hoist(&[
        "serve",
        "--root",
        t.path().to_str().unwrap(),
        "--gc-interval",
        "1h",
        "--gc-grace",
        "5s",
        "--print-config",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gc-grace 5s is too short"), "{err}");
    let c: toml::Table = toml::from_str(&ok(&hoist(&[
        "serve",
        "--root",
        "/r",
        "--gc-interval",
        "1d",
        "--delete-untagged",
        "--print-config",
    ])))
    .unwrap();
    assert_eq!(c["gc-interval"].as_str(), Some("1d"));
    assert_eq!(c["gc-grace"].as_str(), Some("1h"));
    assert_eq!(c["delete-untagged"].as_bool(), Some(true));
}

#[test]
fn gc_on_object_storage_is_refused_naming_the_storage() {
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("s3.toml");
    std::fs::write(&config, "storage = \"s3://bucket/prefix\"\n").unwrap();
    let out = hoist(&["registry", "gc", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("storage s3://bucket/prefix: garbage collection works on fs: storage only"),
        "{err}"
    );
    let out = hoist(&[
        "serve",
        "--storage",
        "s3://bucket/prefix",
        "--secret",
        "0123456789abcdef0123",
        "--gc-interval",
        "1h",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "storage s3://bucket/prefix: garbage collection (gc-interval) works on fs: storage only"
        ),
        "{err}"
    );
}
