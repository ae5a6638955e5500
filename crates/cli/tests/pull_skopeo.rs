//! Pull interop with real peers: skopeo pushes an image (and a multi-platform index) to
//! the distribution registry, hoist pulls it and validates; hoist pulls into a layout and
//! skopeo reads that layout back into an archive hoist validates.

use std::path::Path;
use std::process::Command;

use hoist_testkit::distribution::Distribution;
use hoist_testkit::peers;
use hoist_testkit::process::stdout_of;

fn hoist(home: &Path, args: &[&str]) -> String {
    stdout_of(
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(args)
            .env("HOIST_CACHE_DIR", home.join("cache"))
            .env("HOME", home),
        format_args!("hoist {args:?}"),
    )
}

fn skopeo(skopeo: &Path, args: &[&str]) -> String {
    stdout_of(
        Command::new(skopeo).arg("--insecure-policy").args(args),
        format_args!("skopeo {args:?}"),
    )
}

#[test]
fn skopeo_pushes_hoist_pulls_and_skopeo_reads_the_layout() {
    let Some(sk) = peers::require("skopeo") else {
        return;
    };
    let Some(reg) = Distribution::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let d = |n: &str| home.join(n).to_str().unwrap().to_string();

    // A two-platform index made by hoist as a layout, pushed by skopeo (all images).
    hoist(
        home,
        &[
            "random",
            &format!("oci:{}:v1", d("src")),
            "--layers",
            "2",
            "--size",
            "128k",
            "--mode",
            "text",
            "--index",
            "2",
        ],
    );
    let remote = format!("{}/interop/app:v1", reg.addr());
    skopeo(
        &sk,
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", d("src")),
            &format!("docker://{remote}"),
        ],
    );
    let want = hoist(home, &["digest", &format!("oci:{}:v1", d("src"))]);
    assert_eq!(
        hoist(home, &["digest", &remote]),
        want,
        "skopeo kept the digest"
    );

    // hoist pulls everything, validates it, and the digest is skopeo's.
    let out = hoist(home, &["pull", &remote, &format!("oci:{}", d("pulled"))]);
    assert!(out.trim().ends_with(want.trim()), "{out}");
    let v = hoist(home, &["validate", &format!("oci:{}", d("pulled"))]);
    assert!(v.contains("2 images"), "{v}");

    // skopeo reads hoist's layout (one platform of it) into a docker archive, and
    // hoist validates what skopeo wrote; skopeo inspects the layout's index.
    let raw = skopeo(
        &sk,
        &["inspect", "--raw", &format!("oci:{}:v1", d("pulled"))],
    );
    assert!(raw.contains("\"manifests\""), "{raw}");
    skopeo(
        &sk,
        &[
            "copy",
            "--override-os",
            "linux",
            "--override-arch",
            "arm64",
            &format!("oci:{}:v1", d("pulled")),
            &format!("docker-archive:{}:x/y:v1", d("sk.tar")),
        ],
    );
    hoist(
        home,
        &["validate", &format!("docker-archive:{}", d("sk.tar"))],
    );

    // And a single platform pulled by hoist, copied by skopeo back to the registry:
    // same image digest as in the index.
    hoist(
        home,
        &[
            "pull",
            "--platform",
            "linux/amd64",
            &remote,
            &format!("oci:{}:one", d("one")),
        ],
    );
    skopeo(
        &sk,
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:one", d("one")),
            &format!("docker://{}/interop/one:v1", reg.addr()),
        ],
    );
    assert_eq!(
        hoist(home, &["digest", &format!("{}/interop/one:v1", reg.addr())]),
        hoist(home, &["digest", "--platform", "linux/amd64", &remote])
    );
}
