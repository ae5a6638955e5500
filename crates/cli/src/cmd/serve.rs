//! `hoist serve`: run the embedded OCI registry.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::config::Settings;
use crate::logging;

/// Arguments of `hoist serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    settings: Settings,
    /// Read settings from this TOML file (keys are the flags' names: `addr`, `root`,
    /// `tls-cert`, ...); flags and HOIST_* variables win over it.
    #[arg(long, env = "HOIST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective settings (flags over environment over file over defaults) as
    /// TOML, secrets masked, and exit.
    #[arg(long)]
    print_config: bool,
}

/// The effective settings of `hoist serve` (or of anything else run on the registry's
/// storage, like `hoist registry gc`): flags and environment over the file over defaults.
pub fn settings(
    flags: Settings,
    config: Option<&PathBuf>,
    log: Option<&str>,
) -> anyhow::Result<Settings> {
    let file = match config {
        Some(p) => Settings::load(p)?,
        None => Settings::default(),
    };
    Settings {
        log: log.map(str::to_string),
        ..flags
    }
    .over(file)
    .resolve()
}

pub fn run(args: ServeArgs, log: Option<&str>) -> anyhow::Result<()> {
    let s = settings(args.settings, args.config.as_ref(), log)?;
    if args.print_config {
        print!("{}", s.to_toml_masked());
        return Ok(());
    }
    let (addr, root) = (s.addr.expect("resolved"), s.root.clone().expect("resolved"));
    let read_only = s.read_only.unwrap_or(false);
    logging::init(
        s.log.as_deref().unwrap_or_default(),
        s.log_format.unwrap_or_default(),
    );
    let mut registry = hoist_registry::Registry::open(&root)
        .with_context(|| format!("storage root {}", root.display()))?
        .read_only(read_only)
        .metrics_endpoint(s.metrics_addr.is_none());
    if let Some(h) = &s.htpasswd {
        let users = hoist_registry::Htpasswd::load(h).map_err(anyhow::Error::msg)?;
        registry = registry.with_auth(users);
    }
    let tls = match (s.tls_cert, s.tls_key) {
        (Some(cert), Some(key)) => Some(hoist_registry::Tls { cert, key }),
        _ => None,
    };
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr().context("local address")?;
    let metrics = match s.metrics_addr {
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
    tracing::info!(root = %root.display(), read_only, "serving");
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
