//! Serve an OCI registry in-process, push a generated image into it, check what it serves,
//! and stop: the registry crate and the verbs in one program.
//!
//! ```text
//! cargo run -p hoist-examples --example serve_registry [-- STORAGE_DIR]
//! ```

use std::path::Path;

use hoist_image::{Child, random};
use hoist_ops::{Context, Location};

/// What the program found: the pushed digest and the layers the registry serves, checked.
pub struct Served {
    /// The image pushed.
    pub pushed: hoist_image::Digest,
    /// Layers recomputed from what the registry serves.
    pub layers: usize,
}

/// Serve a registry stored under `root` on an ephemeral loopback port, push a seeded
/// image to it, validate it, then stop the server.
pub fn run(root: &Path) -> Result<Served, Box<dyn std::error::Error>> {
    let registry = hoist_registry::Registry::open(root)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    // The server runs on its own runtime thread until told to stop.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(hoist_registry::serve(listener, &registry, None, async {
            let _ = stopped.await;
        }))
    });

    let result = (|| -> hoist_ops::Result<Served> {
        let ctx = Context::default();
        let image = random::image(&random::Options {
            layers: 3,
            size: 64 << 10,
            ..Default::default()
        })?;
        let dst = Location::parse(&format!("docker://{addr}/examples/app:v1"))?;
        let report = hoist_ops::write(&dst, Child::Image(image), &ctx)?;
        let checked = hoist_ops::validate::validate(&dst, Default::default(), &ctx)?;
        Ok(Served {
            pushed: report.written[0].digest.clone(),
            layers: checked.layers,
        })
    })();
    let _ = stop.send(());
    server.join().map_err(|_| "the server thread panicked")??;
    Ok(result?)
}

#[allow(dead_code)] // the test calls `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile_dir()?;
    let root = std::env::args()
        .nth(1)
        .map_or_else(|| dir.clone(), Into::into);
    let served = run(&root)?;
    println!(
        "pushed {}; the registry serves it, {} layers checked",
        served.pushed, served.layers
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[allow(dead_code)] // main only
/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("hoist-serve-example-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
