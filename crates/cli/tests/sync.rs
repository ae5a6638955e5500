//! `hoist sync` as a user runs it: killed with SIGKILL in the middle and run again
//! (from `hoist serve` to distribution), and a sync where some images fail (exit
//! status, report, the rate-limit line on stderr).

mod serve_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hoist_image::Digest;
use hoist_testkit::api::Raw;
use hoist_testkit::distribution::Distribution;
use hoist_testkit::faults::{Fault, Match, Proxy, Rule};
use hoist_testkit::mirror;
use hoist_testkit::registry::TestRegistry;
use serve_common::Server;

fn hoist(state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
    c.env_remove("HOIST_CACHE_DIR")
        .env_remove("XDG_CACHE_HOME")
        .arg("sync")
        .arg("--state")
        .arg(state);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_sync_killed_with_sigkill_continues_without_copying_finished_images_again() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let server = Server::start_logged(&t.path().join("root"), &[], &t.path().join("serve.log"));
    let src_proxy = Proxy::start(server.addr().parse().unwrap(), vec![]);
    let fixture = mirror::populate(
        &server.url(),
        &mirror::Options {
            repos: 4,
            ..Default::default()
        },
    );
    let total = fixture.images.len();
    // Uploads answered slowly, and from the fifth manifest on, manifests are stored but
    // never answered: the run is killed while some images are done and others not.
    let dst_proxy = Proxy::start(
        dist.addr(),
        vec![
            Rule::new(
                Match::method("PUT").path("/blobs/uploads/"),
                Fault::Stall(Duration::from_millis(100)),
                u64::MAX,
            ),
            Rule::new(
                Match::method("PUT").path("/manifests/"),
                Fault::Stall(Duration::from_secs(60)),
                u64::MAX,
            )
            .after(4),
        ],
    );
    let (sh, dh, direct) = (
        src_proxy.addr().to_string(),
        dst_proxy.addr().to_string(),
        dist.addr().to_string(),
    );
    let state = t.path().join("state.jsonl");
    let args = [
        format!("{sh}/team"),
        format!("{dh}/mirror"),
        "--jobs".into(),
        "2".into(),
    ];
    let mut child = hoist(&state)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stalled = false;
    for _ in 0..1200 {
        if dst_proxy.counters().route("PUT", "manifests") > 4 {
            stalled = true;
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "hoist sync ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        stalled,
        "no manifest reached the destination: {}",
        dst_proxy.counters().summary()
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // What the killed run left at the destination.
    let raw = Raw::new();
    let at = |repo: &str| repo.replacen("team", "mirror", 1);
    let done: BTreeSet<(String, String)> = fixture
        .images
        .iter()
        .filter(|(repo, tag, d)| raw.digest(&direct, &at(repo), tag).as_ref() == Some(d))
        .map(|(r, t, _)| (r.clone(), t.clone()))
        .collect();
    assert!(
        !done.is_empty() && done.len() < total,
        "{} of {total} done",
        done.len()
    );
    let repos = fixture.repos();
    let there: BTreeSet<Digest> = fixture
        .blobs
        .keys()
        .filter(|d| repos.iter().any(|r| raw.has_blob(&direct, &at(r), d)))
        .cloned()
        .collect();
    assert!(std::fs::metadata(&state).unwrap().len() > 0);

    dst_proxy.set_rules(vec![]);
    src_proxy.counters().reset();
    dst_proxy.counters().reset();
    let out = hoist(&state).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(
        text(&out.stdout).lines().count(),
        total,
        "{}",
        text(&out.stdout)
    );
    // The images this run found finished: at least those seen at the destination after
    // the kill (manifests stored while the answer was held count too), not all.
    let unchanged: BTreeSet<(String, String)> = err
        .lines()
        .filter_map(|l| l.strip_prefix("unchanged "))
        .map(|r| {
            let (repo, tag) = r.split_once('/').unwrap().1.rsplit_once(':').unwrap();
            (repo.to_string(), tag.to_string())
        })
        .collect();
    assert!(unchanged.is_superset(&done), "{done:?} finished, {err}");
    assert!(unchanged.len() < total, "{err}");

    // A finished image: one HEAD of its tag on each side, nothing else about it.
    let (s, d) = (src_proxy.counters(), dst_proxy.counters());
    for (repo, tag) in &unchanged {
        let src_path = format!("/v2/{repo}/manifests/{tag}");
        let dst_path = format!("/v2/{}/manifests/{tag}", at(repo));
        assert_eq!(
            s.count_of("HEAD", &src_path),
            1,
            "{src_path}: {:#?}",
            s.log()
        );
        assert_eq!(
            d.count_of("HEAD", &dst_path),
            1,
            "{dst_path}: {:#?}",
            d.log()
        );
        assert_eq!(s.count_of("GET", &src_path), 0, "{src_path}");
        assert_eq!(d.count_of("PUT", &dst_path), 0, "{dst_path}");
    }
    // Blobs the first run delivered are neither read nor uploaded again.
    for b in &there {
        let read = s
            .log()
            .iter()
            .any(|l| l.starts_with("GET ") && l.contains(&format!("/blobs/{b}")));
        let sent = d
            .log()
            .iter()
            .any(|l| l.starts_with("PUT ") && l.contains(b.hex()));
        assert!(!read && !sent, "{b} moved again");
    }
    // The images that were not finished are, now: every tag at its digest, valid.
    for (repo, tag, dg) in &fixture.images {
        assert_eq!(
            raw.digest(&direct, &at(repo), tag).as_ref(),
            Some(dg),
            "{repo}:{tag}"
        );
        let v = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(["validate", &format!("docker://{direct}/{}:{tag}", at(repo))])
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "validate {repo}:{tag}: {}",
            text(&v.stderr)
        );
    }
    assert!(
        d.route("PUT", "manifests") as usize >= total - unchanged.len(),
        "{}",
        d.summary()
    );
}

/// A source with `team/app0` and `team/app1` (three tags each, no index or referrers),
/// and an empty destination.
fn two_repositories() -> (TestRegistry, TestRegistry, mirror::Source) {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let fixture = mirror::populate(
        &src.url(),
        &mirror::Options {
            repos: 2,
            extras: false,
            ..Default::default()
        },
    );
    (src, dst, fixture)
}

fn run_sync(state: &Path, args: &[&str]) -> Output {
    hoist(state).args(args).output().unwrap()
}

#[test]
fn failed_images_are_reported_and_make_the_exit_status_non_zero() {
    let (src, dst, fixture) = two_repositories();
    let src_proxy = Proxy::start(src.addr(), vec![]);
    // Manifests read as Docker Hub counts them: 4 per window of 2 s (the images
    // read theirs at once: some are refused, and sent again after `Retry-After`).
    src_proxy.set_rate_limit(
        Match::method("GET").path("/manifests/"),
        4,
        Duration::from_secs(2),
    );
    // The destination refuses every manifest of one repository.
    let dst_proxy = Proxy::start(
        dst.addr(),
        vec![Rule::new(
            Match::method("PUT").path("/v2/m/app1/manifests/"),
            Fault::Status(403),
            u64::MAX,
        )],
    );
    let t = tempfile::tempdir().unwrap();
    let (sh, dh) = (src_proxy.addr().to_string(), dst_proxy.addr().to_string());
    let out = run_sync(
        &t.path().join("state.jsonl"),
        &[
            &format!("{sh}/team"),
            &format!("{dh}/m"),
            "--format",
            "json",
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["copied"], 3, "{report:#}");
    assert_eq!(report["summary"]["failed"], 3, "{report:#}");
    for i in report["images"].as_array().unwrap() {
        let app1 = i["source"].as_str().unwrap().contains("/team/app1:");
        assert_eq!(
            i["outcome"],
            if app1 { "failed" } else { "copied" },
            "{i:#}"
        );
        if app1 {
            assert!(i["reason"].as_str().unwrap().contains("403"), "{i:#}");
        }
    }
    for line in ["FAILED", "3 of 6 failed", "rate limit low"] {
        assert!(err.contains(line), "{line:?} not in {err}");
    }
    let raw = Raw::new();
    for (repo, tag, d) in &fixture.images {
        let at = repo.replacen("team", "m", 1);
        let want = (!repo.ends_with("app1")).then(|| d.clone());
        assert_eq!(raw.digest(&dst.host(), &at, tag), want, "{at}:{tag}");
    }
}

#[test]
fn copy_with_referrers_keeps_signatures_and_sboms_at_a_registry_without_the_api() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let src = TestRegistry::start();
    let fixture = mirror::populate(
        &src.url(),
        &mirror::Options {
            repos: 1,
            ..Default::default()
        },
    );
    let (sh, dh) = (src.host(), dist.addr().to_string());
    let t = tempfile::tempdir().unwrap();
    let raw = Raw::new();
    for (repo, tag) in [("team/multi", "v1"), ("team/app0", "v2.0.0")] {
        let to = repo.replacen("team", "c", 1);
        let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
            .env("HOIST_CACHE_DIR", t.path())
            .args([
                "copy",
                "--referrers",
                &format!("docker://{sh}/{repo}:{tag}"),
                &format!("docker://{dh}/{to}:{tag}"),
            ])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        let mine: Vec<&mirror::Referrer> = fixture
            .referrers
            .iter()
            .filter(|r| r.repo == repo)
            .collect();
        assert!(
            err.contains(&format!("referrers: {} copied", mine.len())),
            "{err}"
        );
        let (_, _, d) = fixture
            .images
            .iter()
            .find(|(r, t, _)| r == repo && t == tag)
            .unwrap();
        assert_eq!(raw.digest(&dh, &to, tag).as_ref(), Some(d));
        // Each referrer byte for byte, listed under its subject's fallback tag with its
        // artifact type (distribution has no referrers API).
        for r in mine {
            assert_eq!(
                raw.manifest(&dh, &to, &r.digest.to_string()),
                raw.manifest(&sh, repo, &r.digest.to_string()),
                "{}",
                r.digest
            );
            let index: serde_json::Value = serde_json::from_slice(&raw.manifest(
                &dh,
                &to,
                &format!("sha256-{}", r.subject.hex()),
            ))
            .unwrap();
            assert!(
                index["manifests"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["digest"] == r.digest.to_string()
                        && m["artifactType"] == r.artifact_type.as_str()),
                "{} not under the fallback tag of {}: {index}",
                r.digest,
                r.subject
            );
        }
    }
    // Digests are what signatures name: a conversion is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_hoist"))
        .env("HOIST_CACHE_DIR", t.path())
        .args([
            "copy",
            "--referrers",
            "--compression",
            "zstd",
            &format!("docker://{sh}/team/app0:v1.0.0"),
            &format!("docker://{dh}/c/z:v1"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--referrers keeps every digest"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_config_file_of_pairs_planned_then_synced() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let fixture = mirror::populate(
        &src.url(),
        &mirror::Options {
            repos: 2,
            tags: ["1.9.0", "1.10.0", "2.0.0-rc.1", "2.0.0", "edge"]
                .map(String::from)
                .to_vec(),
            extras: false,
            ..Default::default()
        },
    );
    let (sh, dh) = (src.host(), dst.host());
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("mirror.yaml");
    std::fs::write(
        &config,
        format!(
            "jobs: 2\nsync:\n  - source: {sh}/team/app0\n    destination: {dh}/a\n    semver: '>=1.9'\n    exclude: '.*-rc.*'\n    latest: 2\n  - source: {sh}/team/app1:edge\n    destination: {dh}/b\n"
        ),
    )
    .unwrap();
    let state = t.path().join("state.jsonl");
    let cfg = config.to_str().unwrap();
    let plan = hoist(&state)
        .args(["--config", cfg, "--dry-run"])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let lines: Vec<String> = text(&plan.stdout).lines().map(String::from).collect();
    // The newest two versions (version order: 1.10 after 1.9), and the one tag.
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (i, (from, to)) in [
        ("team/app0:1.10.0", "a:1.10.0"),
        ("team/app0:2.0.0", "a:2.0.0"),
        ("team/app1:edge", "b:edge"),
    ]
    .iter()
    .enumerate()
    {
        let want = format!("{sh}/{from} -> {dh}/{to}: ");
        assert!(lines[i].starts_with(&want), "{} vs {want}", lines[i]);
        assert!(lines[i].contains("to upload"), "{}", lines[i]);
    }
    let raw = Raw::new();
    assert_eq!(raw.digest(&dh, "a", "2.0.0"), None, "a dry run wrote");

    let out = hoist(&state).args(["--config", cfg]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let refs: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    let digest = |repo: &str, tag: &str| {
        fixture
            .images
            .iter()
            .find(|(r, t, _)| r == repo && t == tag)
            .unwrap()
            .2
            .clone()
    };
    assert_eq!(
        refs,
        vec![
            format!("{dh}/a:1.10.0@{}", digest("team/app0", "1.10.0")),
            format!("{dh}/a:2.0.0@{}", digest("team/app0", "2.0.0")),
            format!("{dh}/b:edge@{}", digest("team/app1", "edge")),
        ]
    );
    assert_eq!(raw.digest(&dh, "a", "1.9.0"), None);
    assert_eq!(
        raw.digest(&dh, "b", "edge"),
        Some(digest("team/app1", "edge"))
    );
}

/// `cmd` run under a pseudo-terminal made by util-linux's `script` (in every Debian and
/// Ubuntu: bsdutils): what the terminal received, stdout and stderr together.
fn on_a_terminal(cmd: &Command) -> Output {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_str().unwrap().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect();
    let mut s = Command::new("script");
    s.args(["--quiet", "--return", "--flush", "--command"])
        .arg(line.join(" "))
        .arg("/dev/null")
        .env("TERM", "xterm-256color")
        .env("SHELL", "/bin/sh")
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => s.env(k, v),
            None => s.env_remove(k),
        };
    }
    s.output()
        .expect("util-linux `script` (apt-get install bsdutils) makes the terminal")
}

#[test]
fn the_overall_bar_is_drawn_on_a_terminal_and_never_without_one() {
    let (src, dst, fixture) = two_repositories();
    let total = fixture.images.len();
    let t = tempfile::tempdir().unwrap();
    // The bar: "images DONE/TOTAL [=====>    ] SENT ELAPSED", redrawn in place.
    let bar = format!("/{total} [");

    let tty = on_a_terminal(hoist(&t.path().join("tty.jsonl")).args([
        &format!("{}/team", src.host()),
        &format!("{}/tty", dst.host()),
    ]));
    let screen = text(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(
        screen.contains(&bar),
        "no overall bar on the terminal: {screen:?}"
    );
    assert!(screen.contains("images "), "{screen:?}");
    assert!(screen.contains("\x1b["), "no cursor control: {screen:?}");
    // Each image's line is printed above the bar.
    assert_eq!(screen.matches("copied ").count(), total, "{screen:?}");

    // Not a terminal: the same lines, no bar, no escape sequence.
    let plain = hoist(&t.path().join("plain.jsonl"))
        .args([
            &format!("{}/team", src.host()),
            &format!("{}/plain", dst.host()),
        ])
        .env("TERM", "xterm-256color")
        .output()
        .unwrap();
    let err = text(&plain.stderr);
    assert!(plain.status.success(), "{err}");
    assert_eq!(err.matches("copied ").count(), total, "{err}");
    assert!(!err.contains(&bar), "a bar without a terminal: {err:?}");
    assert!(
        !err.contains('\x1b'),
        "an escape sequence without a terminal: {err:?}"
    );
    assert!(!text(&plain.stdout).contains('\x1b'));
}

/// The bar's length is what is listed so far, not what is done: drawn while images are
/// held, it shows fewer done than listed ("0/3 [", never "0/0 [").
#[test]
fn the_bar_counts_the_images_listed_before_they_are_done() {
    let (src, dst, fixture) = two_repositories();
    // Every manifest written waits 600 ms: the bar (redrawn every 200 ms) is drawn
    // while no image is done.
    let dst_proxy = Proxy::start(
        dst.addr(),
        vec![Rule::new(
            Match::method("PUT").path("/manifests/"),
            Fault::Stall(Duration::from_millis(600)),
            u64::MAX,
        )],
    );
    let t = tempfile::tempdir().unwrap();
    let tty = on_a_terminal(hoist(&t.path().join("s.jsonl")).args([
        &format!("{}/team", src.host()),
        &format!("{}/team", dst_proxy.addr()),
    ]));
    let screen = text(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    let counts: Vec<(usize, usize)> = screen
        .split("images ")
        .skip(1)
        .filter_map(|s| {
            let (done, rest) = s.split_once('/')?;
            let (total, _) = rest.split_once(" [")?;
            Some((done.parse().ok()?, total.parse().ok()?))
        })
        .collect();
    assert!(
        counts.iter().any(|&(done, total)| done < total),
        "never fewer done than listed: {counts:?}"
    );
    assert!(
        counts
            .iter()
            .all(|&(done, total)| done <= total && total <= fixture.images.len()),
        "{counts:?}"
    );
}
