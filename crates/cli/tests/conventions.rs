//! The conventions scripts rely on, verb by verb, against the in-process registry:
//! stdout holds `REF@DIGEST` per image written and nothing else; `--format json` (`-o
//! json`) where a verb lists or reports; `ls --full-ref`; `--platform all` and lists;
//! `config` of an index picks this machine's platform; `mutate` without `-t` replaces
//! the source; crane's spellings; `oci-archive:`; unsupported transports and missing
//! files named as such; `--log` checked; completion scripts, man pages, the version with
//! its commit; help that lists what each verb takes; progress lines for every copy.

use std::path::Path;
use std::process::{Command, Output};

use hoist_testkit::registry::TestRegistry;
use serde_json::Value;

fn hoist(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("HOIST_CACHE_DIR", home.join("cache"))
        .env_remove("HOIST_LOG")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn fails(o: &Output, want: &str) {
    let e = err(o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    assert!(e.contains(want), "{want:?} not in {e}");
}

/// The single line of `out`, checked to be `{at}@sha256:...`; returns the digest.
fn pinned(out: &str, at: &str) -> String {
    let line = out.trim();
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    let (got, digest) = line.rsplit_once('@').unwrap_or_else(|| panic!("{line}"));
    assert_eq!(got, at, "{line}");
    assert!(digest.starts_with("sha256:"), "{line}");
    digest.to_string()
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn every_verb_that_writes_prints_ref_at_digest_and_json_reports() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let host = reg.host();
    let l = |n: &str| format!("oci:{}:{n}", home.join("l").display());

    // random and digest print the digest, nothing else.
    let d = ok(&hoist(&["random", &l("v1"), "--size", "16k"], home));
    assert!(
        d.trim().starts_with("sha256:") && d.lines().count() == 1,
        "{d}"
    );
    assert_eq!(ok(&hoist(&["digest", &l("v1")], home)), d);

    // push: a line per destination, the tag written, and a JSON report per destination.
    let a = format!("{host}/conv/a:v1");
    let b = format!("{host}/conv/b");
    let out = ok(&hoist(&["push", &l("v1"), &a, &b], home));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("{a}@{}", d.trim()),
            format!("{b}:latest@{}", d.trim())
        ]
    );
    let r = json(&ok(&hoist(&["push", "-o", "json", &l("v1"), &a], home)));
    assert_eq!(r["written"][0]["reference"], format!("{a}@{}", d.trim()));
    assert_eq!(r["written"][0]["digest"], d.trim());
    // A config and a layer, both there already.
    assert_eq!(r["written"][0]["blobs"]["present"], 2, "{r}");
    assert_eq!(r["written"][0]["blobs"]["uploaded"], 0, "{r}");
    assert_eq!(r["manifests"]["unchanged"], 1, "{r}");

    // copy to a registry (JSON per destination), locally, and into an oci-archive.
    let c = format!("{host}/conv/c:v1");
    let r = json(&ok(&hoist(
        &["copy", "--format", "json", &format!("docker://{a}"), &c],
        home,
    )));
    assert_eq!(r["written"][0]["reference"], format!("{c}@{}", d.trim()));
    // One registry: every blob mounted before the push engine looks, so found present.
    assert_eq!(r["written"][0]["blobs"]["present"], 2, "{r}");
    assert_eq!(r["written"][0]["blobs"]["uploaded"], 0, "{r}");
    pinned(
        &ok(&hoist(&["copy", &l("v1"), &l("copied")], home)),
        &l("copied"),
    );
    let arch = format!("oci-archive:{}", home.join("img.oci.tar").display());
    assert_eq!(
        pinned(&ok(&hoist(&["copy", &l("v1"), &arch], home)), &arch),
        d.trim()
    );

    // pull, tag, append, mutate, flatten, rebase, index: REF@DIGEST each.
    let p = format!("oci:{}", home.join("p").display());
    assert_eq!(pinned(&ok(&hoist(&["pull", &a, &p], home)), &p), d.trim());
    let out = ok(&hoist(&["tag", &a, "t1", "t2"], home));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("{host}/conv/a:t1@{}", d.trim()),
            format!("{host}/conv/a:t2@{}", d.trim())
        ]
    );
    let layer = home.join("layer");
    std::fs::create_dir(&layer).unwrap();
    std::fs::write(layer.join("f"), "f\n").unwrap();
    let appended = ok(&hoist(
        &[
            "append",
            &l("v1"),
            "--layer",
            layer.to_str().unwrap(),
            "-t",
            &l("app"),
        ],
        home,
    ));
    pinned(&appended, &l("app"));
    pinned(
        &ok(&hoist(
            &["mutate", &l("app"), "-t", &l("mut"), "--env", "A=1"],
            home,
        )),
        &l("mut"),
    );
    pinned(
        &ok(&hoist(&["flatten", &l("app"), "-t", &l("flat")], home)),
        &l("flat"),
    );
    pinned(
        &ok(&hoist(
            &[
                "rebase",
                &l("app"),
                "--old-base",
                &l("v1"),
                "--new-base",
                &l("v1"),
                "-t",
                &l("reb"),
            ],
            home,
        )),
        &l("reb"),
    );
    let ix = format!("{host}/conv/ix:v1");
    pinned(
        &ok(&hoist(&["index", "create", &l("v1"), "-t", &ix], home)),
        &ix,
    );

    // JSON listings: ls, catalog, digest, referrers, index list, cache ls.
    let repo = format!("{host}/conv/a");
    let v = json(&ok(&hoist(&["ls", "-o", "json", &repo], home)));
    assert_eq!(v["name"], repo);
    assert_eq!(v["tags"], serde_json::json!(["t1", "t2", "v1"]));
    let full = ok(&hoist(&["ls", "--full-ref", &repo], home));
    assert_eq!(
        full.lines().collect::<Vec<_>>(),
        [
            format!("{repo}:t1"),
            format!("{repo}:t2"),
            format!("{repo}:v1")
        ]
    );
    let v = json(&ok(&hoist(&["catalog", "--format", "json", &host], home)));
    assert!(
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "conv/a"),
        "{v}"
    );
    let v = json(&ok(&hoist(&["digest", "-o", "json", &a], home)));
    assert_eq!(v["digest"], d.trim());
    assert!(v["mediaType"].as_str().unwrap().contains("manifest"), "{v}");
    let v = json(&ok(&hoist(&["referrers", "-o", "json", &a], home)));
    assert_eq!(v["manifests"], serde_json::json!([]));
    let v = json(&ok(&hoist(&["index", "list", "-o", "json", &ix], home)));
    assert_eq!(v[0]["digest"], d.trim());
    assert_eq!(v[0]["platform"]["architecture"], "amd64");
    let v = json(&ok(&hoist(&["cache", "ls", "-o", "json"], home)));
    assert!(v.as_array().is_some_and(|a| !a.is_empty()), "{v}");
    assert!(
        v[0]["digest"].as_str().unwrap().starts_with("sha256:"),
        "{v}"
    );
}

#[test]
fn platforms_all_lists_and_config_of_an_index() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let src = format!("oci:{}:multi", home.join("l").display());
    ok(&hoist(
        &["random", &src, "--index", "3", "--size", "8k"],
        home,
    ));
    let r = format!("{}/plat/app:v1", reg.host());
    let index = pinned(&ok(&hoist(&["push", &src, &r], home)), &r);

    // --platform all: the index, as it is.
    let all = format!("oci:{}", home.join("all").display());
    assert_eq!(
        pinned(
            &ok(&hoist(&["pull", "--platform", "all", &r, &all], home)),
            &all
        ),
        index
    );
    // Two platforms: a new index of those two.
    let two = format!("oci:{}:two", home.join("two").display());
    let d2 = pinned(
        &ok(&hoist(
            &["pull", "--platform", "linux/amd64,linux/arm64", &r, &two],
            home,
        )),
        &two,
    );
    assert_ne!(d2, index);
    let v = json(&ok(&hoist(&["index", "list", "-o", "json", &two], home)));
    let archs: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    ok(&hoist(&["validate", &two], home));
    // Repeated flags mean the same, registry to registry too.
    let c = format!("{}/plat/two:v1", reg.host());
    let d = pinned(
        &ok(&hoist(
            &[
                "copy",
                "--platform",
                "linux/amd64",
                "--platform",
                "linux/arm64",
                &format!("docker://{r}"),
                &c,
            ],
            home,
        )),
        &c,
    );
    assert_eq!(d, d2, "the same two images, the same index");
    // One platform into a docker-archive; `all` is refused there (one image).
    let tar = format!("docker-archive:{}", home.join("one.tar").display());
    fails(
        &hoist(&["pull", "--platform", "all", &r, &tar], home),
        "holds one image",
    );
    fails(
        &hoist(&["pull", "--platform", "all,linux/amd64", &r, &all], home),
        "`all` goes alone",
    );

    // config of an index: this machine's platform, as crane does.
    let host_arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let cfg = json(&ok(&hoist(&["config", &r], home)));
    assert_eq!(cfg["architecture"], host_arch);
    let cfg = json(&ok(&hoist(&["config", &src], home)));
    assert_eq!(cfg["architecture"], host_arch);
    let cfg = json(&ok(&hoist(
        &["config", "--platform", "linux/arm/v7", &r],
        home,
    )));
    assert_eq!(cfg["architecture"], "arm");
    // An index without this machine's platform: the error lists what it has.
    let other = format!("{}/plat/other:v1", reg.host());
    let not_host = if host_arch == "amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    ok(&hoist(
        &[
            "copy",
            "--platform",
            &format!("{not_host},linux/arm/v7"),
            &format!("docker://{r}"),
            &other,
        ],
        home,
    ));
    fails(
        &hoist(&["config", &other], home),
        "pick one with --platform",
    );
    let e = err(&hoist(&["config", &other], home));
    assert!(e.contains(not_host) && e.contains("linux/arm/v7"), "{e}");
}

#[test]
fn mutate_replaces_its_source_and_crane_spellings_work() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let l = |n: &str| format!("oci:{}:{n}", home.join("l").display());
    ok(&hoist(&["random", &l("base"), "--size", "8k"], home));
    let r = format!("{}/mut/app:v1", reg.host());
    let before = pinned(&ok(&hoist(&["push", &l("base"), &r], home)), &r);

    // Without -t: the source tag is replaced (registry, layout, docker-archive).
    let after = pinned(&ok(&hoist(&["mutate", &r, "--label", "k=v"], home)), &r);
    assert_ne!(after, before);
    assert_eq!(ok(&hoist(&["digest", &r], home)).trim(), after);
    let cfg = json(&ok(&hoist(&["config", &r], home)));
    assert_eq!(cfg["config"]["Labels"]["k"], "v");
    ok(&hoist(&["copy", &l("base"), &l("edit")], home));
    pinned(
        &ok(&hoist(
            &["mutate", &l("edit"), "-e", "A=1", "-l", "x=y"],
            home,
        )),
        &l("edit"),
    );
    let cfg = json(&ok(&hoist(&["config", &l("edit")], home)));
    let env = |cfg: &Value| cfg["config"]["Env"].to_string();
    assert!(env(&cfg).contains("\"A=1\""), "{cfg}");
    let tar = format!("docker-archive:{}", home.join("m.tar").display());
    ok(&hoist(&["copy", &l("base"), &tar], home));
    ok(&hoist(&["mutate", &tar, "--env", "B=2"], home));
    let cfg = json(&ok(&hoist(&["config", &tar], home)));
    assert!(env(&cfg).contains("\"B=2\""), "{cfg}");
    // A source pinned by digest, or a layout without a name, needs -t.
    fails(
        &hoist(
            &[
                "mutate",
                &format!("{}/mut/app@{after}", reg.host()),
                "-l",
                "a=b",
            ],
            home,
        ),
        "-t",
    );

    // crane's spellings: append -b/-f/--new_layer/--new_tag, rebase --old_base/--new_base.
    let f = home.join("f.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&f).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
        b.finish().unwrap();
    }
    let crane = format!("{}/mut/crane:v1", reg.host());
    pinned(
        &ok(&hoist(
            &[
                "append",
                "-b",
                &l("base"),
                "-f",
                f.to_str().unwrap(),
                "-t",
                &crane,
            ],
            home,
        )),
        &crane,
    );
    let crane2 = format!("{}/mut/crane:v2", reg.host());
    pinned(
        &ok(&hoist(
            &[
                "append",
                "--base",
                &l("base"),
                "--new_layer",
                f.to_str().unwrap(),
                "--new_tag",
                &crane2,
            ],
            home,
        )),
        &crane2,
    );
    // No base: an image of nothing but the new layer (crane's default).
    let bare = format!("{}/mut/bare:v1", reg.host());
    pinned(
        &ok(&hoist(
            &["append", "-f", f.to_str().unwrap(), "-t", &bare],
            home,
        )),
        &bare,
    );
    let m = json(&ok(&hoist(&["manifest", &bare], home)));
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    let reb = format!("{}/mut/rebased:v1", reg.host());
    pinned(
        &ok(&hoist(
            &[
                "rebase",
                &crane,
                "--old_base",
                &l("base"),
                "--new_base",
                &l("edit"),
                "-t",
                &reb,
            ],
            home,
        )),
        &reb,
    );
}

#[test]
fn oci_archives_unsupported_transports_and_missing_files() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let l = format!("oci:{}:v1", home.join("l").display());
    let d = ok(&hoist(
        &["random", &l, "--layers", "2", "--size", "8k"],
        home,
    ));
    // An oci-archive written, read back (copy, digest, validate), byte-stable.
    let a = home.join("img.tar");
    let arch = format!("oci-archive:{}", a.display());
    ok(&hoist(&["copy", &l, &arch], home));
    let first = std::fs::read(&a).unwrap();
    ok(&hoist(&["copy", &l, &arch], home));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        first,
        "the same layout, the same archive"
    );
    assert_eq!(ok(&hoist(&["digest", &arch], home)), d);
    ok(&hoist(&["validate", &arch], home));
    let back = format!("oci:{}", home.join("back").display());
    assert_eq!(
        pinned(&ok(&hoist(&["copy", &arch, &back], home)), &back),
        d.trim()
    );
    // skopeo reads it (when installed).
    if let Some(sk) = hoist_testkit::peers::require("skopeo") {
        let out = Command::new(sk)
            .args(["--insecure-policy", "inspect", "--raw", &arch])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            hoist_image::Digest::sha256(&out.stdout).to_string(),
            d.trim()
        );
    }
    // An archive with an entry that leaves it is refused, naming it.
    let evil = home.join("evil.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&evil).unwrap());
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        b.finish().unwrap();
    }
    fails(
        &hoist(
            &["digest", &format!("oci-archive:{}", evil.display())],
            home,
        ),
        "../escape",
    );

    // skopeo's other transports: refused by name, never a Docker Hub lookup.
    for t in [
        "dir:/tmp/x",
        "containers-storage:app",
        "docker-daemon:app:v1",
    ] {
        fails(&hoist(&["copy", t, &l], home), "unsupported transport");
    }
    // A new file name ending in .tar is a docker-save tarball to write.
    let new_tar = "new.tar";
    pinned(
        &ok(&hoist(&["copy", &l, new_tar], home)),
        "docker-archive:new.tar",
    );
    ok(&hoist(&["validate", new_tar], home));
    // A missing local source: "no such file", not a registry reference.
    fails(
        &hoist(&["copy", "missing.tar", &l], home),
        "no such file or directory",
    );
    fails(
        &hoist(&["push", "missing", "localhost:1/x"], home),
        "no such file or directory",
    );
}

#[test]
fn global_options_help_completion_man_and_version() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    // --log is checked.
    let o = hoist(&["--log", "bogus", "version"], home);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("invalid directive \"bogus\""),
        "{}",
        err(&o)
    );
    ok(&hoist(
        &["--log", "warn,hoist::access=info", "version"],
        home,
    ));

    // version: the commit it was built from (this is a git checkout).
    let v = ok(&hoist(&["version"], home));
    assert!(v.starts_with("hoist 0."), "{v}");
    if Command::new("git").arg("--version").output().is_ok() {
        assert!(v.contains("(commit "), "{v}");
    }
    assert_eq!(ok(&hoist(&["--version"], home)), v);

    // Completion scripts for the four shells, naming the verbs.
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let s = ok(&hoist(&["completion", shell], home));
        assert!(
            s.contains("hoist") && s.contains("copy") && s.contains("referrers"),
            "{shell}"
        );
    }
    // bash accepts its script.
    let script = home.join("hoist.bash");
    std::fs::write(&script, ok(&hoist(&["completion", "bash"], home))).unwrap();
    let o = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));

    // Man pages: one for hoist, one per verb, in roff.
    let man = home.join("man");
    ok(&hoist(&["man", man.to_str().unwrap()], home));
    for page in [
        "hoist.1",
        "hoist-copy.1",
        "hoist-index-create.1",
        "hoist-login.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }

    // Help lists what a verb takes: cache options only where the cache is used,
    // no --platform on registry-only verbs that have no use for it.
    let help = |verb: &str| ok(&hoist(&[verb, "--help"], home));
    for v in [
        "copy", "push", "pull", "append", "mutate", "flatten", "rebase",
    ] {
        assert!(help(v).contains("--cache-dir"), "{v}");
    }
    for v in [
        "digest",
        "ls",
        "catalog",
        "blob",
        "delete",
        "referrers",
        "validate",
        "export",
        "tag",
    ] {
        assert!(!help(v).contains("--cache-dir"), "{v}");
    }
    for v in ["blob", "delete", "referrers", "ls", "catalog", "tag"] {
        assert!(!help(v).contains("--platform"), "{v}");
        assert!(!help(v).contains("oci:DIR"), "{v}: registry only");
    }
    assert!(
        help("copy").contains("docker://REF"),
        "copy takes registries"
    );
    // -q and -v are the same options on every verb.
    for v in ["copy", "push", "pull", "ls", "digest", "index", "cache"] {
        let h = help(v);
        assert!(
            h.contains("-q, --quiet") && h.contains("-v, --verbose"),
            "{v}"
        );
    }
}

#[test]
fn progress_of_pulls_to_tarballs_copies_between_registries_and_local_copies() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let l = format!("oci:{}:v1", home.join("l").display());
    ok(&hoist(
        &["random", &l, "--layers", "2", "--size", "64k"],
        home,
    ));
    let r = format!("{}/prog/app:v1", reg.host());
    ok(&hoist(&["push", "-q", &l, &r], home));

    // stderr is not a terminal here: a line per blob.
    let lines = |o: &Output, what: &str| err(o).lines().filter(|l| l.contains(what)).count();
    let tar = home.join("pulled.tar");
    let o = hoist(&["pull", &r, tar.to_str().unwrap()], home);
    ok(&o);
    assert_eq!(lines(&o, " written ("), 2, "{}", err(&o));
    // Registry to registry: a line per blob (mounted first on one registry: found there).
    let o = hoist(
        &[
            "copy",
            &format!("docker://{r}"),
            &format!("docker://{}/prog/other:v1", reg.host()),
        ],
        home,
    );
    ok(&o);
    assert_eq!(
        lines(&o, "prog/other: "),
        4,
        "3 blobs, 1 manifest: {}",
        err(&o)
    );
    let o = hoist(
        &["copy", &l, &format!("oci:{}", home.join("copy").display())],
        home,
    );
    ok(&o);
    assert_eq!(lines(&o, " written ("), 2, "{}", err(&o));
    // -q: nothing.
    let o = hoist(
        &["pull", "-q", &r, home.join("q.tar").to_str().unwrap()],
        home,
    );
    ok(&o);
    assert!(o.stderr.is_empty(), "{}", err(&o));
    // -v: what the cache, the push engine and the client did.
    let o = hoist(
        &[
            "copy",
            "-v",
            &l,
            &format!("docker://{}/prog/v:v1", reg.host()),
        ],
        home,
    );
    ok(&o);
    assert!(
        err(&o).contains("blobs: ") && err(&o).contains("registry client: "),
        "{}",
        err(&o)
    );
}
