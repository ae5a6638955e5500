//! Several `hoist serve` nodes over one bucket of a real object store (SeaweedFS) are one
//! registry: through a round-robin haproxy, hoist, skopeo and crane push and pull; a
//! chunked upload moves between nodes; concurrent pushes of one blob and one tag through
//! different nodes agree; a node killed (-9) in the middle of an upload loses nothing that
//! was recorded, and the upload finishes through another node.

mod serve_common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hoist_image::Digest;
use hoist_registry::S3Config;
use hoist_testkit::api::{get_blob, half_request, upload_offset};
use hoist_testkit::haproxy::Haproxy;
use hoist_testkit::peers;
use hoist_testkit::seaweedfs::SeaweedFs;
use reqwest::StatusCode;
use serve_common::{Server, bucket_client, data, image_manifest};

const MIB: usize = 1 << 20;
/// The secret every node of a test signs upload locations with.
const SECRET: &str = "a secret the nodes of one test share";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn hoist(tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
    c.env("HOIST_CACHE_DIR", tmp.join("cache"))
        .env("HOME", tmp)
        .arg("--quiet");
    c
}

/// `hoist serve` on `bucket`, credentials from the standard AWS variables.
fn node(bucket: &S3Config, logs: &Path, n: usize) -> Server {
    node_with(bucket, logs, n, &[])
}

/// [`node`] with more flags.
fn node_with(bucket: &S3Config, logs: &Path, n: usize, extra: &[&str]) -> Server {
    serve_common::s3_node(bucket, SECRET, logs, n, extra)
}

struct Cluster {
    nodes: Vec<Server>,
    lb: Option<Haproxy>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// `n` nodes on a fresh bucket, with a balancer when `balanced`. `None` when a peer is
    /// missing and peers are not required.
    fn start(n: usize, balanced: bool) -> Option<Cluster> {
        let weed = SeaweedFs::shared()?;
        let bucket = weed.store();
        let tmp = tempfile::tempdir().unwrap();
        let nodes: Vec<Server> = (0..n).map(|i| node(&bucket, tmp.path(), i)).collect();
        let lb = if balanced {
            let addrs: Vec<SocketAddr> = nodes.iter().map(|s| s.addr().parse().unwrap()).collect();
            Some(Haproxy::start(&addrs)?)
        } else {
            None
        };
        Some(Cluster {
            nodes,
            lb,
            _tmp: tmp,
        })
    }

    fn lb(&self) -> &Haproxy {
        self.lb.as_ref().expect("balanced")
    }
}

fn client() -> reqwest::Client {
    hoist_testkit::registry::client_builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_skopeo_and_crane_push_and_pull_through_a_balancer() {
    let Some(cluster) = Cluster::start(3, true) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let lb = cluster.lb().addr();
    // hoist: a random image with a layer larger than a multipart part, pushed and validated.
    let layout = format!("oci:{}:v1", t.path().join("src").display());
    run(hoist(t.path()).args([
        "random", &layout, "--layers", "3", "--size", "9M", "--seed", "1",
    ]));
    let hoist_ref = format!("{lb}/s3/hoist:v1");
    run(hoist(t.path()).args(["copy", &layout, &hoist_ref]));
    run(hoist(t.path()).args(["validate", &hoist_ref]));
    // Pulled back through the balancer (every request to the next node) into a layout.
    let back = format!("oci:{}:v1", t.path().join("back").display());
    run(hoist(t.path()).args(["copy", &hoist_ref, &back]));
    run(hoist(t.path()).args(["validate", &back]));

    if let Some(skopeo) = peers::require("skopeo") {
        let archive = t.path().join("img.tar");
        run(hoist(t.path()).args([
            "random",
            &format!("docker-archive:{}:s3/skopeo:v1", archive.display()),
            "--layers",
            "2",
            "--size",
            "6M",
            "--seed",
            "2",
        ]));
        let dest = format!("docker://{lb}/s3/skopeo:v1");
        let sk = |args: &[&str]| {
            let mut c = Command::new(&skopeo);
            c.env("XDG_DATA_HOME", t.path().join("xdg"))
                .env("HOME", t.path())
                .args(args);
            run(&mut c)
        };
        sk(&[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("docker-archive:{}", archive.display()),
            &dest,
        ]);
        let out = t.path().join("skopeo-out");
        sk(&[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &dest,
            &format!("oci:{}:v1", out.display()),
        ]);
        run(hoist(t.path()).args(["validate", &format!("oci:{}:v1", out.display())]));
        run(hoist(t.path()).args(["validate", &format!("{lb}/s3/skopeo:v1")]));
    }

    // crane cannot be installed on a fresh machine: used when present, skipped otherwise.
    if let Some(crane) = peers::which("crane").or_else(|| peers::which("/usr/local/bin/crane")) {
        let cr = |args: &[&str]| {
            let mut c = Command::new(&crane);
            c.env("HOME", t.path()).args(args);
            run(&mut c)
        };
        // crane copies hoist's image to another repository (mounts or re-uploads), pushes a
        // tarball of its own, and pulls both back.
        let crane_ref = format!("{lb}/s3/crane:v1");
        cr(&["copy", "--insecure", &hoist_ref, &crane_ref]);
        let tarball = t.path().join("crane.tar");
        run(hoist(t.path()).args([
            "random",
            &format!("docker-archive:{}:s3/crane:v2", tarball.display()),
            "--size",
            "7M",
            "--seed",
            "3",
        ]));
        let pushed = format!("{lb}/s3/crane:v2");
        cr(&["push", "--insecure", tarball.to_str().unwrap(), &pushed]);
        for (r, name) in [(&crane_ref, "a.tar"), (&pushed, "b.tar")] {
            let out = t.path().join(name);
            cr(&["pull", "--insecure", r, out.to_str().unwrap()]);
            run(hoist(t.path()).args(["validate", &format!("docker-archive:{}", out.display())]));
        }
    } else {
        eprintln!("skipping the crane part: crane is not on PATH (it cannot be installed here)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_moves_between_nodes() {
    let Some(cluster) = Cluster::start(2, false) else {
        return;
    };
    let c = client();
    let (a, b) = (cluster.nodes[0].url(), cluster.nodes[1].url());
    let blob = data(5, 13 * MIB + 12345);
    let digest = Digest::sha256(&blob);
    // POST on a, which advertises the smallest chunk it stores without rewriting.
    let r = c
        .post(format!("{a}/v2/moves/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.headers()["oci-chunk-min-length"],
        (5 * MIB).to_string().as_str()
    );
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    // Chunks alternate between the nodes: a large one (a multipart segment), small ones
    // (merged into the next segment), one more large, and the last with the commit.
    let cuts = [0, 6 * MIB, 6 * MIB + 1000, 7 * MIB, 12 * MIB, blob.len()];
    for (i, w) in cuts.windows(2).enumerate().take(cuts.len() - 2) {
        let node = if i % 2 == 0 { &b } else { &a };
        let r = c
            .patch(format!("{node}{loc}"))
            .header("content-range", format!("{}-{}", w[0], w[1] - 1))
            .body(blob[w[0]..w[1]].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "chunk {i} on {node}");
        assert_eq!(r.headers()["range"], format!("0-{}", w[1] - 1).as_str());
        // The other node sees the bytes recorded.
        let other = if node == &a { &b } else { &a };
        assert_eq!(
            upload_offset(&c, &format!("{other}{loc}")).await,
            w[1] as u64
        );
    }
    // A chunk that does not start where the session ends: 416 with the session's Range.
    let r = c
        .patch(format!("{a}{loc}"))
        .header("content-range", format!("0-{}", MIB - 1))
        .body(blob[..MIB].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["range"], format!("0-{}", 12 * MIB - 1).as_str());
    // The last chunk with the commit, on b; read back from a, whole and in a range that
    // spans segments.
    let r = c
        .put(format!("{b}{loc}?digest={digest}"))
        .header("content-range", format!("{}-{}", 12 * MIB, blob.len() - 1))
        .body(blob[12 * MIB..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = get_blob(&c, &a, "moves/app", &digest).await;
    assert!(
        got.as_ref() == blob.as_slice(),
        "the blob read back differs"
    );
    let r = c
        .get(format!("{a}/v2/moves/app/blobs/{digest}"))
        .header(
            "range",
            format!("bytes={}-{}", 6 * MIB - 10, 6 * MIB + 2000),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert!(r.bytes().await.unwrap().as_ref() == &blob[6 * MIB - 10..=6 * MIB + 2000]);
    // The session is gone on both nodes.
    for n in [&a, &b] {
        let r = c.get(format!("{n}{loc}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_two_nodes_agree() {
    let Some(cluster) = Cluster::start(2, false) else {
        return;
    };
    let c = client();
    let (a, b) = (cluster.nodes[0].url(), cluster.nodes[1].url());
    let repo = "race/app";

    // Two PATCHes of one session at once, one per node: one wins, the other is refused
    // (409, or 416 when it started after the winner recorded its bytes), and the session
    // holds exactly the winner's bytes.
    for round in 0..3u8 {
        let r = c
            .post(format!("{a}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let (x, y) = (data(10 + round, 7 * MIB), data(20 + round, 7 * MIB));
        let patch = |node: String, body: Vec<u8>| {
            let c = c.clone();
            let loc = loc.clone();
            async move {
                c.patch(format!("{node}{loc}"))
                    .header("content-range", format!("0-{}", body.len() - 1))
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let (sa, sb) = tokio::join!(patch(a.clone(), x.clone()), patch(b.clone(), y.clone()));
        let wins = [sa, sb]
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count();
        assert_eq!(wins, 1, "round {round}: {sa} and {sb}");
        let loser = if sa == StatusCode::ACCEPTED { sb } else { sa };
        assert!(
            loser == StatusCode::CONFLICT || loser == StatusCode::RANGE_NOT_SATISFIABLE,
            "round {round}: the loser got {loser}"
        );
        let winner = if sa == StatusCode::ACCEPTED { &x } else { &y };
        let d = Digest::sha256(winner);
        let r = c.put(format!("{b}{loc}?digest={d}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "round {round}");
        assert!(get_blob(&c, &a, repo, &d).await.as_ref() == winner.as_slice());
    }

    // The same blob pushed through both nodes at once, several times: every push succeeds
    // and the blob reads back whole from either node.
    let blob = data(30, 9 * MIB);
    let d = Digest::sha256(&blob);
    let push = |node: String, repo: &'static str| {
        let c = c.clone();
        let blob = blob.clone();
        async move { hoist_testkit::api::push_blob(&c, &node, repo, &blob).await }
    };
    for _ in 0..3 {
        let (da, db) = tokio::join!(push(a.clone(), "race/one"), push(b.clone(), "race/two"));
        assert_eq!((&da, &db), (&d, &d));
    }
    for (n, r) in [(&a, "race/two"), (&b, "race/one")] {
        assert!(get_blob(&c, n, r, &d).await.as_ref() == blob.as_slice());
    }

    // One tag pushed through both nodes at once, to different manifests: both PUTs succeed
    // and the tag ends on one of them, the same seen from either node.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let cd = hoist_testkit::api::push_blob(&c, &a, repo, &config).await;
    let ld = hoist_testkit::api::push_blob(&c, &a, repo, &blob[..MIB]).await;
    for round in 0..4 {
        let manifests: Vec<Vec<u8>> = ["left", "right"]
            .iter()
            .map(|s| {
                image_manifest(
                    &cd,
                    config.len(),
                    &[(ld.clone(), MIB)],
                    &format!("{s}{round}"),
                )
            })
            .collect();
        let put = |node: String, m: Vec<u8>| {
            let c = c.clone();
            async move {
                c.put(format!("{node}/v2/{repo}/manifests/latest"))
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(m)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let (sa, sb) = tokio::join!(
            put(a.clone(), manifests[0].clone()),
            put(b.clone(), manifests[1].clone())
        );
        assert_eq!((sa, sb), (StatusCode::CREATED, StatusCode::CREATED));
        let mut seen = Vec::new();
        for n in [&a, &b] {
            let r = c
                .get(format!("{n}/v2/{repo}/manifests/latest"))
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await
                .unwrap();
            seen.push(r.bytes().await.unwrap().to_vec());
        }
        assert_eq!(seen[0], seen[1], "the nodes disagree on the tag");
        assert!(
            manifests.contains(&seen[0]),
            "the tag holds neither manifest"
        );
    }
    let r = c
        .get(format!("{b}/v2/{repo}/tags/list"))
        .send()
        .await
        .unwrap();
    let tags: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["latest"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_a_node_mid_upload_and_finish_through_another() {
    let Some(mut cluster) = Cluster::start(3, true) else {
        return;
    };
    let c = client();
    let (a, b) = (cluster.nodes[0].url(), cluster.nodes[1].url());
    let a_addr = cluster.nodes[0].addr();

    // By hand: chunk 1 recorded through a, chunk 2 half sent to a when a dies.
    let big = data(40, 12 * MIB);
    let big_digest = Digest::sha256(&big);
    let r = c
        .post(format!("{a}/v2/crash/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = c
        .patch(format!("{a}{loc}"))
        .header("content-range", format!("0-{}", 6 * MIB - 1))
        .body(big[..6 * MIB].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let _half = half_request(
        a_addr.as_str(),
        &format!(
            "PATCH {loc} HTTP/1.1\r\nHost: {a_addr}\r\nContent-Type: application/octet-stream\r\nContent-Range: {}-{}\r\nContent-Length: {}\r\n\r\n",
            6 * MIB,
            12 * MIB - 1,
            6 * MIB
        ),
        &big[6 * MIB..9 * MIB],
    );
    // The client pauses: a records what arrived; b sees it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while upload_offset(&c, &format!("{b}{loc}")).await < 9 * MIB as u64 {
        assert!(
            Instant::now() < deadline,
            "the paused chunk was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.nodes[0].kill9();
    // Resumed and committed through b, read back through the balancer.
    let have = upload_offset(&c, &format!("{b}{loc}")).await as usize;
    assert_eq!(have, 9 * MIB);
    let r = c
        .put(format!("{b}{loc}?digest={big_digest}"))
        .header("content-range", format!("{have}-{}", big.len() - 1))
        .body(big[have..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let lb = cluster.lb().url();
    assert!(get_blob(&c, &lb, "crash/app", &big_digest).await.as_ref() == big.as_slice());

    // A push by hoist through the balancer while a node dies in the middle of it: the
    // client resumes through the node left, and the image is whole.
    let t = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:v1", t.path().join("src").display());
    run(hoist(t.path()).args(["random", &layout, "--size", "160M", "--seed", "9"]));
    let dest = format!("{}/crash/pushed:v1", cluster.lb().addr());
    let mut push = hoist(t.path())
        .args(["copy", &layout, &dest])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill whichever live node is receiving the layer's body.
    let live = [1usize, 2];
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = 'found: loop {
        for &i in &live {
            let m = c
                .get(format!("{}/metrics", cluster.nodes[i].url()))
                .send()
                .await;
            if let Ok(m) = m
                && m.text()
                    .await
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.starts_with("hoist_uploads_in_progress") && !l.ends_with(" 0"))
            {
                break 'found i;
            }
        }
        assert!(
            push.try_wait().unwrap().is_none(),
            "the push ended before a node could be killed under it"
        );
        assert!(Instant::now() < deadline, "no node received the upload");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    cluster.nodes[victim].kill9();
    let out = push.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the push did not survive node {victim}'s death: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(hoist(t.path()).args(["validate", &dest]));
}

#[test]
fn s3_storage_needs_a_secret_and_masks_credentials() {
    let t = tempfile::tempdir().unwrap();
    let serve = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hoist"));
        c.arg("serve").args(args).current_dir(t.path());
        for k in [
            "HOIST_SECRET",
            "HOIST_STORAGE",
            "HOIST_ROOT",
            "HOIST_CONFIG",
        ] {
            c.env_remove(k);
        }
        c.output().unwrap()
    };
    let out = serve(&["--storage", "s3://bucket", "--addr", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--secret") && err.contains("HOIST_SECRET"),
        "{err}"
    );
    // Contradictions and bad values are refused by name.
    for (args, want) in [
        (
            &["--storage", "s3://bucket", "--root", "/srv"][..],
            "two places",
        ),
        (
            &["--storage", "gs://bucket"][..],
            "expected fs:DIR or s3://",
        ),
        (&["--storage", "s3://B"][..], "bucket name"),
        (&["--secret", "short", "--print-config"][..], "at least 16"),
    ] {
        let out = serve(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // --print-config shows the storage and masks the secrets.
    let file = t.path().join("hoist.toml");
    std::fs::write(
        &file,
        "storage = \"s3://bucket/reg\"\ns3-endpoint = \"http://127.0.0.1:8333\"\ns3-access-key-id = \"AKIDEXAMPLE\"\ns3-secret-access-key = \"wJalrXUtnFEMI\"\nsecret = \"0123456789abcdef0123\"\n",
    )
    .unwrap();
    let out = serve(&["--config", file.to_str().unwrap(), "--print-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let c: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(c["storage"].as_str(), Some("s3://bucket/reg"));
    assert_eq!(c["s3-endpoint"].as_str(), Some("http://127.0.0.1:8333"));
    assert_eq!(c["s3-secret-access-key"].as_str(), Some("***"));
    assert_eq!(c["secret"].as_str(), Some("***"));
    assert!(
        !text.contains("wJalr") && !text.contains("0123456789abcdef0123"),
        "{text}"
    );
    // fs:DIR is --root.
    let out = serve(&["--storage", "fs:/srv/hoist", "--print-config"]);
    let c: toml::Table = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(c["root"].as_str(), Some("/srv/hoist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_aborts_the_multipart_upload_a_killed_node_left() {
    use object_store::multipart::MultipartStore as _;
    use object_store::{ObjectStore as _, ObjectStoreExt as _};
    use std::io::Write as _;

    let Some(weed) = SeaweedFs::shared() else {
        return;
    };
    let bucket = weed.store();
    let store = bucket_client(&bucket);
    let tmp = tempfile::tempdir().unwrap();
    let mut a = node(&bucket, tmp.path(), 0);
    let c = client();
    let r = c
        .post(format!("{}/v2/expire/app/blobs/uploads/", a.url()))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let id = loc
        .rsplit('/')
        .next()
        .and_then(|t| t.split(['.', '?']).next())
        .unwrap()
        .to_string();
    // A PATCH sends more than a multipart part, then trickles a byte at a time, never
    // pausing long enough for the node to complete what it has: the node holds an open
    // multipart upload, recorded in the session's state.
    let blob = data(50, 20 * MIB);
    let addr = a.addr();
    let mut sock = half_request(
        addr.as_str(),
        &format!(
            "PATCH {loc} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Range: 0-{}\r\nContent-Length: {}\r\n\r\n",
            blob.len() - 1,
            blob.len()
        ),
        &blob[..9 * MIB],
    );
    let state_key =
        object_store::path::Path::from(format!("{}/registry/uploads/{id}", bucket.prefix));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 9 * MIB;
    let pending = loop {
        let state: serde_json::Value = match store.get(&state_key).await {
            Ok(r) => serde_json::from_slice(&r.bytes().await.unwrap()).unwrap(),
            Err(e) => panic!("the session's state {state_key}: {e}"),
        };
        if let Some(p) = state["pending"].as_array().and_then(|p| p.first()) {
            break (
                p["key"].as_str().unwrap().to_string(),
                p["upload"].as_str().unwrap().to_string(),
            );
        }
        assert!(
            Instant::now() < deadline,
            "no multipart upload recorded: {state}"
        );
        sock.write_all(&blob[sent..sent + 1]).unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    a.kill9();
    drop(sock);
    let part_key =
        object_store::path::Path::from(format!("{}/registry/{}", bucket.prefix, pending.0));
    // Left alone, the upload is live in the store: a part can still be added to it.
    store
        .put_part(
            &part_key,
            &pending.1,
            1,
            bytes::Bytes::from_static(b"x").into(),
        )
        .await
        .expect("the killed node's multipart upload is live");
    // Another node expires sessions idle for a second, at start and every 250 ms: the
    // session goes, with its multipart upload and its data. The expiry removes the state
    // first, then the rest: each is waited for.
    let _b = node_with(&bucket, tmp.path(), 1, &["--upload-ttl", "1s"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.head(&state_key).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the expired session's state is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = loop {
        let part = bytes::Bytes::from_static(b"x").into();
        match store.put_part(&part_key, &pending.1, 2, part).await {
            Err(e) => break e,
            Ok(_) => assert!(
                Instant::now() < deadline,
                "the multipart upload was not aborted"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        matches!(e, object_store::Error::NotFound { .. }),
        "a part of the aborted upload: {e}"
    );
    let data = object_store::path::Path::from(format!("{}/registry/data/{id}", bucket.prefix));
    loop {
        let left: Vec<_> = {
            use futures_util::StreamExt as _;
            store.list(Some(&data)).collect().await
        };
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session's data is left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_object_store() {
    let Some(weed) = SeaweedFs::shared() else {
        return;
    };
    // The node reaches the store through a proxy of its own, stopped under it.
    let Some(proxy) = Haproxy::start(&[weed.addr()]) else {
        return;
    };
    let bucket = S3Config {
        endpoint: Some(proxy.url()),
        ..weed.store()
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut n = node(&bucket, tmp.path(), 0);
    let c = client();
    let get = |path: &'static str| {
        let (c, url) = (c.clone(), n.url());
        async move {
            let r = c.get(format!("{url}{path}")).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/readyz").await, (StatusCode::OK, "ready\n".into()));
    drop(proxy);
    let (status, body) = get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.starts_with("not ready: storage"), "{body}");
    // The process itself is fine.
    assert_eq!(get("/healthz").await.0, StatusCode::OK);
    assert!(n.is_running());
}

/// The S3 timeout of the slow-client tests (a request to the store that times out on a
/// loaded machine is retried).
const SHORT_S3_TIMEOUT: Duration = Duration::from_secs(1);
/// A pause of the slow clients: longer than [`SHORT_S3_TIMEOUT`].
const LONG_PAUSE: Duration = Duration::from_millis(1500);

/// The object storage of a node, in-process, with a short S3 timeout: what a node runs
/// with `--s3-timeout 1s`.
fn short_timeout_storage(weed: &SeaweedFs) -> hoist_registry::ObjectStorage {
    hoist_registry::ObjectStorage::s3(&S3Config {
        timeout: Some(SHORT_S3_TIMEOUT),
        ..weed.store()
    })
    .unwrap()
}

/// A blob read by a client slower than the S3 timeout (it pauses longer than the timeout,
/// in one segment more often than `object_store` retries a GET) arrives whole: the
/// reader's pauses are not the store's silence. Its bytes are read through the storage as
/// a node serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_slower_than_the_s3_timeout_gets_the_whole_blob() {
    use hoist_registry::{RepoName, Storage};
    let Some(weed) = SeaweedFs::shared() else {
        return;
    };
    let s = short_timeout_storage(weed);
    let repo = RepoName::parse("slow/reader").unwrap();
    // Two requests, two segments.
    let blob = data(41, 12 * MIB);
    let digest = Digest::sha256(&blob);
    let id = s.upload_start(&repo).await.unwrap();
    for (i, part) in blob.chunks(6 * MIB).enumerate() {
        let body = futures_util::stream::iter([Ok(bytes::Bytes::copy_from_slice(part))]);
        let at = s
            .upload_append(&repo, &id, Some((i * 6 * MIB) as u64), Box::pin(body))
            .await
            .unwrap();
        assert_eq!(at, ((i + 1) * 6 * MIB) as u64);
    }
    assert_eq!(
        s.upload_commit(&repo, &id, &digest).await.unwrap(),
        blob.len() as u64
    );
    // Pauses longer than the timeout: 11 in the first segment (object_store retries a
    // GET whose body broke 10 times), 2 in the second.
    let pause_before = |n: usize, at: usize| (at < 6 * MIB && n < 11) || (at >= 6 * MIB && n < 13);
    let mut body = s
        .blob_read(&repo, &digest, None)
        .await
        .unwrap()
        .unwrap()
        .body;
    let mut h = hoist_image::Algorithm::Sha256.hasher();
    let (mut got, mut pauses) = (0usize, 0usize);
    while let Some(b) = futures_util::StreamExt::next(&mut body).await {
        let b = b.unwrap_or_else(|e| panic!("the body broke after {got} bytes: {e}"));
        h.update(&b);
        got += b.len();
        if pause_before(pauses, got) {
            pauses += 1;
            tokio::time::sleep(LONG_PAUSE).await;
        }
    }
    assert_eq!(pauses, 13, "the reads paused as planned");
    assert_eq!(got, blob.len());
    assert_eq!(h.finish(), digest);
}

/// An upload body slower than the S3 timeout (its bytes spread over several timeouts,
/// with a pause longer than one in the middle) is stored whole: parts go to the store only
/// when buffered whole, so no request to the store waits for the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_s3_timeout_is_stored_whole() {
    use hoist_registry::{RepoName, Storage};
    let Some(weed) = SeaweedFs::shared() else {
        return;
    };
    let s = short_timeout_storage(weed);
    let repo = RepoName::parse("slow/writer").unwrap();
    let blob = data(42, 12 * MIB + 777);
    let digest = Digest::sha256(&blob);
    let chunks: Vec<bytes::Bytes> = blob
        .chunks(MIB)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let n = chunks.len();
    use futures_util::StreamExt;
    let body =
        futures_util::stream::iter(chunks.into_iter().enumerate()).then(move |(i, c)| async move {
            // One MiB every 0.6 s: the first part (8 MiB) fills over more than two
            // timeouts; one pause longer than the timeout records what arrived.
            let pause = if i == n / 2 {
                LONG_PAUSE
            } else {
                Duration::from_millis(600)
            };
            tokio::time::sleep(pause).await;
            Ok::<_, std::io::Error>(c)
        });
    let id = s.upload_start(&repo).await.unwrap();
    let at = s
        .upload_append(&repo, &id, Some(0), Box::pin(body))
        .await
        .unwrap();
    assert_eq!(at, blob.len() as u64);
    assert_eq!(
        s.upload_commit(&repo, &id, &digest).await.unwrap(),
        blob.len() as u64
    );
    let mut body = s
        .blob_read(&repo, &digest, None)
        .await
        .unwrap()
        .unwrap()
        .body;
    let mut back = Vec::new();
    while let Some(b) = futures_util::StreamExt::next(&mut body).await {
        back.extend_from_slice(&b.unwrap());
    }
    assert!(back == blob, "the blob read back differs");
}
