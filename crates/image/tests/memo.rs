//! Memoization, proven by counting: a layer written to several layouts, tags and tarballs
//! is read from its source once per form it is needed in and compressed once; a
//! docker-save tarball whose diff_ids are in the cache is resolved without its layers.

mod common;

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use common::{CountingSource, text};
use hoist_image::pipeline::Encoding;
use hoist_image::{
    Cache, Config, ConfigFile, FromUncompressed, Image, ImageManifest, Layer, Manifest, MediaType,
    Reference, RootFs, Store, layout, random, tarball, validate,
};
use hoist_testkit::counting::{Counting, CountingStore};

/// An image over counting sources.
#[derive(Debug)]
struct TestImage {
    config: Config,
    layers: Vec<Arc<dyn Layer>>,
    manifest: OnceLock<Manifest>,
}

impl Image for TestImage {
    fn manifest(&self) -> hoist_image::Result<Manifest> {
        if let Some(m) = self.manifest.get() {
            return Ok(m.clone());
        }
        let layers = self
            .layers
            .iter()
            .map(|l| l.descriptor())
            .collect::<hoist_image::Result<Vec<_>>>()?;
        let m = Manifest::from_image(&ImageManifest {
            schema_version: 2,
            media_type: Some(MediaType::OciManifest),
            artifact_type: None,
            config: self.config.descriptor(MediaType::OciConfig),
            layers,
            subject: None,
            annotations: Default::default(),
        })?;
        Ok(self.manifest.get_or_init(|| m).clone())
    }
    fn config(&self) -> hoist_image::Result<Config> {
        Ok(self.config.clone())
    }
    fn layers(&self) -> hoist_image::Result<Vec<Arc<dyn Layer>>> {
        Ok(self.layers.clone())
    }
}

#[test]
fn one_layer_to_three_layouts_three_tags_and_two_tarballs_is_compressed_once() {
    let store = Arc::new(CountingStore::new());
    let sources: Vec<CountingSource> = (0..2)
        .map(|i| CountingSource::new(text(2 << 20, 10 + i)).with_hint())
        .collect();
    let config = Config::from_file(&ConfigFile {
        architecture: "amd64".into(),
        os: "linux".into(),
        variant: None,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: sources.iter().map(|s| s.hint.clone().unwrap()).collect(),
        },
        history: Vec::new(),
        rest: Default::default(),
    });
    let image = TestImage {
        config,
        layers: sources
            .iter()
            .map(|s| {
                Arc::new(FromUncompressed::new(
                    s.clone(),
                    Encoding::gzip(),
                    MediaType::OciLayerGzip,
                    store.clone(),
                )) as Arc<dyn Layer>
            })
            .collect(),
        manifest: OnceLock::new(),
    };
    let len = sources[0].data.len() as u64;

    let dir = tempfile::tempdir().unwrap();
    let mut layouts = Vec::new();
    for l in 0..3 {
        let layout = layout::Layout::create(dir.path().join(format!("oci{l}"))).unwrap();
        for tag in ["v1", "v2", "latest"] {
            layout::write(&layout, &image, Some(tag)).unwrap();
        }
        layouts.push(layout);
    }
    for s in &sources {
        assert_eq!(s.counts.opens(), 1, "read from the source once");
        assert_eq!(s.counts.bytes(), len, "and each byte once");
    }
    assert_eq!(store.seals(), 2, "one compression per layer");

    let tag = Reference::parse("example.com/app:v1").unwrap();
    for t in 0..2 {
        tarball::write(
            dir.path().join(format!("img{t}.tar")),
            &image,
            std::slice::from_ref(&tag),
        )
        .unwrap();
    }
    // A tarball holds the uncompressed tar: each one reads it from the source (cheaper than
    // decompressing the sealed blob), and nothing is compressed again.
    assert_eq!(store.seals(), 2, "still one compression per layer");
    for s in &sources {
        assert_eq!(s.counts.opens(), 3);
    }

    // Every output is whole and correct.
    for layout in &layouts {
        let img = layout.image("v2").unwrap();
        assert_eq!(
            validate::image(img.as_ref(), Default::default())
                .unwrap()
                .layers,
            2
        );
    }
    for t in 0..2 {
        let img = tarball::Image::open(dir.path().join(format!("img{t}.tar")), &Default::default())
            .unwrap();
        assert_eq!(validate::image(&img, Default::default()).unwrap().layers, 2);
    }
}

/// Overwrite the content of every `*.tar` member of a docker-save tarball with garbage
/// of the same length, keeping the tar structure and config intact.
fn corrupt_layer_members(path: &std::path::Path) -> usize {
    let mut spans = Vec::new();
    let mut a = tar::Archive::new(File::open(path).unwrap());
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".tar") {
            spans.push((e.raw_file_position(), e.size()));
        }
    }
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    for (pos, size) in &spans {
        f.seek(SeekFrom::Start(*pos)).unwrap();
        f.write_all(&vec![b'#'; *size as usize]).unwrap();
    }
    spans.len()
}

#[test]
fn a_docker_save_tarball_in_the_cache_is_resolved_without_reading_its_layers() {
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("img.tar");
    let img = random::image(&random::Options {
        layers: 3,
        size: 1 << 20,
        mode: random::Mode::Text,
        seed: 42,
        ..Default::default()
    })
    .unwrap();
    tarball::write(
        &tar_path,
        img.as_ref(),
        &[Reference::parse("app:v1").unwrap()],
    )
    .unwrap();

    let cache_dir = dir.path().join("cache");
    let opts = |cache: &Arc<Cache>| tarball::Options {
        store: Some(cache.clone() as Arc<dyn Store>),
        ..Default::default()
    };
    let first = Arc::new(Cache::open(&cache_dir).unwrap());
    let oci1 = layout::Layout::create(dir.path().join("oci1")).unwrap();
    let d1 = layout::write(
        &oci1,
        &tarball::Image::open(&tar_path, &opts(&first)).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(first.stats().sealed, 3);

    // From now on, reading any layer of the tarball would give garbage.
    assert_eq!(corrupt_layer_members(&tar_path), 3);

    // A later process: every layer is found by the config's diff_ids.
    let second = Arc::new(Cache::open(&cache_dir).unwrap());
    let oci2 = layout::Layout::create(dir.path().join("oci2")).unwrap();
    let d2 = layout::write(
        &oci2,
        &tarball::Image::open(&tar_path, &opts(&second)).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(d1, d2, "the same manifest");
    assert_eq!(second.stats().hits, 3);
    assert_eq!(second.stats().sealed, 0);
    let report = validate::image(
        oci2.image(&d2.digest.to_string()).unwrap().as_ref(),
        Default::default(),
    )
    .unwrap();
    assert_eq!(report.layers, 3);

    // Without the cache the corruption is found: the layers really were not read above.
    let empty = Arc::new(Cache::open(dir.path().join("empty")).unwrap());
    let oci3 = layout::Layout::create(dir.path().join("oci3")).unwrap();
    let err = layout::write(
        &oci3,
        &tarball::Image::open(&tar_path, &opts(&empty)).unwrap(),
        None,
    )
    .unwrap_err();
    assert!(err.is_integrity(), "{err}");
    let mut buf = Vec::new();
    File::open(&tar_path)
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    assert!(buf.windows(64).any(|w| w.iter().all(|&b| b == b'#')));
}

#[test]
fn converting_compression_decompresses_once_and_seals_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = layout::Layout::create(dir.path().join("src")).unwrap();
    let img = random::image(&random::Options {
        layers: 2,
        size: 1 << 20,
        mode: random::Mode::Text,
        seed: 7,
        ..Default::default()
    })
    .unwrap();
    layout::write(&src, img.as_ref(), Some("v1")).unwrap();

    let cache_dir = dir.path().join("cache");
    let convert = |cache: &Arc<Cache>, dest: &str| {
        let source = src.image("v1").unwrap();
        let layers: Vec<Arc<Counting>> = source
            .layers()
            .unwrap()
            .into_iter()
            .map(|inner| Arc::new(Counting::new(inner, Arc::default())))
            .collect();
        let counted = TestImage {
            config: source.config().unwrap(),
            layers: layers.iter().map(|l| l.clone() as Arc<dyn Layer>).collect(),
            manifest: OnceLock::new(),
        };
        let zstd =
            hoist_image::pipeline::recompress(Arc::new(counted), &Encoding::zstd(), cache.clone())
                .unwrap();
        for d in dest.split(',') {
            let out = layout::Layout::create(dir.path().join(d)).unwrap();
            for tag in ["a", "b"] {
                layout::write(&out, zstd.as_ref(), Some(tag)).unwrap();
            }
            let back = out.image("b").unwrap();
            assert!(
                back.layers()
                    .unwrap()
                    .iter()
                    .all(|l| l.media_type().unwrap() == MediaType::OciLayerZstd)
            );
            assert_eq!(
                validate::image(back.as_ref(), Default::default())
                    .unwrap()
                    .layers,
                2
            );
        }
        let opened: Vec<(usize, usize)> = layers
            .iter()
            .map(|l| {
                (
                    l.uncompressed.load(Ordering::SeqCst),
                    l.compressed.load(Ordering::SeqCst),
                )
            })
            .collect();
        (opened, zstd.manifest().unwrap().digest().clone())
    };

    let first = Arc::new(Cache::open(&cache_dir).unwrap());
    let (opened, m1) = convert(&first, "z1,z2");
    assert_eq!(
        opened,
        vec![(1, 0), (1, 0)],
        "each gzip layer decompressed once"
    );
    assert_eq!(first.stats().sealed, 2, "and sealed once");

    let second = Arc::new(Cache::open(&cache_dir).unwrap());
    let (opened, m2) = convert(&second, "z3");
    assert_eq!(
        opened,
        vec![(0, 0), (0, 0)],
        "a later run does not even read them"
    );
    assert_eq!((second.stats().hits, second.stats().sealed), (2, 0));
    assert_eq!(m1, m2);
}

#[test]
fn an_index_converts_image_by_image_keeping_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(Cache::open(dir.path().join("cache")).unwrap());
    let idx = random::index(
        &random::Options {
            layers: 1,
            size: 256 << 10,
            mode: random::Mode::Text,
            seed: 3,
            ..Default::default()
        },
        3,
    )
    .unwrap();
    let src = layout::Layout::create(dir.path().join("src")).unwrap();
    layout::write_index(&src, idx.as_ref(), Some("multi")).unwrap();
    let source = match src.get("multi").unwrap() {
        hoist_image::Child::Index(i) => i,
        hoist_image::Child::Image(_) => panic!("expected an index"),
    };
    let zstd =
        hoist_image::pipeline::recompress_index(source.clone(), &Encoding::zstd(), cache.clone())
            .unwrap();
    assert_eq!(cache.stats().sealed, 3);
    let out = layout::Layout::create(dir.path().join("out")).unwrap();
    layout::write_index(&out, zstd.as_ref(), Some("multi")).unwrap();
    let report = validate::index(zstd.as_ref(), Default::default()).unwrap();
    assert_eq!((report.images, report.layers), (3, 3));
    let before = source.manifest().unwrap();
    let after = zstd.manifest().unwrap();
    let platforms = |m: &Manifest| {
        m.as_index()
            .unwrap()
            .manifests
            .iter()
            .map(|d| d.platform.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(platforms(&before), platforms(&after));
    assert_ne!(before.digest(), after.digest());
    // Every layer of every image is zstd now.
    for d in &after.as_index().unwrap().manifests {
        let hoist_image::Child::Image(img) = out.child(d).unwrap() else {
            panic!("expected images")
        };
        for l in img.layers().unwrap() {
            assert_eq!(l.media_type().unwrap(), MediaType::OciLayerZstd);
        }
    }
}
