//! The content cache: hits across instances (processes), atomic concurrent sealing,
//! corrupt entries evicted and recomputed, LRU size limit, the in-memory store.

mod common;

use std::fs;
use std::io::Read;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{CountingSource, text};
use hoist_image::pipeline::Encoding;
use hoist_image::{
    Cache, Digest, FromUncompressed, Layer, MediaType, MemoryStore, Store, UncompressedSource,
};

fn layer(src: CountingSource, store: Arc<dyn Store>) -> FromUncompressed<CountingSource> {
    FromUncompressed::new(src, Encoding::gzip(), MediaType::OciLayerGzip, store)
}

fn read_all(l: &dyn Layer) -> Vec<u8> {
    let mut v = Vec::new();
    l.compressed().unwrap().read_to_end(&mut v).unwrap();
    v
}

#[test]
fn a_second_process_finds_the_layer_without_reading_or_compressing_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = CountingSource::new(text(3 << 20, 1)).with_hint();

    let first = Arc::new(Cache::open(dir.path()).unwrap());
    let l1 = layer(src.clone(), first.clone());
    let sealed = l1.sealed().unwrap();
    assert_eq!(src.counts.opens(), 1);
    assert_eq!(first.stats().sealed, 1);
    let blob = read_all(&l1);
    assert_eq!(Digest::sha256(&blob), sealed.digest);

    // A new Cache on the same directory stands for a later process.
    let second = Arc::new(Cache::open(dir.path()).unwrap());
    let l2 = layer(src.clone(), second.clone());
    assert_eq!(l2.sealed().unwrap(), sealed);
    assert_eq!(read_all(&l2), blob);
    assert_eq!(src.counts.opens(), 1, "the source was not read again");
    assert_eq!(second.stats().hits, 1);
    assert_eq!(second.stats().sealed, 0);
    assert_eq!(
        second.blob(&sealed.digest).map(|(_, n)| n),
        Some(sealed.size)
    );

    // Another level is another entry: compressed again.
    let l3 = FromUncompressed::new(
        src.clone(),
        Encoding::gzip().level(1),
        MediaType::OciLayerGzip,
        second.clone(),
    );
    assert_ne!(l3.digest().unwrap(), sealed.digest);
    assert_eq!(src.counts.opens(), 2);
    let entries = second.entries().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(
        entries
            .iter()
            .any(|e| e.encoding == "gzip.2-6" && e.sealed == sealed)
    );
}

#[test]
fn concurrent_sealing_of_one_layer_never_corrupts_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = text(4 << 20, 2);
    for round in 0..3 {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (dir, data, barrier) = (dir.path().to_owned(), data.clone(), barrier.clone());
                std::thread::spawn(move || {
                    // Each thread has its own Cache, like a separate process.
                    let cache = Cache::open(dir).unwrap();
                    barrier.wait();
                    let enc = Encoding::gzip().threads(1 + round % 2);
                    cache
                        .seal(
                            Box::new(std::io::Cursor::new(data)),
                            &enc,
                            MediaType::OciLayerGzip,
                        )
                        .unwrap()
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results[0], results[1]);
        let path = Cache::open(dir.path())
            .unwrap()
            .blob(&results[0].digest)
            .unwrap()
            .0;
        let blob = fs::read(path).unwrap();
        assert_eq!(Digest::sha256(&blob), results[0].digest);
    }
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    let fresh = Cache::open(dir.path()).unwrap();
    assert_eq!(fresh.entries().unwrap().len(), 1);
}

#[test]
fn a_corrupt_entry_is_evicted_and_recomputed_never_used() {
    let dir = tempfile::tempdir().unwrap();
    let src = CountingSource::new(text(2 << 20, 3)).with_hint();
    let cache = Arc::new(Cache::open(dir.path()).unwrap());
    let good = layer(src.clone(), cache).sealed().unwrap();
    let path = dir.path().join("blobs/sha256").join(good.digest.hex());
    // Flip one byte, keeping the size.
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    // A lookup checks the size only (a destination that has the blob needs no bytes):
    // the facts are the right ones, and nothing is read yet.
    let cache = Arc::new(Cache::open(dir.path()).unwrap());
    let l = layer(src.clone(), cache.clone());
    assert_eq!(l.sealed().unwrap(), good);
    assert_eq!(src.counts.opens(), 1);
    assert_eq!(cache.stats().evicted_corrupt, 0);
    // The first open verifies: the corrupt blob is evicted, the layer sealed again, and
    // the reader gets the right bytes.
    assert_eq!(Digest::sha256(&read_all(&l)), good.digest);
    assert_eq!(cache.stats().evicted_corrupt, 1);
    assert_eq!(src.counts.opens(), 2, "recomputed");
    assert_eq!(Digest::sha256(&fs::read(&path).unwrap()), good.digest);

    // A corrupt blob found by `blob` (pulls ask it) is evicted too.
    let mut bytes = fs::read(&path).unwrap();
    bytes[mid] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let cache = Arc::new(Cache::open(dir.path()).unwrap());
    assert!(cache.blob(&good.digest).is_none());
    assert_eq!(cache.stats().evicted_corrupt, 1);
    assert!(!path.exists(), "the corrupt blob is gone");
    assert!(
        cache
            .lookup(src.hint.as_ref().unwrap(), &Encoding::gzip())
            .is_none()
    );
    let l = layer(src.clone(), cache.clone());
    assert_eq!(l.sealed().unwrap(), good, "recomputed");
    assert_eq!(src.counts.opens(), 3);
    assert_eq!(Digest::sha256(&read_all(&l)), good.digest);

    // A truncated blob and a garbage index entry are misses too, never errors or panics.
    let mut bytes = fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 1);
    fs::write(&path, &bytes).unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    assert!(
        cache
            .lookup(src.hint.as_ref().unwrap(), &Encoding::gzip())
            .is_none()
    );
    let index = dir.path().join("index/gzip.2-6/sha256").join(format!(
        "{}.json",
        src.hint.as_ref().unwrap().digest().hex()
    ));
    fs::write(&index, b"{not json").unwrap();
    assert!(
        cache
            .lookup(src.hint.as_ref().unwrap(), &Encoding::gzip())
            .is_none()
    );
}

#[test]
fn the_size_limit_evicts_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let enc = Encoding::of(hoist_image::Compression::None);
    let mt = MediaType::OciLayer;
    let seal = |seed: u64| {
        // One Cache per step, as separate processes: nothing is "in use".
        let cache = Cache::open(dir.path()).unwrap().with_limit(2_500_000);
        let data = text(1_000_000, seed);
        let s = cache
            .seal(Box::new(std::io::Cursor::new(data)), &enc, mt.clone())
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        (s, cache.stats())
    };
    let (a, _) = seal(1);
    let (b, _) = seal(2);
    // Use `a`: now `b` is the least recently used.
    let cache = Cache::open(dir.path()).unwrap();
    assert!(cache.lookup(&a.diff_id, &enc).is_some());
    std::thread::sleep(Duration::from_millis(30));
    let (c, stats) = seal(3);
    assert_eq!(stats.evicted_lru, 1);
    let cache = Cache::open(dir.path()).unwrap();
    assert!(cache.blob(&a.digest).is_some());
    assert!(cache.blob(&b.digest).is_none(), "b was least recently used");
    assert!(cache.blob(&c.digest).is_some());
    assert!(cache.lookup(&b.diff_id, &enc).is_none());

    // Prune to zero empties it, except what this process is using.
    let stats = cache.prune(0).unwrap();
    assert_eq!(stats.blobs, 0, "a and c are in use by this process");
    let other = Cache::open(dir.path()).unwrap();
    let stats = other.prune(0).unwrap();
    assert_eq!((stats.blobs, stats.bytes), (2, 2_000_000));
    // b's entry went when its lookup found no blob; a's and c's go now.
    assert_eq!(stats.index_entries, 2);
    assert!(other.entries().unwrap().is_empty());
}

#[test]
fn insert_blob_checks_the_digest_before_anything_is_visible() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let data = b"a pulled blob".to_vec();
    let right = Digest::sha256(&data);
    let wrong = Digest::sha256(b"something else");
    assert!(
        cache
            .insert_blob(&wrong, None, &data[..])
            .unwrap_err()
            .is_integrity()
    );
    assert!(cache.blob(&wrong).is_none());
    assert!(cache.insert_blob(&right, Some(3), &data[..]).is_err());
    let (path, n) = cache
        .insert_blob(&right, Some(data.len() as u64), &data[..])
        .unwrap();
    assert_eq!(
        (fs::read(path).unwrap(), n),
        (data.clone(), data.len() as u64)
    );
    assert_eq!(cache.blob(&right).unwrap().1, data.len() as u64);
}

/// A pulled blob (someone else's encoder, some level) is recorded as of unknown
/// provenance: listed, but never returned for an encoding, whose bytes it may not be.
#[test]
fn pulled_blobs_are_never_served_for_an_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let tar = text(256 << 10, 9);
    let mut blob = Vec::new();
    let level1 = Encoding::gzip().level(1);
    let sealed =
        hoist_image::pipeline::seal(&tar[..], &level1, MediaType::OciLayerGzip, &mut blob).unwrap();
    cache
        .insert_blob(&sealed.digest, Some(sealed.size), &blob[..])
        .unwrap();
    cache.record_pulled(&sealed).unwrap();
    for e in [
        Encoding::gzip(),
        level1,
        Encoding::gzip().level(9),
        Encoding::zstd(),
    ] {
        assert!(cache.lookup(&sealed.diff_id, &e).is_none(), "{}", e.key());
    }
    let entries = cache.entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].encoding, "gzip.pulled");
    assert_eq!(entries[0].sealed, sealed);

    // A plain tar is its diff_id's bytes whoever wrote it: served for `none`.
    let plain = hoist_image::Sealed {
        digest: Digest::sha256(&tar),
        diff_id: sealed.diff_id.clone(),
        size: tar.len() as u64,
        media_type: MediaType::OciLayer,
    };
    cache
        .insert_blob(&plain.digest, Some(plain.size), &tar[..])
        .unwrap();
    cache.record_pulled(&plain).unwrap();
    let hit = cache.lookup(&plain.diff_id, &Encoding::none()).unwrap();
    assert_eq!(hit, plain);
}

#[test]
fn memory_store_keeps_small_layers_in_ram_and_spills_the_rest() {
    let store = Arc::new(MemoryStore::new(1 << 20).unwrap());
    let small = CountingSource::new(text(1 << 20, 4)).with_hint(); // ~0.3 MiB gzipped
    let mut x = 0x9e3779b97f4a7c15u64;
    let noise = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let big = CountingSource::new(noise).with_hint(); // incompressible: 3 MiB gzipped
    let ls = layer(small.clone(), store.clone());
    let s = ls.sealed().unwrap();
    assert_eq!(store.used(), s.size, "the small layer is held in memory");
    let lb = layer(big.clone(), store.clone());
    let b = lb.sealed().unwrap();
    assert_eq!(store.used(), s.size, "the big layer spilled to a file");
    assert_eq!(Digest::sha256(&read_all(&ls)), s.digest);
    assert_eq!(Digest::sha256(&read_all(&lb)), b.digest);
    // Second layers over the same sources: lookups, no reads.
    assert_eq!(layer(small.clone(), store.clone()).sealed().unwrap(), s);
    assert_eq!(layer(big.clone(), store.clone()).sealed().unwrap(), b);
    assert_eq!((small.counts.opens(), big.counts.opens()), (1, 1));
    assert!(small.open().is_ok());
}
