//! Shared by the `hoist serve` tests: the server as a child process, data, manifests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use hoist_image::Digest;
use hoist_registry::S3Config;
use hoist_testkit::seaweedfs;

/// `hoist serve` on 127.0.0.1:0, killed on drop.
pub struct Server {
    child: Option<Child>,
    url: String,
    metrics_url: Option<String>,
}

impl Server {
    /// Start it on `root` with extra arguments; waits for the "listening on" line.
    pub fn start(root: &Path, extra: &[&str]) -> Server {
        Self::spawn(root, extra, Stdio::inherit())
    }

    /// As [`Server::start`], allowed at most `nofile` open file descriptors (`ulimit -n`).
    pub fn start_with_nofile(root: &Path, extra: &[&str], nofile: u64) -> Server {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ulimit -n \"$0\" && exec \"$@\""])
            .arg(nofile.to_string())
            .arg(env!("CARGO_BIN_EXE_hoist"))
            .args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra);
        Self::spawn_command(cmd, false, Stdio::inherit(), None)
    }

    /// As [`Server::start`], with stderr (the log) written to `log`.
    pub fn start_logged(root: &Path, extra: &[&str], log: &Path) -> Server {
        let f = std::fs::File::create(log).expect("log file");
        Self::spawn(root, extra, Stdio::from(f))
    }

    fn spawn(root: &Path, extra: &[&str], stderr: Stdio) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hoist"));
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(extra);
        Self::spawn_command(cmd, extra.contains(&"--metrics-addr"), stderr, None)
    }

    /// `hoist serve` as `cmd` says (arguments, environment), stderr to `log`; with
    /// `metrics`, it also waits for the metrics address line.
    pub fn start_command(cmd: Command, metrics: bool, log: &Path) -> Server {
        let f = std::fs::File::create(log).expect("log file");
        Self::spawn_command(cmd, metrics, Stdio::from(f), Some(log))
    }

    /// Start `cmd`; a failure to start says what it wrote to `log`.
    fn spawn_command(mut cmd: Command, metrics: bool, stderr: Stdio, log: Option<&Path>) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start hoist serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http"))
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                let said = log
                    .and_then(|l| std::fs::read_to_string(l).ok())
                    .unwrap_or_default();
                panic!("hoist serve did not start: {line:?}; its log: {said}")
            })
            .to_string();
        let metrics_url = metrics.then(|| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line.trim().rsplit(' ').next().unwrap().to_string()
        });
        Server {
            child: Some(child),
            url,
            metrics_url,
        }
    }

    /// `http://127.0.0.1:PORT/metrics` when started with `--metrics-addr`.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics_url.clone()
    }

    /// `http(s)://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.url.split("://").nth(1).unwrap().to_string()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// The process's resident memory (VmRSS), KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time the process used so far, in clock ticks (utime + stime).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = stat.rsplit_once(')').unwrap().1;
        let f: Vec<&str> = after.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// Waits until the process used (almost) no CPU for half a second, at most `timeout`.
    pub fn wait_idle(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            let before = self.cpu_ticks();
            std::thread::sleep(std::time::Duration::from_millis(500));
            if self.cpu_ticks() - before <= 2 {
                return;
            }
        }
    }

    /// Waits (at most `timeout`) for the process to exit by itself; its exit code, `None`
    /// when it did not exit in time (it is then killed) or died of a signal.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            c.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Deterministic incompressible bytes.
pub fn data(seed: u8, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// An OCI image manifest; `salt` goes into an annotation so manifests differ.
pub fn image_manifest(
    config: &Digest,
    config_len: usize,
    layers: &[(Digest, usize)],
    salt: &str,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": config_len},
        "layers": layers.iter().map(|(d, n)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": n})).collect::<Vec<_>>(),
        "annotations": {"salt": salt},
    }))
    .unwrap()
}

/// `hoist serve` node `n` on `bucket` (its prefix plus `/registry`), upload locations
/// signed with `secret`, credentials from the standard AWS variables, its log in `logs`.
pub fn s3_node(bucket: &S3Config, secret: &str, logs: &Path, n: usize, extra: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hoist"));
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--secret", secret])
        .args(extra)
        .arg("--storage")
        .arg(s3_url(bucket))
        .arg("--s3-endpoint")
        .arg(bucket.endpoint.as_deref().expect("endpoint"))
        .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
        .env("HOIST_LOG", "warn");
    for k in [
        "HOIST_ROOT",
        "HOIST_STORAGE",
        "HOIST_CONFIG",
        "HOIST_SECRET",
    ] {
        cmd.env_remove(k);
    }
    let metrics = extra.contains(&"--metrics-addr");
    Server::start_command(cmd, metrics, &logs.join(format!("node{n}.log")))
}

/// The `--storage` of [`s3_node`]: `s3://BUCKET/PREFIX/registry`.
pub fn s3_url(bucket: &S3Config) -> String {
    format!("s3://{}/{}/registry", bucket.bucket, bucket.prefix)
}

/// The test's own client of the bucket (to look at what the nodes left there).
pub fn bucket_client(bucket: &S3Config) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket.bucket)
        .with_endpoint(bucket.endpoint.as_deref().expect("endpoint"))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id(seaweedfs::ACCESS_KEY)
        .with_secret_access_key(seaweedfs::SECRET_KEY)
        .build()
        .unwrap()
}
