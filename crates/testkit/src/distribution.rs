//! The distribution registry (Debian `docker-registry`), started on an ephemeral loopback
//! port with a private root, stopped when the guard drops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the distribution registry.
pub const BINARY: &str = "/usr/bin/docker-registry";

/// A running distribution registry; killed on drop.
#[derive(Debug)]
pub struct Distribution {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Options for [`Distribution::start_with`].
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// An htpasswd file (bcrypt) to require basic auth with.
    pub htpasswd: Option<PathBuf>,
}

impl Distribution {
    /// Start one without auth. `None` when the binary is missing and peers are not required.
    pub fn start() -> Option<Distribution> {
        Self::start_with(Options::default())
    }

    /// Start one with options. `None` when the binary is missing and peers are not required.
    pub fn start_with(opts: Options) -> Option<Distribution> {
        let bin = crate::peers::require(BINARY)?;
        let dir = tempfile::tempdir().expect("temp dir");
        // Pick a free port; the tiny race with another process is acceptable in tests.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let auth = match &opts.htpasswd {
            Some(p) => format!(
                "auth:\n  htpasswd:\n    realm: hoist-test\n    path: {}\n",
                p.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: {addr}\n{auth}health:\n  storagedriver:\n    enabled: false\n",
            root = dir.path().join("data").display(),
        );
        let conf_path = dir.path().join("config.yml");
        std::fs::write(&conf_path, config).expect("write registry config");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let mut d = Distribution {
            child,
            addr,
            _dir: dir,
        };
        d.wait_ready();
        Some(d)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) {
                let req = format!("GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
                let mut buf = [0u8; 12];
                if s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut buf).is_ok() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not answer on {} within 20 s",
            self.addr
        );
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
