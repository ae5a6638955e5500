//! `hoist serve`: run the embedded OCI registry.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

/// Where the registry listens unless told otherwise: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";
/// Where it stores data unless told otherwise (relative to the working directory).
pub const DEFAULT_ROOT: &str = "hoist-registry";

/// Arguments of `hoist serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (host:port; port 0 picks a free one).
    #[arg(long, default_value = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// Storage directory (created if needed).
    #[arg(long, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Require basic auth against this htpasswd file (bcrypt entries, `htpasswd -B`).
    #[arg(long)]
    htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut registry = hoist_registry::Registry::open(&args.root)
        .with_context(|| format!("storage root {}", args.root.display()))?;
    if let Some(h) = &args.htpasswd {
        let users = hoist_registry::Htpasswd::load(h).map_err(anyhow::Error::msg)?;
        registry = registry.with_auth(users);
    }
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(hoist_registry::Tls { cert, key }),
        _ => None,
    };
    let listener = std::net::TcpListener::bind(args.addr)
        .with_context(|| format!("listening on {}", args.addr))?;
    let local = listener.local_addr().context("local address")?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The one line a script waits for (the port matters when --addr ends in :0).
    println!("hoist registry listening on {scheme}://{local}");
    tracing::info!(root = %args.root.display(), "serving");
    // One async thread for the network; hashing and disk I/O run on tokio's blocking
    // threads (one per request body). Measured with bench/registry.sh: a multi-threaded
    // scheduler only added wake-ups between its workers (about 10% more server CPU).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        hoist_registry::serve(listener, &registry, tls.as_ref(), shutdown).await
    })
    .with_context(|| format!("serving on {local}"))?;
    Ok(())
}
