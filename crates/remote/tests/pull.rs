//! Pull and the registry source against the in-process registry (and the distribution
//! registry), through the fault proxy: a download cut in the middle resumes with `Range`,
//! a wrong byte is caught by the digest check and nothing is kept, and the registry
//! source streams layers with bounded buffering into a layout identical to the original.

use std::sync::Arc;
use std::time::Duration;

use hoist_image::layout::{self, Layout};
use hoist_image::{Child, random, validate};
use hoist_remote::push::{self, NoProgress};
use hoist_remote::source::Remote;
use hoist_remote::{Client, Repository, Target, copy, pull};
use hoist_testkit::faults::{Fault, Match, Proxy, Rule};
use hoist_testkit::registry::TestRegistry;

fn fast_client() -> Client {
    Client::builder()
        .retry(hoist_remote::retry::RetryPolicy {
            retries: 5,
            base: Duration::from_millis(20),
            max: Duration::from_secs(1),
        })
        .read_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Push a seeded image of `layers` × `size` random (incompressible) bytes to `repo:v1`.
async fn seed(
    client: &Client,
    addr: std::net::SocketAddr,
    name: &str,
    layers: usize,
    size: u64,
) -> hoist_image::Digest {
    let img = random::image(&random::Options {
        layers,
        size,
        seed: 7,
        ..Default::default()
    })
    .unwrap();
    let t = Target::tagged(Repository::new(addr.to_string(), name).unwrap(), "v1").unwrap();
    let r = push::push(
        client,
        Child::Image(img),
        &[t],
        &push::Options::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    r.pushed[0].digest.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_download_resumes_with_range() {
    let reg = TestRegistry::start();
    let client = fast_client();
    let digest = seed(&client, reg.addr(), "faults/cut", 2, 1 << 20).await;
    // Every blob GET is cut after 100 KiB, twice: each layer needs Range resumes.
    let proxy = Proxy::start(
        reg.addr(),
        vec![Rule::new(
            Match::method("GET").path("/blobs/"),
            Fault::CutResponseAfter(100 << 10),
            4,
        )],
    );
    let repo = Repository::new(proxy.addr().to_string(), "faults/cut").unwrap();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    let report = pull::pull_to_layout(
        &client,
        &repo,
        "v1",
        &dir,
        Some("v1"),
        &pull::Options::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("pull failed: {e}; proxy {}", proxy.counters().summary()));
    assert_eq!(report.descriptor.digest, digest);
    assert!(
        client.stats().downloads_resumed >= 2,
        "{:?}",
        client.stats()
    );
    assert!(
        proxy
            .counters()
            .resets
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    let d = dir.clone();
    tokio::task::spawn_blocking(move || {
        let img = Layout::open(&d).unwrap().image("v1").unwrap();
        validate::image(img.as_ref(), validate::Options::default()).unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_byte_is_caught_and_not_kept() {
    let reg = TestRegistry::start();
    let client = fast_client();
    seed(&client, reg.addr(), "faults/bad", 1, 256 << 10).await;
    let proxy = Proxy::start(
        reg.addr(),
        vec![Rule::new(
            Match::method("GET").path("/blobs/"),
            Fault::CorruptResponseByte(1000),
            u64::MAX,
        )],
    );
    let repo = Repository::new(proxy.addr().to_string(), "faults/bad").unwrap();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    let e = pull::pull_to_layout(&client, &repo, "v1", &dir, None, &pull::Options::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("digest"), "{e}");
    assert!(
        !dir.exists(),
        "a failed pull into a new layout leaves nothing"
    );

    // Into an existing layout: the old content stays, no blob or temp file of the bad
    // download is kept, index.json is unchanged.
    let keep = t.path().join("keep");
    Layout::create(&keep).unwrap();
    let before = std::fs::read(keep.join("index.json")).unwrap();
    pull::pull_to_layout(&client, &repo, "v1", &keep, None, &pull::Options::default())
        .await
        .unwrap_err();
    assert_eq!(std::fs::read(keep.join("index.json")).unwrap(), before);
    let mut files = Vec::new();
    for e in walk(&keep.join("blobs")) {
        let data = std::fs::read(&e).unwrap();
        let name = e.file_name().unwrap().to_str().unwrap().to_string();
        assert!(!name.starts_with('.'), "temp file left: {}", e.display());
        // Every blob kept is whole and verified (configs may be).
        assert_eq!(hoist_image::Digest::sha256(&data).hex(), name);
        files.push(name);
    }

    // The registry source (sync Read over the download) catches it too.
    let remote = Remote::new(
        client.clone(),
        repo.clone(),
        hoist_remote::Runtime::current().unwrap(),
    );
    let r = tokio::task::spawn_blocking(move || -> hoist_image::Result<()> {
        let Child::Image(img) = remote.open("v1").unwrap() else {
            panic!("image expected")
        };
        let mut r = img.layers()?[0].compressed()?;
        std::io::copy(&mut r, &mut std::io::sink())
            .map_err(|e| hoist_image::Error::from_io("layer", e))?;
        Ok(())
    })
    .await
    .unwrap();
    let e = r.unwrap_err();
    assert!(e.to_string().contains("digest"), "{e}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_source_streams_into_layout_and_copies_with_mounts() {
    let reg = TestRegistry::start();
    let client = fast_client();
    let digest = seed(&client, reg.addr(), "src/app", 3, 512 << 10).await;
    let repo = Repository::new(reg.addr().to_string(), "src/app").unwrap();

    // The sync source, written by the layout sink: same manifest bytes.
    let remote = Remote::new(
        client.clone(),
        repo.clone(),
        hoist_remote::Runtime::current().unwrap(),
    );
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    let d2 = dir.clone();
    let written = tokio::task::spawn_blocking(move || {
        let Child::Image(img) = remote.open("v1").unwrap() else {
            panic!()
        };
        validate::image(img.as_ref(), validate::Options::default()).unwrap();
        layout::write(&Layout::create(&d2).unwrap(), img.as_ref(), Some("v1")).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(written.digest, digest);

    // Registry to registry, same registry: every blob mounted, nothing uploaded.
    let before = client.stats().bytes_sent;
    let dst = Target::tagged(
        Repository::new(reg.addr().to_string(), "dst/app").unwrap(),
        "v1",
    )
    .unwrap();
    let report = copy::copy(
        &client,
        &repo,
        "v1",
        std::slice::from_ref(&dst),
        &copy::Options::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(report.pushed[0].digest, digest);
    assert_eq!(report.blobs_uploaded, 0, "{report:?}");
    assert_eq!(client.stats().bytes_sent, before, "nothing sent: mounted");

    // To another registry: streamed, byte-identical.
    let other = TestRegistry::start();
    let dst = Target::tagged(
        Repository::new(other.addr().to_string(), "x/app").unwrap(),
        "v1",
    )
    .unwrap();
    let report = copy::copy(
        &client,
        &repo,
        "v1",
        &[dst],
        &copy::Options::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(report.pushed[0].digest, digest);
    assert_eq!(report.blobs_uploaded, 4); // 3 layers + config

    // --no-clobber: the tag exists now.
    let dst = Target::tagged(
        Repository::new(other.addr().to_string(), "x/app").unwrap(),
        "v1",
    )
    .unwrap();
    let opts = copy::Options {
        no_clobber: true,
        ..Default::default()
    };
    let e = copy::copy(&client, &repo, "v1", &[dst], &opts, Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-clobber"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_distribution() {
    let Some(reg) = hoist_testkit::distribution::Distribution::start() else {
        return;
    };
    let client = fast_client();
    let digest = seed(&client, reg.addr(), "dist/app", 2, 256 << 10).await;
    let repo = Repository::new(reg.addr().to_string(), "dist/app").unwrap();
    let t = tempfile::tempdir().unwrap();
    let cache = Arc::new(hoist_image::Cache::open(t.path().join("cache")).unwrap());
    let opts = pull::Options {
        cache: Some(cache.clone()),
        ..Default::default()
    };
    let r = pull::pull_to_layout(&client, &repo, "v1", &t.path().join("l"), None, &opts)
        .await
        .unwrap();
    assert_eq!(r.descriptor.digest, digest);
    assert_eq!(r.blobs_fetched, 3);
    // Pulled layers are in the cache, recorded by diff_id as of unknown provenance (their
    // encoder and level are the pusher's): listed, never served for a level.
    let l = Layout::open(t.path().join("l")).unwrap();
    let m = l.index_manifest().unwrap();
    let img = tokio::task::spawn_blocking(move || l.child(&m.manifests[0]).unwrap())
        .await
        .unwrap();
    let Child::Image(img) = img else { panic!() };
    let entries = cache.entries().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let layers = tokio::task::spawn_blocking(move || img.layers().unwrap())
        .await
        .unwrap();
    for l in layers {
        let d = l.digest().unwrap();
        assert!(
            entries
                .iter()
                .any(|e| e.sealed.digest == d && e.encoding == "gzip.pulled"),
            "{entries:?}"
        );
    }
    // A second pull into the same layout downloads nothing.
    let r = pull::pull_to_layout(&client, &repo, "v1", &t.path().join("l"), None, &opts)
        .await
        .unwrap();
    assert_eq!((r.blobs_fetched, r.blobs_present), (0, 3));
}

/// A registry that answers every request with one canned manifest (a tiny HTTP/1.1
/// server on a thread): for what the real registries refuse to store.
fn canned(content_type: &'static str, body: &'static str) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_manifest_media_type_is_a_clear_error() {
    let addr = canned(
        "application/vnd.example.thing+json",
        r#"{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json"}"#,
    );
    let client = fast_client();
    let repo = Repository::new(addr.to_string(), "odd/thing").unwrap();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("l");
    let e = pull::pull_to_layout(&client, &repo, "v1", &dir, None, &pull::Options::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("application/vnd.example.thing+json"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(!dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_between_registries_resumes_cut_source_downloads() {
    let reg = TestRegistry::start();
    let other = TestRegistry::start();
    let client = fast_client();
    let digest = seed(&client, reg.addr(), "cut/src", 2, 1 << 20).await;
    let proxy = Proxy::start(
        reg.addr(),
        vec![Rule::new(
            Match::method("GET").path("/blobs/"),
            Fault::CutResponseAfter(64 << 10),
            3,
        )],
    );
    let src = Repository::new(proxy.addr().to_string(), "cut/src").unwrap();
    let dst = Target::tagged(
        Repository::new(other.addr().to_string(), "cut/dst").unwrap(),
        "v1",
    )
    .unwrap();
    // Large blobs streamed (not one monolithic request), so the cut lands mid-stream.
    let opts = copy::Options {
        push: push::Options {
            monolithic_max: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let r = copy::copy(&client, &src, "v1", &[dst], &opts, Arc::new(NoProgress))
        .await
        .unwrap_or_else(|e| panic!("copy failed: {e}; proxy {}", proxy.counters().summary()));
    assert_eq!(r.pushed[0].digest, digest);
    assert!(
        client.stats().downloads_resumed >= 1,
        "{:?}",
        client.stats()
    );
    let check = Repository::new(other.addr().to_string(), "cut/dst").unwrap();
    let remote = Remote::new(
        client.clone(),
        check,
        hoist_remote::Runtime::current().unwrap(),
    );
    tokio::task::spawn_blocking(move || {
        let Child::Image(img) = remote.open("v1").unwrap() else {
            panic!()
        };
        validate::image(img.as_ref(), validate::Options::default()).unwrap();
    })
    .await
    .unwrap();
}
