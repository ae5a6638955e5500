//! Garbage collection of `hoist serve`'s storage, offline (`hoist registry gc`) and online
//! (`hoist serve --gc-interval`), on both backends: a directory, and a bucket of a real
//! object store (SeaweedFS) served by two nodes behind haproxy. Images pushed with hoist
//! and skopeo, one deleted, garbage collected; every surviving image then validated by
//! hoist and pulled by skopeo and crane (when on PATH), the deleted one's blobs gone. On
//! the object store, collections also race a push loop through two nodes.

mod serve_common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use hoist_image::Digest;
use hoist_registry::S3Config;
use hoist_testkit::haproxy::Haproxy;
use hoist_testkit::peers;
use hoist_testkit::seaweedfs::{self, SeaweedFs};
use object_store::{ObjectStore as _, ObjectStoreExt as _};
use serve_common::{Server, bucket_client, s3_node, s3_url};

/// The secret the nodes over one bucket share.
const SECRET: &str = "the secret of the gc test nodes";

/// Where a test's registry keeps its data.
enum Backend {
    Fs(PathBuf),
    S3(S3Config),
}

/// A registry serving a [`Backend`]: one node on a directory; two nodes and a round-robin
/// balancer on a bucket.
struct Serving {
    nodes: Vec<Server>,
    lb: Option<Haproxy>,
}

impl Serving {
    /// host:port clients use.
    fn host(&self) -> String {
        match &self.lb {
            Some(lb) => lb.addr().to_string(),
            None => self.nodes[0].addr(),
        }
    }
}

impl Backend {
    /// A directory under `t`.
    fn fs(t: &Path) -> Backend {
        Backend::Fs(t.join("root"))
    }

    /// A fresh place in the shared SeaweedFS; `None` when it (or haproxy) is missing and
    /// peers are not required.
    fn s3() -> Option<Backend> {
        let weed = SeaweedFs::shared()?;
        peers::require("haproxy")?;
        Some(Backend::S3(weed.store()))
    }

    /// Serve it with `extra` flags, logs in `t`.
    fn serve(&self, t: &Path, extra: &[&str]) -> Serving {
        match self {
            Backend::Fs(root) => Serving {
                nodes: vec![Server::start(root, extra)],
                lb: None,
            },
            Backend::S3(bucket) => {
                let nodes: Vec<Server> = (0..2)
                    .map(|i| s3_node(bucket, SECRET, t, i, extra))
                    .collect();
                let addrs: Vec<SocketAddr> =
                    nodes.iter().map(|n| n.addr().parse().unwrap()).collect();
                let lb = Haproxy::start(&addrs).expect("haproxy");
                Serving {
                    nodes,
                    lb: Some(lb),
                }
            }
        }
    }

    /// The arguments naming it to `hoist registry gc`.
    fn gc_args(&self) -> Vec<String> {
        match self {
            Backend::Fs(root) => vec!["--root".into(), root.display().to_string()],
            Backend::S3(bucket) => vec![
                "--storage".into(),
                s3_url(bucket),
                "--s3-endpoint".into(),
                bucket.endpoint.clone().expect("endpoint"),
            ],
        }
    }

    /// `hoist registry gc` on it with `args`.
    fn gc(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = vec!["registry".into(), "gc".into()];
        all.extend(self.gc_args());
        all.extend(args.iter().map(|a| a.to_string()));
        hoist(&all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The blobs stored (manifests included): files, or live pointer objects.
    fn blobs(&self) -> Vec<String> {
        match self {
            Backend::Fs(root) => files(&root.join("blobs"))
                .into_iter()
                .map(|p| p.display().to_string())
                .collect(),
            Backend::S3(bucket) => block_on(async {
                let store = bucket_client(bucket);
                let prefix =
                    object_store::path::Path::from(format!("{}/registry/blobs", bucket.prefix));
                let mut out: Vec<String> = store
                    .list(Some(&prefix))
                    .filter_map(|m| async move {
                        let m = m.unwrap();
                        (m.size > 0).then(|| m.location.to_string())
                    })
                    .collect()
                    .await;
                out.sort();
                out
            }),
        }
    }

    /// Make everything stored look touched two hours ago (past any grace period).
    fn age(&self) {
        let old = SystemTime::now() - Duration::from_secs(7200);
        match self {
            Backend::Fs(root) => {
                for f in files(&root.join("blobs")) {
                    std::fs::File::open(&f).unwrap().set_modified(old).unwrap();
                }
            }
            Backend::S3(bucket) => block_on(async {
                let store = bucket_client(bucket);
                let ms = old
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                let prefix = object_store::path::Path::from(format!("{}/registry", bucket.prefix));
                let keys: Vec<_> = store
                    .list(Some(&prefix))
                    .map(|m| m.unwrap().location)
                    .collect()
                    .await;
                for k in keys {
                    let s = k.as_ref();
                    if !(s.contains("/registry/blobs/") || s.contains("/_manifests/revisions/")) {
                        continue;
                    }
                    let raw = store.get(&k).await.unwrap().bytes().await.unwrap();
                    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
                        continue;
                    };
                    v["touched"] = ms.into();
                    store
                        .put(&k, serde_json::to_vec(&v).unwrap().into())
                        .await
                        .unwrap();
                }
            }),
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn hoist(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hoist"))
        .args(args)
        .env(
            "HOIST_CACHE_DIR",
            std::env::temp_dir().join("hoist-registry-gc-cache"),
        )
        .env_remove("HOIST_ROOT")
        .env_remove("HOIST_CONFIG")
        .env_remove("HOIST_STORAGE")
        .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
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
/// index `tools:multi` with hoist, `sk:v1` with skopeo (when present), then delete v2's
/// manifest. Returns v2's manifest digest, its layer digests, and the tags that stay.
fn populate(t: &Path, host: &str) -> (String, Vec<String>, Vec<String>) {
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
    let mut survivors = vec!["app:v1".to_string(), "tools:multi".to_string()];
    if let Some(skopeo) = peers::require("skopeo") {
        let archive = t.join("skopeo.tar");
        ok(&hoist(&[
            "random",
            &format!("docker-archive:{}:sk:v1", archive.display()),
            "--layers",
            "2",
            "--size",
            "30k",
            "--seed",
            "5",
        ]));
        ok(&Command::new(&skopeo)
            .env("XDG_DATA_HOME", t.join("xdg"))
            .env("HOME", t)
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("docker://{host}/sk:v1"))
            .output()
            .unwrap());
        survivors.push("sk:v1".to_string());
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
    (digest, layers, survivors)
}

/// Everything tagged validates (hoist re-hashes every blob), and skopeo and crane pull it.
fn survivors_pull_whole(t: &Path, host: &str, survivors: &[String]) {
    for r in survivors {
        ok(&hoist(&["validate", &format!("docker://{host}/{r}")]));
    }
    if let Some(skopeo) = peers::require("skopeo") {
        for r in survivors {
            let dst = t.join(format!("skopeo-{}", r.replace(':', "-")));
            let _ = std::fs::remove_dir_all(&dst);
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
        for r in survivors {
            let dst = t.join(format!("crane-{}", r.replace(':', "-")));
            let _ = std::fs::remove_dir_all(&dst);
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
fn offline_gc_dry_run_then_collect_keeps_every_tagged_image_fs() {
    let t = tempfile::tempdir().unwrap();
    offline_gc_dry_run_then_collect_keeps_every_tagged_image(t.path(), Backend::fs(t.path()));
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
fn offline_gc_dry_run_then_collect_keeps_every_tagged_image_s3() {
    let Some(backend) = Backend::s3() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    offline_gc_dry_run_then_collect_keeps_every_tagged_image(t.path(), backend);
}

fn offline_gc_dry_run_then_collect_keeps_every_tagged_image(t: &Path, backend: Backend) {
    let (v2, v2_layers, survivors) = {
        let serving = backend.serve(t, &[]);
        populate(t, &serving.host())
    };
    let before = backend.blobs();
    let dry = ok(&backend.gc(&["--dry-run"]));
    assert_eq!(backend.blobs(), before, "a dry run removes nothing");
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
    let graced = ok(&backend.gc(&["--grace", "1h"]));
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
    assert_eq!(backend.blobs(), before);
    // A zero grace is no grace: the error names the value.
    let zero = backend.gc(&["--grace", "0s"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&zero.stderr).contains("\"0s\": must be more than 0"),
        "{}",
        String::from_utf8_lossy(&zero.stderr)
    );

    let out = ok(&backend.gc(&[]));
    assert!(
        out.lines().last().unwrap().starts_with("removed 4 blobs ("),
        "{out}"
    );
    assert_eq!(backend.blobs().len(), before.len() - 4);
    let again = ok(&backend.gc(&[]));
    assert!(
        again.lines().last().unwrap().starts_with("removed 0 blobs"),
        "{again}"
    );

    let serving = backend.serve(t, &[]);
    let host = serving.host();
    // Each node counts what is stored when it starts: the survivors' blobs.
    let want = format!("hoist_storage_blobs {}", before.len() - 4);
    for n in &serving.nodes {
        let url = format!("{}/metrics", n.url());
        let mut text = String::new();
        for _ in 0..100 {
            text = block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() });
            if text.lines().any(|l| l.starts_with("hoist_storage_blobs ")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(text.lines().any(|l| l == want), "{want}: {text}");
    }
    survivors_pull_whole(t, &host, &survivors);
    assert!(
        !hoist(&["blob", &format!("{host}/app@{}", v2_layers[0])])
            .status
            .success()
    );
    // What was collected can be pushed again.
    let layout = format!("oci:{}:v2", t.join("layout-v2").display());
    ok(&hoist(&[
        "push",
        "--quiet",
        &layout,
        &format!("{host}/app:v2"),
    ]));
    ok(&hoist(&["validate", &format!("docker://{host}/app:v2")]));

    // A tag moved to another image leaves the first one untagged: kept, unless
    // --delete-untagged.
    let mut first = String::new();
    for seed in ["6", "7"] {
        let layout = format!("oci:{}:m", t.join(format!("layout-m{seed}")).display());
        ok(&hoist(&[
            "random", &layout, "--layers", "2", "--size", "20k", "--seed", seed,
        ]));
        let moving = format!("{host}/app:moving");
        ok(&hoist(&["push", "--quiet", &layout, &moving]));
        if first.is_empty() {
            first = ok(&hoist(&["digest", &moving])).trim().to_string();
        }
    }
    let untagged = format!("manifest app@{first}");
    let dry = ok(&backend.gc(&["--delete-untagged", "--dry-run"]));
    assert!(dry.contains(&format!("would remove {untagged}")), "{dry}");
    let kept = ok(&backend.gc(&[]));
    assert!(
        kept.lines().last().unwrap().starts_with("removed 0 blobs"),
        "{kept}"
    );
    let out = ok(&backend.gc(&["--delete-untagged"]));
    assert!(out.contains(&format!("removed {untagged}")), "{out}");
    assert!(out.contains(&format!("removed blob {first}")), "{out}");
    assert!(
        !hoist(&["manifest", &format!("{host}/app@{first}")])
            .status
            .success()
    );
    for r in ["app:moving", "app:v1", "app:v2", "tools:multi"] {
        ok(&hoist(&["validate", &format!("docker://{host}/{r}")]));
    }
}

#[test]
fn online_gc_collects_old_garbage_while_serving_fs() {
    let t = tempfile::tempdir().unwrap();
    online_gc_collects_old_garbage_while_serving(t.path(), Backend::fs(t.path()));
}

/// Two nodes collect the same bucket at once, each every second.
#[test]
fn online_gc_collects_old_garbage_while_serving_s3() {
    let Some(backend) = Backend::s3() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    online_gc_collects_old_garbage_while_serving(t.path(), backend);
}

fn online_gc_collects_old_garbage_while_serving(t: &Path, backend: Backend) {
    let (_, v2_layers, survivors) = {
        let serving = backend.serve(t, &[]);
        populate(t, &serving.host())
    };
    // The garbage is two hours old: past the grace period.
    backend.age();
    let serving = backend.serve(t, &["--gc-interval", "1s", "--gc-grace", "1h"]);
    let host = serving.host();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counter = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    // Every node has collected at least once, and together they freed v2's blobs.
    let mut texts = Vec::new();
    for _ in 0..200 {
        texts = serving
            .nodes
            .iter()
            .map(|n| {
                let url = format!("{}/metrics", n.url());
                rt.block_on(async { reqwest::get(&url).await.unwrap().text().await.unwrap() })
            })
            .collect();
        let ran = texts
            .iter()
            .all(|t| counter(t, "hoist_gc_runs_total{result=\"ok\"}") > 0);
        let freed: u64 = texts
            .iter()
            .map(|t| counter(t, "hoist_gc_freed_bytes_total"))
            .sum();
        if ran && freed > 40_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let freed: u64 = texts
        .iter()
        .map(|t| counter(t, "hoist_gc_freed_bytes_total"))
        .sum();
    assert!(freed > 40_000, "{texts:?}");
    assert!(
        texts.iter().all(|t| t.contains("hoist_storage_blobs ")),
        "{texts:?}"
    );
    assert!(
        !hoist(&["blob", &format!("{host}/app@{}", v2_layers[0])])
            .status
            .success()
    );
    survivors_pull_whole(t, &host, &survivors);
    // A push while collections run: its fresh blobs stay.
    let layout = format!("oci:{}:v3", t.join("layout-v3").display());
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

/// Collections over and over on a bucket, with a short grace period (the library's
/// collector, as `hoist serve --gc-interval` runs it, but with a grace below what the
/// command accepts), while a loop pushes images through two nodes: each blob to one node,
/// the manifest to the other. Some pushes pause longer than the grace period between their
/// blobs and their manifest, so their blobs are collected under them: their manifest PUT
/// is refused (then the loop uploads again). At the end every tag pushed validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_racing_pushes_through_two_nodes_never_break_a_manifest_s3() {
    const PUSHES: usize = 12;
    const GRACE: Duration = Duration::from_secs(2);
    let Some(Backend::S3(bucket)) = Backend::s3() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    // The nodes collect too, every second (with the shortest grace they accept).
    let nodes: Vec<Server> = (0..2)
        .map(|i| s3_node(&bucket, SECRET, t.path(), i, &["--gc-interval", "1s"]))
        .collect();
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let collector = hoist_registry::ObjectStorage::s3(&S3Config {
        prefix: format!("{}/registry", bucket.prefix),
        ..bucket.clone()
    })
    .unwrap();
    let pusher = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut refused = 0;
        for i in 0..PUSHES {
            let own = serve_common::data(i as u8, 20_000 + i);
            let base = b"base layer shared by all".to_vec();
            // Layers stored uncompressed: their diff ids are their digests.
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": "amd64", "os": "linux", "config": {"Env": [format!("I={i}")]},
                "rootfs": {"type": "layers", "diff_ids": [
                    Digest::sha256(&base).to_string(), Digest::sha256(&own).to_string()]},
            }))
            .unwrap();
            let mut stale = i % 4 == 1;
            loop {
                for (n, b) in [&config, &own, &base].into_iter().enumerate() {
                    let d = Digest::sha256(b);
                    let url = &urls[(i + n) % 2];
                    let r = http
                        .post(format!("{url}/v2/race/blobs/uploads/?digest={d}"))
                        .body(b.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
                }
                if stale {
                    // Past the grace period: the collector takes this image's own blobs.
                    tokio::time::sleep(GRACE + Duration::from_millis(1500)).await;
                    stale = false;
                }
                let raw = serve_common::image_manifest(
                    &Digest::sha256(&config),
                    config.len(),
                    &[
                        (Digest::sha256(&base), base.len()),
                        (Digest::sha256(&own), own.len()),
                    ],
                    &i.to_string(),
                );
                let r = http
                    .put(format!("{}/v2/race/manifests/t{i}", urls[(i + 1) % 2]))
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(raw)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let text = r.text().await.unwrap();
                if status == 201 {
                    break;
                }
                assert!(text.contains("MANIFEST_BLOB_UNKNOWN"), "{status} {text}");
                refused += 1;
            }
        }
        refused
    });
    let opts = hoist_registry::GcOptions {
        grace: GRACE,
        ..hoist_registry::GcOptions::default()
    };
    let (mut runs, mut removed) = (0, 0);
    while !pusher.is_finished() && runs < 10_000 {
        let r = hoist_registry::collect(&collector, &opts).await.unwrap();
        removed += r.removed_blobs.len();
        runs += 1;
    }
    let refused = pusher.await.unwrap();
    eprintln!(
        "{runs} collections, {removed} blobs removed mid-push, {refused} manifest PUTs refused and retried"
    );
    let host = nodes[0].addr();
    let validated = tokio::task::spawn_blocking(move || {
        for i in 0..PUSHES {
            ok(&hoist(&["validate", &format!("docker://{host}/race:t{i}")]));
        }
    });
    validated.await.unwrap();
    assert!(
        refused >= 1,
        "the paused pushes lost their blobs to the collector"
    );
    assert!(removed >= 2);
}
