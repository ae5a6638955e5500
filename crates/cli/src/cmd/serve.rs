//! `hoist serve`: run the embedded OCI registry.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::logging;

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
    /// Refuse every write (405 UNSUPPORTED), for maintenance; reads go on.
    #[arg(long)]
    read_only: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics without authentication (and not on
    /// the main address). Without it, /metrics is on the main address, behind its auth.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Log lines as text (coloured only on a terminal) or JSON, one object per line.
    #[arg(long, value_enum, default_value = "text")]
    log_format: logging::Format,
}

pub fn run(args: ServeArgs, log: Option<&str>) -> anyhow::Result<()> {
    logging::init(log.unwrap_or("info"), args.log_format);
    let mut registry = hoist_registry::Registry::open(&args.root)
        .with_context(|| format!("storage root {}", args.root.display()))?
        .read_only(args.read_only)
        .metrics_endpoint(args.metrics_addr.is_none());
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
    let metrics = match args.metrics_addr {
        Some(a) => {
            let l =
                std::net::TcpListener::bind(a).with_context(|| format!("metrics address {a}"))?;
            let addr = l.local_addr().context("metrics local address")?;
            Some((l, addr))
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The first line is the one a script waits for (the port matters when --addr ends in
    // :0). One write, errors ignored: a reader that took its line and closed the pipe must
    // not stop the server.
    let mut banner = format!("hoist registry listening on {scheme}://{local}\n");
    if let Some((_, addr)) = &metrics {
        banner.push_str(&format!(
            "hoist registry metrics on http://{addr}/metrics\n"
        ));
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    tracing::info!(root = %args.root.display(), read_only = args.read_only, "serving");
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
        if let Some((l, addr)) = metrics {
            let r = registry.clone();
            tokio::spawn(async move {
                let stop = async {
                    let _ = tokio::signal::ctrl_c().await;
                };
                if let Err(e) = hoist_registry::serve_metrics(l, &r, stop).await {
                    tracing::error!(error = %e, %addr, "metrics address failed");
                }
            });
        }
        hoist_registry::serve(listener, &registry, tls.as_ref(), shutdown).await
    })
    .with_context(|| format!("serving on {local}"))?;
    Ok(())
}
