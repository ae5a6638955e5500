//! The in-process hoist registry on an ephemeral loopback port, with a temp root (or a
//! given one, to test restarts), stopped when the guard drops. It runs on its own thread
//! and runtime, so sync tests and `#[tokio::test]`s can both use it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::Arc;

use hoist_registry::{Registry, Storage};

/// A running in-process registry; stopped on drop.
#[derive(Debug)]
pub struct TestRegistry {
    addr: SocketAddr,
    root: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// Options for [`TestRegistry::start_with`].
#[derive(Default, Clone)]
pub struct Options {
    /// Storage root; a fresh temp dir (removed on drop) when `None`.
    pub root: Option<PathBuf>,
    /// An htpasswd file (bcrypt) to require basic auth with.
    pub htpasswd: Option<PathBuf>,
    /// Another storage than a filesystem root (an object store); `root` is then unused.
    pub storage: Option<Arc<dyn Storage>>,
    /// The secret upload locations are signed with (nodes sharing a storage share it).
    pub secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("root", &self.root)
            .field("htpasswd", &self.htpasswd)
            .field("storage", &self.storage.as_ref().map(|_| "custom"))
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

impl TestRegistry {
    /// Start one, anonymous read-write, on a temp root.
    pub fn start() -> TestRegistry {
        Self::start_with(Options::default())
    }

    /// Start one with options.
    pub fn start_with(opts: Options) -> TestRegistry {
        let (dir, root) = match opts.root {
            Some(r) => (None, r),
            None => {
                let d = tempfile::tempdir().expect("temp dir");
                let r = d.path().to_path_buf();
                (Some(d), r)
            }
        };
        let mut registry = match opts.storage {
            Some(s) => Registry::with_shared_storage(s),
            None => Registry::open(&root).expect("open registry storage"),
        };
        if let Some(secret) = &opts.secret {
            registry = registry.secret(secret);
        }
        if let Some(h) = &opts.htpasswd {
            registry = registry.htpasswd(h).expect("load htpasswd");
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("hoist-registry-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("registry runtime");
                rt.block_on(async move {
                    tokio::select! {
                        r = hoist_registry::serve(listener, &registry, None, std::future::pending()) => {
                            r.expect("registry server");
                        }
                        _ = stopped => {}
                    }
                });
                // Connections still open (a stalled test client) are dropped here.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn registry thread");
        TestRegistry {
            addr,
            root,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A reqwest client builder for tests (one place to set up TLS for every test client).
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
}
