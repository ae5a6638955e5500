//! A small seeded test image whose layer sources and store count how often they are
//! opened and sealed (the counting tests), built only from hoist-image's core types.
#![allow(dead_code)]

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};

use hoist_image::pipeline::Encoding;
use hoist_image::{
    BoxRead, Config, ConfigFile, DiffId, Digest, FromUncompressed, Image, ImageManifest, Layer,
    Manifest, MediaType, RootFs, Store, UncompressedSource,
};
use hoist_testkit::counting::CountingStore;

/// Deterministic, compressible bytes: words from a small vocabulary picked by xorshift.
pub struct Text {
    state: u64,
    left: u64,
    line: Vec<u8>,
    pos: usize,
}

const WORDS: &[&str] = &[
    "layer", "blob", "digest", "manifest", "registry", "push", "hoist", "tar", "gzip", "index",
    "config", "mount", "chunk", "token", "retry", "offset", "0", "1", "42", "sha256",
];

impl Text {
    pub fn new(seed: u64, len: u64) -> Text {
        Text {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            left: len,
            line: Vec::new(),
            pos: 0,
        }
    }
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

impl Read for Text {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.left > 0 {
            if self.pos == self.line.len() {
                self.line.clear();
                self.pos = 0;
                for _ in 0..8 {
                    let w = WORDS[(self.next() % WORDS.len() as u64) as usize];
                    self.line.extend_from_slice(w.as_bytes());
                    self.line.push(b' ');
                }
                // some noise so it does not compress absurdly well
                let r = self.next();
                self.line.extend_from_slice(format!("{r:x}\n").as_bytes());
            }
            let k = (self.line.len() - self.pos)
                .min(buf.len() - n)
                .min(self.left as usize);
            buf[n..n + k].copy_from_slice(&self.line[self.pos..self.pos + k]);
            self.pos += k;
            n += k;
            self.left -= k as u64;
        }
        Ok(n)
    }
}

#[derive(Debug)]
pub struct CountingSource {
    seed: u64,
    len: u64,
    pub opens: Arc<AtomicU64>,
}

impl UncompressedSource for CountingSource {
    fn open(&self) -> hoist_image::Result<BoxRead> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(Text::new(self.seed, self.len)))
    }
}

#[derive(Debug)]
pub struct TestImage {
    pub layers: Vec<Arc<FromUncompressed<CountingSource>>>,
    pub config: Config,
    pub opens: Arc<AtomicU64>,
    pub store: Arc<CountingStore>,
}

impl TestImage {
    /// `n` layers of `size` bytes of text, from `seed`.
    pub fn new(seed: u64, n: usize, size: u64) -> Arc<TestImage> {
        let opens = Arc::new(AtomicU64::new(0));
        let store = Arc::new(CountingStore::new());
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for i in 0..n {
            let seed = seed * 1000 + i as u64;
            let mut h = hoist_image::HashingReader::new(Text::new(seed, size));
            std::io::copy(&mut h, &mut std::io::sink()).unwrap();
            diff_ids.push(DiffId(h.finish().1));
            let src = CountingSource {
                seed,
                len: size,
                opens: opens.clone(),
            };
            layers.push(Arc::new(FromUncompressed::new(
                src,
                Encoding::gzip(),
                MediaType::OciLayerGzip,
                store.clone() as Arc<dyn Store>,
            )));
        }
        let cf = ConfigFile {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids,
            },
            history: Vec::new(),
            rest: serde_json::Map::new(),
        };
        Arc::new(TestImage {
            layers,
            config: Config::from_file(&cf),
            opens,
            store,
        })
    }

    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::SeqCst)
    }
    pub fn seals(&self) -> u64 {
        self.store.seals()
    }
}

impl Image for TestImage {
    fn manifest(&self) -> hoist_image::Result<Manifest> {
        let layers = self
            .layers
            .iter()
            .map(|l| l.descriptor())
            .collect::<hoist_image::Result<Vec<_>>>()?;
        Manifest::from_image(&ImageManifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            artifact_type: None,
            config: self.config.descriptor(MediaType::OciConfig),
            layers,
            subject: None,
            annotations: Default::default(),
        })
    }
    fn config(&self) -> hoist_image::Result<Config> {
        Ok(self.config.clone())
    }
    fn layers(&self) -> hoist_image::Result<Vec<Arc<dyn Layer>>> {
        Ok(self
            .layers
            .iter()
            .map(|l| l.clone() as Arc<dyn Layer>)
            .collect())
    }
}

pub fn digest_of(m: &Manifest) -> Digest {
    m.digest().clone()
}

/// Debug logs to the test output (RUST_LOG-style filter from HOIST_TEST_LOG).
pub fn logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(f) = std::env::var("HOIST_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(f))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Push a layout whose first layer blob is corrupted (a flipped byte, then a truncation) to
/// `addr`: the push fails with a one-line error naming the blob, and the registry holds
/// neither the blob nor the manifest.
pub async fn corrupt_layout_push(addr: std::net::SocketAddr, c: &hoist_remote::Client) {
    use hoist_image::Child;
    use hoist_remote::push::{self, NoProgress, Options};
    use hoist_remote::{Repository, Target};
    let dir = tempfile::tempdir().unwrap();
    let layout = hoist_image::layout::Layout::create(dir.path()).unwrap();
    let img = TestImage::new(22, 2, 600 << 10);
    hoist_image::layout::write(&layout, &*img, Some("v1")).unwrap();
    let manifest = hoist_image::Image::manifest(&*img).unwrap();
    let layers = manifest.as_image().unwrap().layers.clone();
    let cases = [
        ("flipped", "corrupt/flipped", 0),
        ("truncated", "corrupt/short", 0),
        ("flipped", "corrupt/flipped-whole", 1 << 20),
        ("truncated", "corrupt/short-whole", 1 << 20),
    ];
    // monolithic_max 0: the layers stream (PATCH); 1 MiB: each goes in one request.
    for (case, target, monolithic_max) in cases {
        let before = c.stats();
        let opts = Options {
            monolithic_max,
            ..Options::default()
        };
        let victim = &layers[0];
        let path = layout.blob_path(&victim.digest);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        match case {
            "flipped" => bad[good.len() / 2] ^= 0x40,
            _ => bad.truncate(good.len() - 100),
        }
        std::fs::write(&path, &bad).unwrap();
        let src = hoist_image::layout::Layout::open(dir.path())
            .unwrap()
            .image("v1")
            .unwrap();
        let t = Target::tagged(Repository::new(addr.to_string(), target).unwrap(), "v1").unwrap();
        let e = push::push(
            c,
            Child::Image(src),
            std::slice::from_ref(&t),
            &opts,
            Arc::new(NoProgress),
        )
        .await
        .expect_err("a corrupt blob must not be pushed");
        let msg = e.to_string();
        let stats = c.stats();
        eprintln!("{target}: {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(msg.contains(&victim.digest.to_string()), "{case}: {msg}");
        assert!(
            !c.blob_exists(&t.repo, &victim.digest).await.unwrap(),
            "{case}: stored under a digest its bytes do not have"
        );
        assert!(
            c.manifest_digest(&t.repo, "v1").await.unwrap().is_none(),
            "{case}: the manifest went up without its layer"
        );
        if case == "flipped" {
            assert!(msg.contains("DIGEST_INVALID"), "{target}: {msg}");
            assert!(msg.contains("corrupt"), "{target}: {msg}");
        }
        if case == "truncated" {
            // The source's own error, not the HTTP request it broke, and no retry: each
            // would read the same short file.
            assert!(msg.contains("size mismatch"), "{target}: {msg}");
            assert!(!msg.contains("request failed"), "{target}: {msg}");
            assert_eq!(
                (stats.resumes, stats.restarts, stats.retries),
                (before.resumes, before.restarts, before.retries),
                "{target}: retried a short source"
            );
        }
        std::fs::write(&path, &good).unwrap();
    }
}

/// How [`failed_push_leaves_no_sessions`] makes a push fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The first layer's blob is truncated (its upload ends with the source's error in the
    /// middle of a PATCH) while a proxy holds every PATCH answer back: the other uploads are
    /// aborted in the middle of their requests.
    MidRequest,
    /// The first layer's blob has a flipped byte, uploads go one at a time: the registry
    /// refuses the commit (DIGEST_INVALID) between requests.
    AtCommit,
}

/// Push a layout with a corrupt first layer to `registry` (through a counting proxy) so
/// the push fails with upload sessions open. Afterwards no session is left:
/// `open_sessions` (which reads the registry's storage) answers 0, and the client sent a
/// `DELETE` for each session still open.
pub async fn failed_push_leaves_no_sessions(
    registry: std::net::SocketAddr,
    c: &hoist_remote::Client,
    failure: Failure,
    open_sessions: impl Fn() -> usize,
) {
    use hoist_remote::push::{self, NoProgress, Options};
    use hoist_remote::{Repository, Target};
    use hoist_testkit::faults::{Fault, Match, Proxy, Rule};
    let rules = match failure {
        Failure::MidRequest => vec![Rule::new(
            Match::method("PATCH"),
            Fault::Stall(std::time::Duration::from_secs(3)),
            u64::MAX,
        )],
        Failure::AtCommit => Vec::new(),
    };
    let proxy = Proxy::start(registry, rules);
    let dir = tempfile::tempdir().unwrap();
    let layout = hoist_image::layout::Layout::create(dir.path()).unwrap();
    let img = TestImage::new(23, 4, 1 << 20);
    hoist_image::layout::write(&layout, &*img, Some("v1")).unwrap();
    let manifest = hoist_image::Image::manifest(&*img).unwrap();
    let victim = &manifest.as_image().unwrap().layers[0];
    let path = layout.blob_path(&victim.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    match failure {
        Failure::MidRequest => bytes.truncate(bytes.len() - 100),
        Failure::AtCommit => bytes[100] ^= 0x40,
    }
    std::fs::write(&path, &bytes).unwrap();
    let src = hoist_image::layout::Layout::open(dir.path())
        .unwrap()
        .image("v1")
        .unwrap();
    let t = Target::tagged(
        Repository::new(proxy.addr().to_string(), "sessions/failed").unwrap(),
        "v1",
    )
    .unwrap();
    let opts = Options {
        monolithic_max: 0,
        jobs: if failure == Failure::MidRequest { 8 } else { 1 },
        ..Options::default()
    };
    let e = push::push(
        c,
        hoist_image::Child::Image(src),
        std::slice::from_ref(&t),
        &opts,
        Arc::new(NoProgress),
    )
    .await
    .expect_err("a corrupt blob must not be pushed");
    let want = match failure {
        Failure::MidRequest => "size mismatch",
        Failure::AtCommit => "DIGEST_INVALID",
    };
    assert!(e.to_string().contains(want), "{e}");
    let pc = proxy.counters();
    let (posts, deletes) = (pc.method("POST"), pc.method("DELETE"));
    match failure {
        Failure::MidRequest => {
            assert!(posts >= 2, "uploads were under way: {}", pc.summary());
            assert_eq!(deletes, posts, "each session cancelled: {}", pc.summary());
        }
        Failure::AtCommit => assert!(deletes >= 1, "{}", pc.summary()),
    }
    assert_eq!(open_sessions(), 0, "{}", pc.summary());
}

/// Files named `file` below `root` inside a directory named `within` (distribution's
/// upload sessions keep their bytes in `.../_uploads/<id>/data`).
pub fn files_named(root: &std::path::Path, within: &str, file: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![(root.to_path_buf(), false)];
    while let Some((d, inside)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                let inside = inside || p.file_name().is_some_and(|f| f == within);
                stack.push((p, inside));
            } else if inside && p.file_name().is_some_and(|f| f == file) {
                n += 1;
            }
        }
    }
    n
}
