//! `hoist demo`: the main job in one command, with nothing to set up. Starts the embedded
//! registry on an ephemeral loopback port with a temporary root, makes a seeded image,
//! pushes it cold, re-pushes it, pushes a second tag, validates what the registry
//! serves, prints a table of times and throughputs, and cleans up.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hoist_image::Cache;
use hoist_image::Child;
use hoist_image::random::{self, Mode};
use hoist_remote::push::{self, NoProgress};
use hoist_remote::{Client, Repository, Target, validate};

use crate::progress::size;

/// Arguments of `hoist demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Layers in the demo image.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Bytes of file content per layer; suffixes k, M, G.
    #[arg(long, default_value = "16M", value_parser = crate::cmd::random::parse_size)]
    pub size: u64,
    /// Seed of the image.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

struct Row {
    step: &'static str,
    took: Duration,
    what: String,
    bytes: Option<u64>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.layers == 0 {
        anyhow::bail!("invalid --layers 0: expected at least 1");
    }
    let tmp = tempfile::Builder::new()
        .prefix("hoist-demo-")
        .tempdir()
        .context("creating a temporary directory")?;
    let registry = hoist_registry::Registry::open(tmp.path().join("registry"))
        .context("opening the demo registry's storage")?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let cache = Arc::new(Cache::open(tmp.path().join("cache"))?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        hoist_registry::serve(listener, &registry, None, async {
            let _ = stopped.await;
        })
        .await
    });

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "hoist demo: embedded registry on http://{addr}, image of {} x {} text layers (seed {})",
        args.layers,
        size(args.size),
        args.seed
    )?;
    let image = random::image(&random::Options {
        layers: args.layers,
        size: args.size,
        mode: Mode::Text,
        seed: args.seed,
        store: Some(cache.clone()),
        encoding: hoist_image::pipeline::Encoding::gzip()
            .level(hoist_image::pipeline::DEFAULT_PUSH_GZIP_LEVEL),
    })?;
    let repo = Repository::new(addr.to_string(), "demo/app")?;
    let v1 = Target::tagged(repo.clone(), "v1")?;
    let v2 = Target::tagged(repo.clone(), "v2")?;
    let client = Client::builder().build()?;
    let opts = push::Options::default();
    let mut rows = Vec::new();

    let result: anyhow::Result<()> = rt.block_on(async {
        let src = Child::Image(image.clone());
        let t = Instant::now();
        let r = push::push(
            &client,
            src.clone(),
            std::slice::from_ref(&v1),
            &opts,
            Arc::new(NoProgress),
        )
        .await
        .context("cold push")?;
        let input = args.size * args.layers as u64;
        rows.push(Row {
            step: "cold push",
            took: t.elapsed(),
            what: format!(
                "{} blobs, {} sealed to {}",
                r.blobs_uploaded,
                size(input),
                size(r.bytes_uploaded)
            ),
            bytes: Some(input),
        });
        let digest = r.pushed[0].digest.clone();

        let t = Instant::now();
        let r = push::push(
            &client,
            src.clone(),
            std::slice::from_ref(&v1),
            &opts,
            Arc::new(NoProgress),
        )
        .await
        .context("re-push")?;
        rows.push(Row {
            step: "re-push",
            took: t.elapsed(),
            what: format!(
                "{} blobs present, {} uploaded, {} manifest PUTs",
                r.blobs_present, r.blobs_uploaded, r.manifests_put
            ),
            bytes: None,
        });

        let t = Instant::now();
        let r = push::push(
            &client,
            src,
            std::slice::from_ref(&v2),
            &opts,
            Arc::new(NoProgress),
        )
        .await
        .context("second tag")?;
        rows.push(Row {
            step: "second tag",
            took: t.elapsed(),
            what: format!(
                "{} manifest PUT, {} uploaded",
                r.manifests_put, r.blobs_uploaded
            ),
            bytes: None,
        });

        let t = Instant::now();
        let c = validate(&client, &repo, "v2", Default::default())
            .await
            .context("validating what the registry serves")?;
        anyhow::ensure!(
            c.digest.as_ref() == Some(&digest),
            "the registry serves {:?} for v2, pushed {digest}",
            c.digest
        );
        rows.push(Row {
            step: "validate",
            took: t.elapsed(),
            what: format!(
                "{} layers: digests, sizes and diff_ids recomputed from {}",
                c.layers,
                size(c.bytes)
            ),
            bytes: Some(c.bytes),
        });
        writeln!(out, "pushed {v1}@{digest} and {v2}")?;
        Ok(())
    });
    let _ = stop.send(());
    let _ = rt.block_on(server);
    result?;

    writeln!(
        out,
        "{:<12} {:>9} {:>12}  what",
        "step", "time", "throughput"
    )?;
    for r in &rows {
        let tp = match r.bytes {
            Some(b) if r.took.as_secs_f64() > 0.0 => {
                format!("{}/s", size((b as f64 / r.took.as_secs_f64()) as u64))
            }
            _ => "-".to_string(),
        };
        writeln!(
            out,
            "{:<12} {:>7.3} s {:>12}  {}",
            r.step,
            r.took.as_secs_f64(),
            tp,
            r.what
        )?;
    }
    drop(tmp);
    Ok(())
}
