//! The web page in a real browser: `hoist serve` with images pushed by `hoist`, each page
//! rendered by headless Chromium. The DOM (after the page's script ran) must show the
//! repositories, tags and layer digests, and the copy buttons the script reveals (so the
//! Content-Security-Policy lets it run). Screenshots at a laptop's and a phone's size go
//! to `$CARGO_TARGET_TMPDIR/web-screenshots/` for a person to look at.

mod serve_common;

use std::process::{Command, Output};

use hoist_testkit::browser::{Chromium, LAPTOP, PHONE};
use serve_common::Server;

fn hoist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .env(
            "HOIST_CACHE_DIR",
            std::env::temp_dir().join("hoist-web-chromium-cache"),
        )
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

#[test]
fn pages_render_in_chromium_with_repositories_tags_and_layers() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let server = Server::start(&t.path().join("root"), &[]);
    let host = server.addr();
    let base = format!("oci:{}:base", t.path().join("layout").display());
    ok(&hoist(&[
        "random", &base, "--layers", "3", "--size", "200k", "--mode", "text", "--seed", "11",
    ]));
    let app = format!("{host}/team/app:v1");
    ok(&hoist(&[
        "mutate",
        &base,
        "-t",
        &app,
        "--env",
        "GREETING=hello from hoist",
        "--entrypoint",
        "/usr/bin/app,--serve",
        "--label",
        "org.opencontainers.image.title=Demo app",
        "--expose",
        "8080",
        "--time",
        "2025-06-01T12:00:00Z",
    ]));
    ok(&hoist(&[
        "push",
        "--quiet",
        &base,
        &format!("{host}/tools/base:latest"),
    ]));
    let multi = format!("oci:{}:multi", t.path().join("multi").display());
    ok(&hoist(&[
        "random", &multi, "--layers", "1", "--size", "50k", "--index", "2", "--seed", "5",
    ]));
    ok(&hoist(&[
        "push",
        "--quiet",
        &multi,
        &format!("{host}/team/app:multi"),
    ]));

    let manifest: serde_json::Value =
        serde_json::from_str(&ok(&hoist(&["manifest", &app]))).unwrap();
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(layers.len(), 3);
    let digest = ok(&hoist(&["digest", &app])).trim().to_string();

    let url = server.url();
    let home = chromium.dump_dom(&format!("{url}/"));
    for want in ["team/app", "tools/base", "Repositories"] {
        assert!(
            home.contains(want),
            "{want} missing from the home page: {home}"
        );
    }
    let repo = chromium.dump_dom(&format!("{url}/ui/r/team/app"));
    for want in [
        "v1",
        "multi",
        "linux/amd64",
        &format!("{host}/team/app:v1"),
        &digest[..19],
    ] {
        assert!(
            repo.contains(want),
            "{want} missing from the repository page: {repo}"
        );
    }
    // The script ran (allowed by the page's CSP) and revealed the copy buttons.
    assert!(
        repo.contains("data-copy=") && !repo.contains(" hidden=\"\" data-copy"),
        "copy buttons still hidden: {repo}"
    );
    let image = chromium.dump_dom(&format!("{url}/ui/r/team/app:v1"));
    for l in &layers {
        assert!(
            image.contains(l.as_str()),
            "layer {l} missing from the image page: {image}"
        );
    }
    for want in [
        "GREETING=hello from hoist",
        "/usr/bin/app --serve",
        "Demo app",
        "8080/tcp",
        &digest,
    ] {
        assert!(
            image.contains(want),
            "{want} missing from the image page: {image}"
        );
    }
    let index_digest = ok(&hoist(&["digest", &format!("{host}/team/app:multi")]))
        .trim()
        .to_string();
    let index = chromium.dump_dom(&format!("{url}/ui/r/team/app@{index_digest}"));
    assert!(index.contains("Manifests (2)"), "{index}");

    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, path) in [
        ("home", "/".to_string()),
        ("repo", "/ui/r/team/app".to_string()),
        ("image", "/ui/r/team/app:v1".to_string()),
        ("index", format!("/ui/r/team/app@{index_digest}")),
    ] {
        for (size_name, size) in [("laptop", LAPTOP), ("phone", PHONE)] {
            chromium.screenshot(
                &format!("{url}{path}"),
                size,
                &shots.join(format!("{name}-{size_name}.png")),
            );
        }
    }
}
