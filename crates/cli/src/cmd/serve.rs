//! `hoist serve`: run the embedded OCI registry.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::config::{MIN_SECRET, Settings, Storage};
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

/// The garbage collection the settings ask for.
pub fn gc_options(s: &Settings, dry_run: bool) -> hoist_registry::GcOptions {
    hoist_registry::GcOptions {
        grace: s.gc_grace.map_or(hoist_registry::DEFAULT_GRACE, |g| g.0),
        delete_untagged: s.delete_untagged.unwrap_or(false),
        dry_run,
    }
}

pub fn run(args: ServeArgs, log: Option<&str>) -> anyhow::Result<()> {
    let s = settings(args.settings, args.config.as_ref(), log)?;
    if args.print_config {
        print!("{}", s.to_toml_masked());
        return Ok(());
    }
    let addr = s.addr.expect("resolved");
    let read_only = s.read_only.unwrap_or(false);
    logging::init(
        s.log.as_deref().unwrap_or_default(),
        s.log_format.unwrap_or_default(),
    );
    let storage = s.storage()?;
    let mut object_store = None;
    let mut registry = match &storage {
        Storage::Fs(root) => hoist_registry::Registry::open(root)
            .with_context(|| format!("storage root {}", root.display()))?,
        Storage::S3(config) => {
            if s.secret.is_none() {
                bail!(
                    "storage {}: several nodes can serve one bucket, and each must sign upload \
                     locations with the same secret: give --secret or HOIST_SECRET (at least \
                     {MIN_SECRET} characters, e.g. from `openssl rand -hex 32`)",
                    s.storage.as_deref().unwrap_or_default()
                );
            }
            let store = hoist_registry::ObjectStorage::s3(config)?;
            object_store = Some(store.clone());
            hoist_registry::Registry::with_storage(store)
        }
    };
    if let Some(secret) = &s.secret {
        registry = registry.secret(secret.as_bytes());
    }
    let mut registry = registry
        .read_only(read_only)
        .metrics_endpoint(s.metrics_addr.is_none());
    if let Some(h) = &s.htpasswd {
        let users = hoist_registry::Htpasswd::load(h).map_err(anyhow::Error::msg)?;
        registry = registry.with_auth(users);
    }
    let tls = match (s.tls_cert.clone(), s.tls_key.clone()) {
        (Some(cert), Some(key)) => Some(hoist_registry::Tls { cert, key }),
        _ => None,
    };
    let timeouts = hoist_registry::Timeouts {
        header: s.header_timeout.expect("resolved").0,
        idle: s.idle_timeout.expect("resolved").0,
        body: s.body_timeout.expect("resolved").0,
    };
    let grace = s.shutdown_grace.expect("resolved").0;
    let mut builder = hoist_registry::Server::builder(registry.clone())
        .timeouts(timeouts)
        .shutdown_grace(grace)
        .upload_ttl(s.upload_ttl.expect("resolved").0);
    if let Some(t) = tls {
        builder = builder.tls(t);
    }
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
    // Bound and TLS files loaded before anything says "listening".
    let server = builder.bind(listener)?;
    let local = server.local_addr();
    let metrics = match s.metrics_addr {
        Some(a) => {
            let l =
                std::net::TcpListener::bind(a).with_context(|| format!("metrics address {a}"))?;
            let m = hoist_registry::Server::builder(registry.clone())
                .metrics_only()
                .timeouts(timeouts)
                .shutdown_grace(grace)
                .bind(l)
                .with_context(|| format!("metrics address {a}"))?;
            Some(m)
        }
        None => None,
    };
    // One async thread for the network; hashing and disk I/O run on tokio's blocking
    // threads, a bounded step at a time. Measured with bench/registry.sh: a multi-threaded
    // scheduler only added wake-ups between its workers (about 10% more server CPU).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let storage_name = s.storage.clone().unwrap_or_default();
    if let Some(object_store) = &object_store {
        // A wrong endpoint, bucket or credentials fail here, once, with the store's answer.
        let probe = rt.block_on(async {
            tokio::time::timeout(hoist_registry::READY_TIMEOUT, registry.storage().probe()).await
        });
        probe
            .map_err(|_| anyhow::anyhow!("no answer within {:?}", hoist_registry::READY_TIMEOUT))
            .and_then(|r| r.map_err(anyhow::Error::from))
            .with_context(|| format!("storage {storage_name}: a test write and read failed"))?;
        let checked = rt.block_on(async {
            tokio::time::timeout(
                hoist_registry::READY_TIMEOUT,
                object_store.check_conditional_writes(),
            )
            .await
        });
        checked
            .map_err(|_| anyhow::anyhow!("no answer within {:?}", hoist_registry::READY_TIMEOUT))
            .and_then(|r| r.map_err(anyhow::Error::from))
            .with_context(|| format!("storage {storage_name}: checking conditional writes"))?;
    }
    // The first line is the one a script waits for (the port matters when --addr ends in
    // :0). One write, errors ignored: a reader that took its line and closed the pipe must
    // not stop the server.
    let mut banner = format!(
        "hoist registry listening on {}://{local}\n",
        server.scheme()
    );
    if let Some(m) = &metrics {
        banner.push_str(&format!(
            "hoist registry metrics on http://{}/metrics\n",
            m.local_addr()
        ));
    }
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }
    tracing::info!(storage = %storage_name, read_only, "serving");
    rt.block_on(async move {
        // SIGTERM (what orchestrators send) and SIGINT both drain.
        let stop = tokio::sync::watch::channel(false);
        let (tx, rx) = stop;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            let sig = tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            tracing::info!(signal = sig, grace_s = grace.as_secs_f64(), "shutting down");
            let _ = tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Some(m) = metrics {
            let addr = m.local_addr();
            let stop = stopped(rx.clone());
            tokio::spawn(async move {
                if let Err(e) = m.serve(stop).await {
                    tracing::error!(error = %e, %addr, "metrics address failed");
                }
            });
        }
        if let Some(interval) = s.gc_interval {
            let r = registry.clone();
            let opts = gc_options(&s, false);
            tracing::info!(interval = %interval, grace = ?opts.grace, delete_untagged = opts.delete_untagged, "garbage collection scheduled");
            // Dropped with the runtime when serving ends.
            tokio::spawn(async move { r.collect_garbage_every(interval.0, opts).await });
        }
        server.serve(stopped(rx)).await
    })
    .with_context(|| format!("serving on {local}"))?;
    Ok(())
}
