//! The image-changing verbs end to end: append, mutate, flatten, rebase, export. Each
//! result passes `hoist validate` and is read by skopeo; bad input is a one-line error;
//! and a config change pushed to a registry uploads one config and one manifest only.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hoist_image::Image;
use hoist_image::layout::{self, Layout};
use hoist_image::mutate::{self, Edits};
use hoist_testkit::counting::CountingImage;
use hoist_testkit::faults::Proxy;
use hoist_testkit::peers;
use hoist_testkit::registry::TestRegistry;

fn hoist_in(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .env("HOIST_CACHE_DIR", cache)
        .env("HOME", cache)
        .output()
        .unwrap()
}

fn ok(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "hoist {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Env {
    t: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            t: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, p: &str) -> String {
        self.t.path().join(p).to_str().unwrap().to_string()
    }
    fn run(&self, args: &[&str]) -> String {
        ok(hoist_in(&self.t.path().join("cache"), args), args)
    }
    fn fails(&self, args: &[&str], want: &str) {
        let out = hoist_in(&self.t.path().join("cache"), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line expected: {err}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    }
    /// `hoist validate` passes, and skopeo reads it all (when installed): `skopeo copy
    /// --all` into a fresh layout, which reads and checks every blob.
    fn proven(&self, loc: &str) {
        let v = self.run(&["validate", loc]);
        assert!(v.contains("valid"), "{v}");
        if let Some(sk) = peers::require("skopeo") {
            let to = tempfile::tempdir().unwrap();
            let out = Command::new(sk)
                .args(["--insecure-policy", "copy", "--all", loc])
                .arg(format!("oci:{}:x", to.path().display()))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "skopeo copy --all {loc}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn digest_of(line: &str) -> String {
    // `DST@DIGEST`
    line.trim().rsplit_once('@').unwrap().1.to_string()
}

fn tar_names(bytes: &[u8]) -> BTreeSet<String> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

fn whiteout_tar(path: &str, names: &[&str]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for n in names {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, n, std::io::empty()).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn append_mutate_flatten_export_rebase_end_to_end() {
    let e = Env::new();
    let tree = e.path("tree");
    std::fs::create_dir_all(format!("{tree}/etc/app")).unwrap();
    std::fs::write(format!("{tree}/etc/app/conf"), "x=1\n").unwrap();
    std::fs::write(format!("{tree}/hello"), "hello\n").unwrap();
    let l = e.path("l");

    // append: a directory onto scratch; reproducible with --time (another cache too).
    let base = format!("oci:{l}:base");
    let args = [
        "append",
        "scratch",
        "--layer",
        &tree,
        "-t",
        &base,
        "--time",
        "2024-01-02T03:04:05Z",
    ];
    let d1 = digest_of(&e.run(&args));
    let e2 = Env::new();
    let other = format!("oci:{}:again", e2.path("l"));
    let mut args2 = args;
    args2[5] = &other;
    assert_eq!(
        d1,
        digest_of(&e2.run(&args2)),
        "same inputs and --time: same digest"
    );
    e.proven(&base);

    // append a tar that deletes /hello on top.
    let wh = e.path("wh.tar");
    whiteout_tar(&wh, &[".wh.hello", "added"]);
    let app = format!("oci:{l}:app");
    e.run(&["append", &base, "--layer", &wh, "-t", &app]);
    e.proven(&app);

    // mutate: config only.
    let edited = format!("oci:{l}:edited");
    e.run(&[
        "mutate",
        &app,
        "-t",
        &edited,
        "--env",
        "A=1",
        "--label",
        "k=v",
        "--annotation",
        "org.example=y",
        "--entrypoint",
        "/bin/sh,-c",
        "--cmd",
        "[\"echo hi\"]",
        "--user",
        "1000",
        "--workdir",
        "/w",
        "--expose",
        "8080",
        "--time",
        "0",
    ]);
    e.proven(&edited);
    let layout = Layout::open(&l).unwrap();
    let img = layout.image("edited").unwrap();
    let c = img.config().unwrap();
    assert_eq!(c.parsed().rest["config"]["Env"][0], "A=1");
    assert_eq!(c.parsed().rest["config"]["Entrypoint"][1], "-c");
    assert_eq!(c.parsed().rest["config"]["Cmd"][0], "echo hi");
    assert_eq!(
        img.manifest().unwrap().as_image().unwrap().layers,
        layout
            .image("app")
            .unwrap()
            .manifest()
            .unwrap()
            .as_image()
            .unwrap()
            .layers
    );

    // export: the merged filesystem, /hello deleted, no whiteout markers.
    let out = hoist_in(&e.t.path().join("cache"), &["export", &edited, "-"]);
    assert!(out.status.success());
    let names = tar_names(&out.stdout);
    let want: BTreeSet<String> = ["added", "etc", "etc/app", "etc/app/conf"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, want);
    let file = e.path("fs.tar");
    e.run(&["export", &edited, &file]);
    assert_eq!(tar_names(&std::fs::read(&file).unwrap()), want);

    // flatten: one layer with the same filesystem; to a docker-archive as well.
    let flat = format!("oci:{l}:flat");
    e.run(&["flatten", &edited, "-t", &flat, "--time", "0"]);
    e.proven(&flat);
    let fimg = layout.image("flat").unwrap();
    let ls = fimg.layers().unwrap();
    assert_eq!(ls.len(), 1);
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut ls[0].uncompressed().unwrap(), &mut bytes).unwrap();
    assert_eq!(tar_names(&bytes), want);
    let arch = format!("docker-archive:{}:flat:v1", e.path("flat.tar"));
    e.run(&["flatten", &edited, "-t", &arch]);
    e.proven(&arch);

    // rebase app from base onto another base.
    let nb = format!("oci:{l}:newbase");
    e.run(&[
        "random", &nb, "--layers", "2", "--size", "4k", "--seed", "3",
    ]);
    let rebased = format!("oci:{l}:rebased");
    e.run(&[
        "rebase",
        &app,
        "--old-base",
        &base,
        "--new-base",
        &nb,
        "-t",
        &rebased,
    ]);
    e.proven(&rebased);
    let r = layout.image("rebased").unwrap();
    assert_eq!(r.layers().unwrap().len(), 3);

    // Bad input: one line each, naming the input.
    e.fails(
        &["mutate", &app, "-t", &edited, "--env", "NOEQUALS"],
        "--env \"NOEQUALS\": expected KEY=VALUE",
    );
    e.fails(
        &["mutate", &app, "-t", &edited, "--expose", "http"],
        "port \"http\"",
    );
    e.fails(
        &["mutate", &app, "-t", &edited, "--time", "yesterday"],
        "expected seconds",
    );
    e.fails(
        &[
            "rebase",
            &app,
            "--old-base",
            &nb,
            "--new-base",
            &base,
            "-t",
            &rebased,
        ],
        "expected its layers to be the first layers",
    );
    let evil = e.path("evil.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&evil).unwrap());
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..13].copy_from_slice(b"../etc/passwd");
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        b.finish().unwrap();
    }
    e.fails(
        &["append", &base, "--layer", &evil, "-t", &app],
        "without '..'",
    );
    e.fails(
        &[
            "append",
            "scratch",
            "--layer",
            &e.path("missing"),
            "-t",
            &app,
        ],
        "missing",
    );
    // Nothing already stored was lost: app still validates.
    e.proven(&app);
}

/// The counting test: a 10-layer image is in the registry; changing its config and
/// pushing the result uploads one config and one manifest, and reads no layer.
#[test]
fn mutating_a_config_in_a_registry_uploads_config_and_manifest_only() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let random = hoist_image::random::image(&hoist_image::random::Options {
        layers: 10,
        // 20 KB a layer (random bytes): one layer re-sent would break the 4 KiB bounds below.
        size: 200_000,
        seed: 5,
        ..Default::default()
    })
    .unwrap();
    let l = Layout::create(t.path().join("l")).unwrap();
    layout::write(&l, random.as_ref(), Some("v1")).unwrap();
    let base = l.image("v1").unwrap();
    let repo = hoist_remote::Repository::new(reg.addr().to_string(), "count/app").unwrap();
    let client = hoist_remote::Client::builder().build().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let push = |img: Arc<dyn Image>, addr: std::net::SocketAddr, tag: &str| {
        let repo = hoist_remote::Repository::new(addr.to_string(), "count/app").unwrap();
        let target = hoist_remote::Target::tagged(repo, tag).unwrap();
        rt.block_on(hoist_remote::push::push(
            &client,
            hoist_image::Child::Image(img),
            &[target],
            &Default::default(),
            Arc::new(hoist_remote::push::NoProgress),
        ))
        .unwrap()
    };
    push(base.clone(), reg.addr(), "v1");

    let proxy = Proxy::start(reg.addr(), vec![]);
    let reads = Arc::new(AtomicUsize::new(0));
    let counted: Arc<dyn Image> = Arc::new(CountingImage {
        inner: base,
        reads: reads.clone(),
    });
    let edits = Edits {
        env: vec![mutate::parse_env("MODE=prod").unwrap()],
        labels: vec![("version".into(), "2".into())],
        ..Default::default()
    };
    let edited = mutate::edit(counted, &edits).unwrap();
    let config_size = edited.config().unwrap().raw().len() as u64;
    let manifest_size = edited.manifest().unwrap().raw().len() as u64;
    let report = push(edited.clone(), proxy.addr(), "v2");
    let c = proxy.counters();
    assert_eq!(reads.load(Ordering::SeqCst), 0, "no layer was read");
    assert_eq!(
        report.blobs_uploaded,
        1,
        "one blob (the config): {}",
        c.summary()
    );
    assert_eq!(c.method("PATCH"), 0, "{}", c.summary());
    assert_eq!(c.method("POST"), 1, "one upload session: {}", c.summary());
    assert_eq!(
        c.method("PUT"),
        2,
        "config commit + manifest: {}",
        c.summary()
    );
    assert_eq!(
        c.body_bytes.load(Ordering::Relaxed),
        config_size + manifest_size,
        "only the config and the manifest went over the wire"
    );
    rt.block_on(hoist_remote::validate(
        &client,
        &repo,
        "v2",
        Default::default(),
    ))
    .unwrap();

    // The same through the CLI: a registry destination, the same wire traffic.
    let before = c.method("PUT");
    let posts = c.method("POST");
    let cache = t.path().join("cache");
    let dst = format!("{}/count/app:v3", proxy.addr());
    let src = format!("oci:{}:v1", l.path().display());
    let args = ["mutate", &src, "-t", &dst, "--label", "version=3"];
    let out = ok(hoist_in(&cache, &args), &args);
    assert!(out.contains("sha256:"), "{out}");
    assert_eq!(c.method("PUT") - before, 2, "{}", c.summary());
    assert_eq!(c.method("POST") - posts, 1, "{}", c.summary());
    assert_eq!(c.method("PATCH"), 0, "{}", c.summary());
    rt.block_on(hoist_remote::validate(
        &client,
        &repo,
        "v3",
        Default::default(),
    ))
    .unwrap();
    if let Some(sk) = peers::require("skopeo") {
        let out = Command::new(sk)
            .args(["--insecure-policy", "inspect", "--tls-verify=false"])
            .arg(format!("docker://{dst}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Labels"]["version"], "3", "{v}");
    }
}

#[test]
fn index_create_append_filter_list_and_layout_gc() {
    let e = Env::new();
    let l = e.path("l");
    let at = |n: &str| format!("oci:{l}:{n}");
    e.run(&[
        "random",
        &at("amd"),
        "--layers",
        "2",
        "--size",
        "4k",
        "--seed",
        "1",
    ]);
    // Same layers, other platforms: config-only changes.
    e.run(&[
        "mutate",
        &at("amd"),
        "-t",
        &at("arm"),
        "--platform",
        "linux/arm64",
    ]);
    e.run(&[
        "mutate",
        &at("amd"),
        "-t",
        &at("v7"),
        "--platform",
        "linux/arm/v7",
    ]);

    e.run(&[
        "index",
        "create",
        &at("amd"),
        &at("arm"),
        "-t",
        &at("multi"),
    ]);
    e.proven(&at("multi"));
    let list = e.run(&["index", "list", &at("multi")]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].contains("linux/amd64") && lines[1].contains("linux/arm64"),
        "{list}"
    );
    if let Some(sk) = peers::require("skopeo") {
        let out = Command::new(sk)
            .args(["--insecure-policy", "copy", "--all", &at("multi")])
            .arg(format!("oci:{}:copied", e.path("sk")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    e.run(&[
        "index",
        "append",
        &at("multi"),
        &at("v7"),
        "-t",
        &at("three"),
    ]);
    e.proven(&at("three"));
    assert_eq!(e.run(&["index", "list", &at("three")]).lines().count(), 3);
    // Replacing a platform: the arm64 image edited, appended again: still three entries.
    e.run(&["mutate", &at("arm"), "-t", &at("arm2"), "--label", "rev=2"]);
    e.run(&[
        "index",
        "append",
        &at("three"),
        &at("arm2"),
        "-t",
        &at("three"),
    ]);
    let three = e.run(&["index", "list", &at("three")]);
    assert_eq!(three.lines().count(), 3, "{three}");

    e.run(&[
        "index",
        "filter",
        &at("three"),
        "--platform",
        "linux/arm",
        "-t",
        &at("arm-only"),
    ]);
    e.proven(&at("arm-only"));
    let only = e.run(&["index", "list", &at("arm-only")]);
    assert_eq!(only.lines().count(), 1, "{only}");
    assert!(only.contains("linux/arm/v7"), "{only}");
    e.fails(
        &[
            "index",
            "filter",
            &at("three"),
            "--platform",
            "windows/amd64",
            "-t",
            &at("x"),
        ],
        "it has: linux/amd64",
    );
    e.fails(&["index", "list", &at("amd")], "not an index");

    // mutate of an index edits every image and makes a new index of them.
    e.run(&[
        "mutate",
        &at("multi"),
        "-t",
        &at("multi-edited"),
        "--label",
        "team=x",
    ]);
    e.proven(&at("multi-edited"));
    let edited = Layout::open(&l).unwrap();
    let idx = match edited.get("multi-edited").unwrap() {
        hoist_image::Child::Index(i) => i,
        hoist_image::Child::Image(_) => panic!("expected an index"),
    };
    let m = idx.manifest().unwrap();
    let entries = &m.as_index().unwrap().manifests;
    assert_eq!(entries.len(), 2);
    for d in entries {
        let hoist_image::Child::Image(img) = idx.child(d).unwrap() else {
            panic!("expected images")
        };
        assert_eq!(
            img.config().unwrap().parsed().rest["config"]["Labels"]["team"],
            "x"
        );
    }
    e.fails(
        &[
            "mutate",
            &at("multi"),
            "-t",
            &at("x"),
            "--platform",
            "linux/s390x",
        ],
        "is an index of several platforms",
    );

    // An index in a registry (through the push engine).
    let reg = TestRegistry::start();
    let dst = format!("{}/idx/app:multi", reg.addr());
    e.run(&["index", "create", &at("amd"), &at("arm"), "-t", &dst]);
    let client = hoist_remote::Client::builder().build().unwrap();
    let repo = hoist_remote::Repository::new(reg.addr().to_string(), "idx/app").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(hoist_remote::validate(
        &client,
        &repo,
        "multi",
        Default::default(),
    ))
    .unwrap();
    // A registry index as the source, to another repository of the registry.
    let edited_dst = format!("{}/idx/edited:v1", reg.addr());
    e.run(&["mutate", &dst, "-t", &edited_dst, "--env", "X=1"]);
    let edited_repo = hoist_remote::Repository::new(reg.addr().to_string(), "idx/edited").unwrap();
    let r = rt
        .block_on(hoist_remote::validate(
            &client,
            &edited_repo,
            "v1",
            Default::default(),
        ))
        .unwrap();
    let listed = e.run(&["index", "list", &edited_dst]);
    assert_eq!(listed.lines().count(), 2, "{listed} {r:?}");

    // layout gc: re-tagging "arm2" orphans its old manifest and config.
    let blobs = || {
        std::fs::read_dir(format!("{l}/blobs/sha256"))
            .unwrap()
            .count()
    };
    // Re-writing "three" above orphaned its first version.
    let gc = e.run(&["layout", "gc", &l]);
    assert!(gc.contains("removed 1 blobs"), "the replaced index: {gc}");
    let gc = e.run(&["layout", "gc", &l]);
    assert!(gc.contains("removed 0 blobs"), "nothing orphaned now: {gc}");
    let before = blobs();
    e.run(&["mutate", &at("arm"), "-t", &at("arm2"), "--label", "rev=3"]);
    assert_eq!(blobs(), before + 2, "a new config and manifest");
    // "three" still references the rev=2 image, so make it unreachable first.
    e.run(&[
        "index",
        "append",
        &at("three"),
        &at("arm2"),
        "-t",
        &at("three"),
    ]);
    e.run(&[
        "index",
        "filter",
        &at("three"),
        "--platform",
        "linux/arm64",
        "-t",
        &at("arm-only"),
    ]);
    let gc = e.run(&["layout", "gc", &l]);
    assert!(
        gc.contains("removed 4 blobs"),
        "old 'three' and 'arm-only' indexes, rev=2 manifest and config: {gc}"
    );
    for n in ["amd", "arm", "v7", "multi", "three", "arm-only", "arm2"] {
        e.proven(&at(n));
    }
    e.fails(&["layout", "gc", &e.path("nope")], "nope");
}
