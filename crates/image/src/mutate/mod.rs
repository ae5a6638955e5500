//! Image changes without waste: config edits ([`Edits`], [`edit`]), appended layers
//! ([`append`], from a directory or a tar file), [`flatten`], [`export`] and [`rebase`].
//!
//! Every result is a lazy [`Image`] wrapper. The layers a change does not touch are the
//! base's own `Arc<dyn Layer>`s: a sink asks them for their descriptors (field reads for
//! layout and registry layers) and copies, mounts or HEADs them; nothing is decompressed,
//! recompressed or re-uploaded. New layers are [`FromUncompressed`](crate::FromUncompressed)
//! layers, sealed once through a [`Store`] (the content cache or a spool).
//!
//! Results are reproducible: a directory becomes a tar with sorted entries, fixed owners
//! and the mtime of [`DirOptions::mtime`]; the same inputs and the same `time` give the same
//! digests.
//!
//! ```
//! use std::sync::Arc;
//! use hoist_image::{mutate, Image, MemoryStore};
//! let base: Arc<dyn Image> = mutate::scratch(None).unwrap();
//! let mut edits = mutate::Edits::default();
//! edits.env.push(mutate::parse_env("PATH=/bin").unwrap());
//! edits.time = Some(0);
//! let img = mutate::edit(base, &edits).unwrap();
//! assert_eq!(img.config().unwrap().parsed().rest["config"]["Env"][0], "PATH=/bin");
//! ```

mod export;
mod gc;
pub mod index;
mod layers;
mod pipe;
mod rebase;
mod time;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::image::Image;
use crate::layer::Layer;
use crate::manifest::{Config, ConfigFile, Platform, RootFs};
use crate::media_type::MediaType;
use crate::partial::Assembled;

pub use export::{Merge, export, flatten};
pub use gc::{GcStats, gc};
pub use layers::{DirOptions, DirSource, TarSource, check_tar, layer_from_path};
pub use rebase::rebase;
pub use time::{format_rfc3339, parse_time};

/// The platform of [`scratch`] when none is given.
pub const SCRATCH_PLATFORM: &str = "linux/amd64";

/// An image assembled from a (changed) config and layers, described with Docker schema 2
/// types when `docker`, with the manifest `annotations` (OCI only).
pub(crate) fn assemble(
    config: ConfigFile,
    layers: Vec<Arc<dyn Layer>>,
    docker: bool,
    annotations: BTreeMap<String, String>,
) -> Result<Assembled> {
    Ok(Assembled::new(Config::from_file(&config), layers)?
        .docker(docker)
        .annotations(annotations))
}

/// An image with no layers: the base of `hoist append scratch`. `platform` defaults to
/// [`SCRATCH_PLATFORM`].
pub fn scratch(platform: Option<&Platform>) -> Result<Arc<Assembled>> {
    let p = match platform {
        Some(p) => p.clone(),
        None => Platform::parse(SCRATCH_PLATFORM)?,
    };
    let mut rest = Map::new();
    rest.insert("config".into(), json!({}));
    let config = ConfigFile {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        },
        history: Vec::new(),
        rest,
    };
    Ok(Arc::new(assemble(
        config,
        Vec::new(),
        false,
        BTreeMap::new(),
    )?))
}

/// Config and manifest edits, as `hoist mutate` takes them. Empty fields change nothing.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    /// Labels to set (`config.Labels`).
    pub labels: Vec<(String, String)>,
    /// Manifest annotations to set.
    pub annotations: Vec<(String, String)>,
    /// Environment variables to set, replacing a variable of the same name.
    pub env: Vec<(String, String)>,
    /// The entrypoint (an empty list clears it).
    pub entrypoint: Option<Vec<String>>,
    /// The command (an empty list clears it).
    pub cmd: Option<Vec<String>>,
    /// The user.
    pub user: Option<String>,
    /// The working directory.
    pub workdir: Option<String>,
    /// Ports to expose: `80`, `80/tcp`, `53/udp`.
    pub expose: Vec<String>,
    /// The platform the config claims.
    pub platform: Option<Platform>,
    /// Seconds since the epoch for `created` and every history entry's `created`.
    pub time: Option<u64>,
}

impl Edits {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
            && self.annotations.is_empty()
            && self.env.is_empty()
            && self.entrypoint.is_none()
            && self.cmd.is_none()
            && self.user.is_none()
            && self.workdir.is_none()
            && self.expose.is_empty()
            && self.platform.is_none()
            && self.time.is_none()
    }
}

/// Parse `KEY=VALUE` (an environment variable); the value may be empty, the key may not.
pub fn parse_env(s: &str) -> Result<(String, String)> {
    parse_pair(s, "environment variable")
}

/// Parse `KEY=VALUE` (a label or an annotation).
pub fn parse_pair(s: &str, what: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::invalid_input(
            format!("{what} {s:?}"),
            "expected KEY=VALUE",
        )),
    }
}

/// Check a port for `expose`: `PORT[/tcp|udp|sctp]`, PORT 1-65535. Returns `PORT/PROTO`.
pub fn parse_port(s: &str) -> Result<String> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let ok_port = port.parse::<u16>().is_ok_and(|p| p != 0);
    if !ok_port || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(Error::invalid_input(
            format!("port {s:?}"),
            "expected PORT[/tcp|udp|sctp] with PORT in 1..=65535",
        ));
    }
    Ok(format!("{port}/{proto}"))
}

/// Is the base a Docker schema 2 image (so new parts are described with Docker types)?
fn is_docker(base: &dyn Image) -> Result<bool> {
    Ok(base.manifest()?.media_type() == &MediaType::DockerManifest)
}

fn base_annotations(base: &dyn Image) -> Result<BTreeMap<String, String>> {
    Ok(base
        .manifest()?
        .as_image()
        .map(|m| m.annotations.clone())
        .unwrap_or_default())
}

/// `base` with its config (and manifest annotations) edited. The layers are the base's
/// layer objects, untouched: none is read.
pub fn edit(base: Arc<dyn Image>, edits: &Edits) -> Result<Arc<dyn Image>> {
    let mut config = base.config()?.parsed().clone();
    apply_edits(&mut config, edits)?;
    let mut annotations = base_annotations(base.as_ref())?;
    for (k, v) in &edits.annotations {
        annotations.insert(k.clone(), v.clone());
    }
    let docker = is_docker(base.as_ref())?;
    if docker && !edits.annotations.is_empty() {
        return Err(Error::invalid_input(
            "annotations",
            "the image is a Docker schema 2 manifest, which has no annotations; convert it to OCI first (hoist copy)",
        ));
    }
    Ok(Arc::new(assemble(
        config,
        base.layers()?,
        docker,
        annotations,
    )?))
}

/// Apply `edits` to a parsed config.
pub fn apply_edits(config: &mut ConfigFile, edits: &Edits) -> Result<()> {
    let ports = edits
        .expose
        .iter()
        .map(|p| parse_port(p))
        .collect::<Result<Vec<_>>>()?;
    if let Some(p) = &edits.platform {
        config.os = p.os.clone();
        config.architecture = p.architecture.clone();
        config.variant = p.variant.clone();
    }
    let c = config
        .rest
        .entry("config")
        .or_insert_with(|| Value::Object(Map::new()));
    if !c.is_object() {
        *c = Value::Object(Map::new());
    }
    let c = c.as_object_mut().expect("made an object above");
    if !edits.labels.is_empty() {
        let labels = object_field(c, "Labels");
        for (k, v) in &edits.labels {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
    }
    if !edits.env.is_empty() {
        let mut env: Vec<String> = c
            .get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in &edits.env {
            let entry = format!("{k}={v}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) == k)
            {
                Some(e) => *e = entry,
                None => env.push(entry),
            }
        }
        c.insert("Env".into(), json!(env));
    }
    for (key, v) in [("Entrypoint", &edits.entrypoint), ("Cmd", &edits.cmd)] {
        if let Some(v) = v {
            c.insert(
                key.into(),
                if v.is_empty() { Value::Null } else { json!(v) },
            );
        }
    }
    if let Some(u) = &edits.user {
        c.insert("User".into(), json!(u));
    }
    if let Some(w) = &edits.workdir {
        c.insert("WorkingDir".into(), json!(w));
    }
    if !ports.is_empty() {
        let exposed = object_field(c, "ExposedPorts");
        for p in ports {
            exposed.insert(p, json!({}));
        }
    }
    if let Some(t) = edits.time {
        set_time(config, t);
    }
    Ok(())
}

fn object_field<'a>(c: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = c.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("made an object above")
}

/// Set `created` and every history entry's `created` to `t` (seconds since the epoch).
pub fn set_time(config: &mut ConfigFile, t: u64) {
    let s = format_rfc3339(t);
    config.rest.insert("created".into(), json!(s));
    for h in &mut config.history {
        if let Some(o) = h.as_object_mut() {
            o.insert("created".into(), json!(s));
        }
    }
}

/// A history entry for a new layer (or, with `empty_layer`, for a config-only step).
pub fn history_entry(created_by: &str, time: Option<u64>, empty_layer: bool) -> Value {
    let mut o = Map::new();
    if let Some(t) = time {
        o.insert("created".into(), json!(format_rfc3339(t)));
    }
    o.insert("created_by".into(), json!(created_by));
    if empty_layer {
        o.insert("empty_layer".into(), json!(true));
    }
    Value::Object(o)
}

/// Is this history entry one without a layer?
pub fn is_empty_layer(h: &Value) -> bool {
    h.get("empty_layer").and_then(Value::as_bool) == Some(true)
}

/// An appended layer with the history entry that describes it.
#[derive(Debug, Clone)]
pub struct Addendum {
    /// The layer.
    pub layer: Arc<dyn Layer>,
    /// `created_by` of its history entry.
    pub created_by: String,
}

/// `base` with `add` on top. The base's layers are its own layer objects (never read);
/// each new layer is asked for its diff_id (sealing it once, if it is not yet).
/// `time` stamps the new history entries and `created`.
pub fn append(
    base: Arc<dyn Image>,
    add: Vec<Addendum>,
    time: Option<u64>,
) -> Result<Arc<dyn Image>> {
    let mut config = base.config()?.parsed().clone();
    let mut layers = base.layers()?;
    let docker = is_docker(base.as_ref())?;
    for a in add {
        let mt = a.layer.media_type()?;
        if docker && !mt.is_docker() {
            return Err(Error::invalid_input(
                format!("layer for {}", a.created_by),
                format!(
                    "a {} layer cannot go in a Docker schema 2 image",
                    crate::quote(mt.as_str())
                ),
            ));
        }
        config.rootfs.diff_ids.push(a.layer.diff_id()?);
        config
            .history
            .push(history_entry(&a.created_by, time, false));
        layers.push(a.layer);
    }
    if let Some(t) = time {
        config
            .rest
            .insert("created".into(), json!(format_rfc3339(t)));
    }
    Ok(Arc::new(assemble(
        config,
        layers,
        docker,
        base_annotations(base.as_ref())?,
    )?))
}

/// The media type new layers of `base` get for `compression`: Docker's gzip type in a
/// Docker schema 2 image (which has no other), OCI otherwise.
pub fn layer_media_type(
    base: &dyn Image,
    compression: crate::media_type::Compression,
) -> Result<MediaType> {
    if is_docker(base)? {
        if compression != crate::media_type::Compression::Gzip {
            return Err(Error::invalid_input(
                format!("{compression} layers"),
                "a Docker schema 2 image holds gzip layers only; use gzip or convert the base to OCI (hoist copy)",
            ));
        }
        Ok(MediaType::DockerLayerGzip)
    } else {
        Ok(MediaType::oci_layer(compression))
    }
}
