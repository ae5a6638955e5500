//! Interop with skopeo, a client no one here wrote: a docker-archive copied into
//! `hoist serve` and out to an OCI layout keeps every digest; and the same over HTTPS with
//! basic auth (`--tls-cert/--tls-key --htpasswd`).

mod serve_common;

use std::path::Path;
use std::process::{Command, Output};

use hoist_image::Digest;
use hoist_testkit::peers;
use serve_common::Server;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run command");
    if !out.status.success() {
        panic!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn hoist(args: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_hoist")).args(args))
}

/// A skopeo command with a private blob-info cache, so runs do not learn from each other.
fn skopeo(skopeo: &Path, tmp: &Path) -> Command {
    let mut c = Command::new(skopeo);
    c.env("XDG_DATA_HOME", tmp.join("xdg")).env("HOME", tmp);
    c
}

fn random_archive(dir: &Path, reference: &str) -> String {
    let archive = dir.join("image.tar");
    hoist(&[
        "random",
        &format!("docker-archive:{}:{reference}", archive.display()),
        "--layers",
        "3",
        "--size",
        "300k",
        "--seed",
        "7",
    ]);
    format!("docker-archive:{}", archive.display())
}

/// Every blob of an OCI layout, checked: its name is the sha256 of its content.
fn layout_blobs(dir: &Path) -> Vec<(Digest, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let bytes = std::fs::read(e.path()).unwrap();
        let name = e.file_name().into_string().unwrap();
        let d = Digest::sha256(&bytes);
        assert_eq!(d.hex(), name, "layout blob content does not match its name");
        out.push((d, bytes.len() as u64));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_in_and_out_with_identical_digests() {
    let Some(skopeo_bin) = peers::require("skopeo") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let src = random_archive(t.path(), "interop/img:v1");
    let server = Server::start(&t.path().join("root"), &[]);
    let host = server.addr();
    let dest = format!("docker://{host}/interop/img:v1");
    run(skopeo(&skopeo_bin, t.path()).args([
        "copy",
        "--quiet",
        "--format",
        "oci",
        "--dest-tls-verify=false",
        &src,
        &dest,
    ]));
    let layout = t.path().join("out");
    run(skopeo(&skopeo_bin, t.path()).args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:v1", layout.display()),
    ]));

    // The manifest digest hoist serves is the one in the layout's index.
    let c = hoist_testkit::registry::client_builder().build().unwrap();
    let r = c
        .head(format!("{}/v2/interop/img/manifests/v1", server.url()))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let served = r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], served.as_str());
    // Every blob in the layout (manifest, config, layers) is in hoist, same digest and size.
    let blobs = layout_blobs(&layout);
    assert_eq!(blobs.len(), 1 + 1 + 3, "manifest, config and 3 layers");
    for (d, size) in blobs {
        if d.to_string() == served {
            continue;
        }
        let r = c
            .head(format!("{}/v2/interop/img/blobs/{d}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{d} not in hoist");
        assert_eq!(
            r.headers()["content-length"].to_str().unwrap(),
            size.to_string()
        );
    }
    // And the layout is a valid image by hoist's own oracle.
    hoist(&["validate", &format!("oci:{}:v1", layout.display())]);
}

#[test]
fn skopeo_pushes_over_tls_with_basic_auth() {
    let (Some(skopeo_bin), Some(openssl), Some(htpasswd)) = (
        peers::require("skopeo"),
        peers::require("openssl"),
        peers::require("htpasswd"),
    ) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let (cert, key) = (t.path().join("cert.pem"), t.path().join("key.pem"));
    run(Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ]));
    let certs = t.path().join("certs.d");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&cert, certs.join("ca.crt")).unwrap();
    let pw = run(Command::new(htpasswd).args(["-nbB", "alice", "s3cret"]));
    let pwfile = t.path().join("htpasswd");
    std::fs::write(&pwfile, &pw.stdout).unwrap();
    let src = random_archive(t.path(), "secure/img:v1");
    let server = Server::start(
        &t.path().join("root"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--htpasswd",
            pwfile.to_str().unwrap(),
        ],
    );
    assert!(server.url().starts_with("https://"));
    let dest = format!("docker://{}/secure/img:v1", server.addr());
    let certs_arg = format!("--dest-cert-dir={}", certs.display());
    // Wrong password: refused.
    let out = skopeo(&skopeo_bin, t.path())
        .args([
            "copy",
            "--quiet",
            &certs_arg,
            "--dest-creds",
            "alice:wrong",
            &src,
            &dest,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong password was accepted");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("authentication"),
        "{err}"
    );
    // Right password, certificate checked: copied.
    run(skopeo(&skopeo_bin, t.path()).args([
        "copy",
        "--quiet",
        &certs_arg,
        "--dest-creds",
        "alice:s3cret",
        &src,
        &dest,
    ]));
    let out = run(skopeo(&skopeo_bin, t.path()).args([
        "inspect",
        "--raw",
        &format!("--cert-dir={}", certs.display()),
        "--creds",
        "alice:s3cret",
        &dest,
    ]));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["layers"].as_array().map(Vec::len), Some(3));
}
