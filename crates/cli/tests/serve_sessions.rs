//! Upload sessions and disk space of `hoist serve`: sessions expire (`--upload-ttl`), also
//! after kill -9 and a restart, and so do the leftovers of a start that never completed; a
//! full disk gives the client a clear error without server paths, serves nothing partial,
//! and frees the failed upload's space by itself.

mod serve_common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hoist_image::Digest;
use hoist_testkit::api::{push_blob, upload_offset};
use reqwest::StatusCode;
use serve_common::{Server, data, image_manifest};

fn session_dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_sessions_expire_after_kill_9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let c = reqwest::Client::new();
    let mut server = Server::start(&root, &[]);
    let base = server.url();
    let r = c
        .post(format!("{base}/v2/exp/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = c
        .patch(format!("{base}{loc}"))
        .body(data(5, 1 << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    server.kill9();
    // What a POST killed half-way leaves: a session directory without its repo file.
    let orphan = root.join("uploads/0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("data"), b"").unwrap();
    std::fs::write(orphan.join("repo.tmp"), b"exp/app").unwrap();
    assert_eq!(session_dirs(&root).len(), 2);

    // Restarted with a short TTL: the orphan goes at once, the abandoned session once it is
    // older than the TTL.
    let server = Server::start(&root, &["--upload-ttl", "2s"]);
    assert!(!orphan.exists(), "the orphan survived a restart");
    let base = server.url();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !session_dirs(&root).is_empty() {
        assert!(
            Instant::now() < deadline,
            "sessions left: {:?}",
            session_dirs(&root)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = c.get(format!("{base}{loc}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A session in use is not expired under its writer: one written every 0.5 s lives on.
    let r = c
        .post(format!("{base}/v2/exp/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let mut sent = 0u64;
    for _ in 0..10 {
        let r = c.patch(&loc).body(vec![7u8; 1000]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        sent += 1000;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(upload_offset(&c, &loc).await, sent);
}

/// A tmpfs of `size` mounted on a new temp dir, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        // Root or not, from `id -u` (no unsafe getuid call).
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("skipping: mounting a small tmpfs needs root (CI runs as root)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs");
        Some(Tmpfs { dir })
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn used_kib(&self) -> u64 {
        let out = Command::new("df")
            .args(["-k", "--output=used"])
            .arg(self.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_error_and_frees_itself() {
    let Some(fs) = Tmpfs::mount("6m") else {
        return;
    };
    let root = fs.path().join("root");
    let mut server = Server::start(&root, &[]);
    let base = server.url();
    let c = reqwest::Client::new();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = data(6, 1 << 20);
    let cd = push_blob(&c, &base, "full/app", &config).await;
    let ld = push_blob(&c, &base, "full/app", &layer).await;
    let used = fs.used_kib();

    // A blob larger than the space left, in one request and in chunks.
    let big = data(7, 8 << 20);
    let bd = Digest::sha256(&big);
    let r = c
        .post(format!("{base}/v2/full/app/blobs/uploads/?digest={bd}"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{text}");
    assert!(text.contains("storage is full"), "{text}");
    assert!(
        !text.contains(fs.path().to_str().unwrap()),
        "a server path in {text}"
    );
    let r = c
        .post(format!("{base}/v2/full/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let r = c.patch(&loc).body(big.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    // Nothing partial is served, and the space is back without anyone cleaning up.
    let r = c
        .head(format!("{base}/v2/full/app/blobs/{bd}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.get(&loc).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the failed session is gone"
    );
    assert!(session_dirs(&root).is_empty(), "{:?}", session_dirs(&root));
    assert!(
        fs.used_kib() <= used + 64,
        "{} KiB used after the failed uploads, {used} before",
        fs.used_kib()
    );

    // A manifest PUT on a disk with no space at all: refused, nothing visible.
    let filler = fs.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", filler.display()))
        .output()
        .unwrap();
    let m = image_manifest(&cd, config.len(), &[(ld.clone(), layer.len())], "full");
    let r = c
        .put(format!("{base}/v2/full/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{text}");
    assert!(!text.contains(fs.path().to_str().unwrap()), "{text}");
    let r = c
        .get(format!("{base}/v2/full/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    // Space again: the same pushes work.
    std::fs::remove_file(&filler).unwrap();
    let r = c
        .put(format!("{base}/v2/full/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(m.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let small = data(8, 1 << 20);
    push_blob(&c, &base, "full/app", &small).await;
    server.kill9();
}
