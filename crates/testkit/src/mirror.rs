//! A source registry for mirror and sync tests, written through the raw distribution
//! API (not hoist's push engine, so what is checked does not depend on what is tested):
//!
//! - `repos` repositories `PREFIX/app0 ...` with the same tags each, every image two
//!   shared base layers and one layer of its own (so base layers are shared by all);
//! - `PREFIX/multi:v1`, an index of two platforms;
//! - signature-like referrer artifacts, as cosign and notation write them (a manifest
//!   with `artifactType`, an empty config, one layer, and `subject`): one on the last tag
//!   of `app0`, an SBOM on the index, a signature of that SBOM (a referrer of a
//!   referrer), and one on an image of the index. On a registry without the referrers
//!   API they are listed under the tag schema's `sha256-<hex>` tags as well, as those
//!   tools do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hoist_image::mutate::{self, Addendum};
use hoist_image::random::{self, Mode};
use hoist_image::{Digest, Image, ImageIndex, Manifest};
use serde_json::json;

use crate::api;

/// The artifact type of the test signatures.
pub const SIGNATURE: &str = "application/vnd.example.signature.v1+json";
/// The artifact type of the test SBOM.
pub const SBOM: &str = "application/vnd.example.sbom.v1+json";

/// What to write.
#[derive(Debug, Clone)]
pub struct Options {
    /// Repositories `PREFIX/app<i>`.
    pub repos: usize,
    /// The tags of each.
    pub tags: Vec<String>,
    /// The repositories' prefix.
    pub prefix: String,
    /// Bytes of content per layer (text, compressed about 3x).
    pub layer_size: u64,
    /// Also the index `PREFIX/multi:v1` and the referrers.
    pub extras: bool,
    /// The registry has the referrers API (else the referrers are listed under the
    /// fallback tags too).
    pub referrers_api: bool,
    /// Give the last tag of `app0` one more layer of this many incompressible bytes.
    pub big_layer: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            repos: 10,
            tags: ["v1.0.0", "v1.1.0", "v2.0.0"].map(String::from).to_vec(),
            prefix: "team".into(),
            layer_size: 20_000,
            extras: true,
            referrers_api: true,
            big_layer: None,
        }
    }
}

/// One referrer written.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// Its repository.
    pub repo: String,
    /// The manifest it refers to.
    pub subject: Digest,
    /// Its own digest.
    pub digest: Digest,
    /// Its artifact type.
    pub artifact_type: String,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// Every tag: (repository, tag, manifest digest), repositories and tags sorted.
    pub images: Vec<(String, String, Digest)>,
    /// The referrers.
    pub referrers: Vec<Referrer>,
    /// Every distinct blob (configs, layers, artifact blobs) with its size.
    pub blobs: BTreeMap<Digest, u64>,
}

impl Source {
    /// The distinct repositories.
    pub fn repos(&self) -> BTreeSet<String> {
        self.images.iter().map(|(r, _, _)| r.clone()).collect()
    }
}

struct Writer {
    c: reqwest::Client,
    base: String,
    rt: tokio::runtime::Runtime,
    out: Source,
}

impl Writer {
    fn blob(&mut self, repo: &str, bytes: &[u8]) -> Digest {
        let d = self
            .rt
            .block_on(api::upload_blob(&self.c, &self.base, repo, bytes));
        self.out.blobs.insert(d.clone(), bytes.len() as u64);
        d
    }

    fn manifest(&self, repo: &str, reference: &str, m: &Manifest) {
        self.rt.block_on(api::put_manifest(
            &self.c,
            &self.base,
            repo,
            reference,
            m.media_type().as_str(),
            m.raw(),
        ));
    }

    fn image(&mut self, repo: &str, reference: &str, img: &dyn Image) -> Manifest {
        let config = img.config().unwrap();
        self.blob(repo, config.raw());
        for l in img.layers().unwrap() {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut l.compressed().unwrap(), &mut bytes).unwrap();
            self.blob(repo, &bytes);
        }
        let m = img.manifest().unwrap();
        self.manifest(repo, reference, &m);
        m
    }

    /// A referrer of `subject` in `repo`: empty config, one layer, `subject`.
    fn referrer(
        &mut self,
        repo: &str,
        subject: &Manifest,
        artifact_type: &str,
        n: usize,
    ) -> Manifest {
        let empty = self.blob(repo, b"{}");
        let payload = format!("{artifact_type} #{n} of {}", subject.digest());
        let layer = self.blob(repo, payload.as_bytes());
        let raw = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": layer.to_string(), "size": payload.len()}],
            "subject": {"mediaType": subject.media_type().as_str(), "digest": subject.digest().to_string(), "size": subject.raw().len()},
            "annotations": {"org.example.n": n.to_string()},
        })
        .to_string();
        let m = Manifest::from_raw(raw.into_bytes(), None).unwrap();
        self.manifest(repo, &m.digest().to_string(), &m);
        self.out.referrers.push(Referrer {
            repo: repo.to_string(),
            subject: subject.digest().clone(),
            digest: m.digest().clone(),
            artifact_type: artifact_type.to_string(),
        });
        m
    }
}

/// Write the source at `base` (`http://HOST:PORT`); blocking.
pub fn populate(base: &str, opts: &Options) -> Source {
    let mut w = Writer {
        c: reqwest::Client::new(),
        base: base.to_string(),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        out: Source::default(),
    };
    let layer = |layers, size, mode, seed| {
        random::image(&random::Options {
            layers,
            size,
            mode,
            seed,
            ..Default::default()
        })
        .unwrap()
    };
    let base_image: Arc<dyn Image> = layer(2, opts.layer_size, Mode::Text, 1);
    let mut last_app0 = None;
    for i in 0..opts.repos {
        let repo = format!("{}/app{i}", opts.prefix);
        for (j, tag) in opts.tags.iter().enumerate() {
            let own = layer(1, opts.layer_size, Mode::Text, 1000 + (i * 100 + j) as u64);
            let mut add = vec![Addendum {
                layer: own.layers().unwrap()[0].clone(),
                created_by: format!("{repo}:{tag}"),
            }];
            let last = j + 1 == opts.tags.len();
            if let (Some(size), 0, true) = (opts.big_layer, i, last) {
                let big = layer(1, size, Mode::Random, 7);
                add.push(Addendum {
                    layer: big.layers().unwrap()[0].clone(),
                    created_by: "big".into(),
                });
            }
            let img = mutate::append(base_image.clone(), add, Some(0)).unwrap();
            let m = w.image(&repo, tag, img.as_ref());
            if i == 0 && last {
                last_app0 = Some((repo.clone(), m.clone()));
            }
            w.out
                .images
                .push((repo.clone(), tag.clone(), m.digest().clone()));
        }
    }
    if opts.extras {
        let repo = format!("{}/multi", opts.prefix);
        let ix = random::index(
            &random::Options {
                layers: 1,
                size: opts.layer_size,
                mode: Mode::Text,
                seed: 50,
                ..Default::default()
            },
            2,
        )
        .unwrap();
        let mut children = Vec::new();
        for img in ix.images() {
            children.push(w.image(
                &repo,
                &img.manifest().unwrap().digest().to_string(),
                img.as_ref(),
            ));
        }
        let top = ix.manifest().unwrap();
        w.manifest(&repo, "v1", &top);
        w.out
            .images
            .push((repo.clone(), "v1".into(), top.digest().clone()));
        let (app, signed) = last_app0.expect("at least one repository");
        w.referrer(&app, &signed, SIGNATURE, 1);
        let sbom = w.referrer(&repo, &top, SBOM, 2);
        w.referrer(&repo, &sbom, SIGNATURE, 3);
        w.referrer(&repo, &children[0], SIGNATURE, 4);
        if !opts.referrers_api {
            fallback_tags(&w);
        }
    }
    w.out.images.sort();
    w.out
}

/// The referrers tag schema by hand: per subject, an index of its referrers under
/// `sha256-<hex>`.
fn fallback_tags(w: &Writer) {
    let mut by: BTreeMap<(String, Digest), Vec<serde_json::Value>> = BTreeMap::new();
    for r in &w.out.referrers {
        let raw = w.rt.block_on(async {
            w.c.get(format!("{}/v2/{}/manifests/{}", w.base, r.repo, r.digest))
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        });
        by.entry((r.repo.clone(), r.subject.clone()))
            .or_default()
            .push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": r.digest.to_string(),
                "size": raw.len(),
                "artifactType": r.artifact_type,
            }));
    }
    for ((repo, subject), list) in by {
        let raw = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": list,
        })
        .to_string();
        let tag = format!("sha256-{}", subject.hex());
        w.rt.block_on(api::put_manifest(
            &w.c,
            &w.base,
            &repo,
            &tag,
            "application/vnd.oci.image.index.v1+json",
            raw.as_bytes(),
        ));
    }
}
