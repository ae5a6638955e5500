//! haproxy (Debian's package) as a round-robin HTTP balancer on a free loopback port in
//! front of given backends, each request to the next backend. A backend that refuses
//! connections (a killed node) is skipped: its health is checked every 200 ms and a
//! request whose connection fails is sent to another one. Killed when the guard drops.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program.
pub const BINARY: &str = "haproxy";

/// A running haproxy; killed on drop.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// The haproxy configuration for `backends` behind `listen`.
pub fn config(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let mut c = String::from("global\n  maxconn 4096\n");
    c.push_str(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 300s\n  timeout server 300s\n  \
         retries 3\n  option redispatch\n",
    );
    c.push_str(&format!(
        "frontend fe\n  bind {listen}\n  default_backend nodes\nbackend nodes\n  balance roundrobin\n"
    ));
    for (i, b) in backends.iter().enumerate() {
        c.push_str(&format!(
            "  server n{i} {b} check inter 200ms fall 1 rise 1\n"
        ));
    }
    c
}

impl Haproxy {
    /// Round-robin over `backends`. `None` when haproxy is missing and peers are not required.
    pub fn start(backends: &[SocketAddr]) -> Option<Haproxy> {
        // Debian installs it in /usr/sbin, which is not on every user's PATH.
        let sbin = Path::new("/usr/sbin/haproxy");
        let bin = if sbin.is_file() {
            sbin.to_path_buf()
        } else {
            crate::peers::require(BINARY)?
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf: PathBuf = dir.path().join("haproxy.cfg");
        std::fs::write(&conf, config(addr, backends)).expect("write haproxy.cfg");
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let mut h = Haproxy {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&h.addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("haproxy exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on {}",
                h.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(h)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
