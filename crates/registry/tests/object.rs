//! The object-storage backend's own behaviour, on `object_store`'s in-memory store (what
//! the storage contract in tests/storage.rs does not say): how bytes become segments and
//! blobs, what is left in the bucket after each outcome, and two nodes over one store.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use hoist_image::Digest;
use hoist_registry::{ByteStream, ErrorKind, ObjectStorage, RepoName, Storage};
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const MIB: usize = 1 << 20;

fn repo(s: &str) -> RepoName {
    RepoName::parse(s).unwrap()
}

fn body(chunks: Vec<Vec<u8>>) -> ByteStream {
    Box::pin(futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, io::Error>(Bytes::from(c))),
    ))
}

/// Deterministic incompressible bytes.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Keys under `prefix` (relative to the store's root).
async fn keys(store: &InMemory, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = store
        .list(Some(&Path::from(prefix)))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    out.sort();
    out
}

async fn read_all(s: &dyn Storage, r: &RepoName, d: &Digest, range: Option<(u64, u64)>) -> Vec<u8> {
    let mut b = s.blob_read(r, d, range).await.unwrap().expect("blob").body;
    let mut out = Vec::new();
    while let Some(x) = b.next().await {
        out.extend_from_slice(&x.unwrap());
    }
    out
}

fn setup() -> (Arc<InMemory>, ObjectStorage) {
    let store = Arc::new(InMemory::new());
    let s = ObjectStorage::new(store.clone(), "reg");
    (store, s)
}

#[tokio::test]
async fn small_chunks_are_merged_into_few_segments() {
    let (store, s) = setup();
    let r = repo("small/chunks");
    let blob = data(1, 40 * 100_000);
    let id = s.upload_start(&r).await.unwrap();
    for (i, c) in blob.chunks(100_000).enumerate() {
        let n = s
            .upload_append(&r, &id, Some((i * 100_000) as u64), body(vec![c.to_vec()]))
            .await
            .unwrap();
        assert_eq!(n, ((i + 1) * 100_000) as u64);
    }
    // 40 chunks, one segment: each small tail was rewritten into the next one.
    assert_eq!(keys(&store, &format!("reg/data/{id}")).await.len(), 1);
    let d = Digest::sha256(&blob);
    assert_eq!(
        s.upload_commit(&r, &id, &d).await.unwrap(),
        blob.len() as u64
    );
    assert_eq!(read_all(&s, &r, &d, None).await, blob);
    assert!(keys(&store, "reg/uploads").await.is_empty());
}

#[tokio::test]
async fn a_long_body_is_recorded_in_segments_and_read_across_them() {
    let (store, s) = setup();
    let r = repo("long/body");
    let blob = data(2, 70 * MIB);
    let id = s.upload_start(&r).await.unwrap();
    let chunks: Vec<Vec<u8>> = blob.chunks(MIB).map(<[u8]>::to_vec).collect();
    s.upload_append(&r, &id, None, body(chunks)).await.unwrap();
    // 64 MiB and 6 MiB: a node dying mid-body would have lost at most the second.
    let segs = keys(&store, &format!("reg/data/{id}")).await;
    assert_eq!(segs.len(), 2, "{segs:?}");
    let d = Digest::sha256(&blob);
    s.upload_commit(&r, &id, &d).await.unwrap();
    let at = 64 * MIB as u64 - 5;
    assert_eq!(
        read_all(&s, &r, &d, Some((at, 10))).await,
        &blob[at as usize..at as usize + 10]
    );
    assert!(read_all(&s, &r, &d, None).await == blob);
}

#[tokio::test]
async fn a_digest_committed_twice_is_stored_once() {
    let (store, s) = setup();
    let blob = data(3, 2 * MIB);
    let d = Digest::sha256(&blob);
    let mut segments = Vec::new();
    for name in ["twice/a", "twice/b"] {
        let r = repo(name);
        let id = s.upload_start(&r).await.unwrap();
        s.upload_append(&r, &id, None, body(vec![blob.clone()]))
            .await
            .unwrap();
        s.upload_commit(&r, &id, &d).await.unwrap();
        segments.push(keys(&store, "reg/data").await);
    }
    // The second commit found the blob published and removed its own copy.
    assert_eq!(segments[0].len(), 1);
    assert_eq!(segments[0], segments[1]);
    for name in ["twice/a", "twice/b"] {
        assert!(read_all(&s, &repo(name), &d, None).await == blob);
    }
}

#[tokio::test]
async fn failed_cancelled_and_expired_sessions_leave_nothing() {
    let (store, s) = setup();
    let r = repo("left/overs");
    // A digest mismatch.
    let id = s.upload_start(&r).await.unwrap();
    s.upload_append(&r, &id, None, body(vec![data(4, 9 * MIB)]))
        .await
        .unwrap();
    let e = s
        .upload_commit(&r, &id, &Digest::sha256(b"other"))
        .await
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DigestMismatch { .. }), "{e}");
    // A cancel.
    let id = s.upload_start(&r).await.unwrap();
    s.upload_append(&r, &id, None, body(vec![data(5, MIB)]))
        .await
        .unwrap();
    s.upload_cancel(&r, &id).await.unwrap();
    assert!(s.upload_size(&r, &id).await.unwrap_err().is_not_found());
    assert!(keys(&store, "reg/data").await.is_empty());
    assert!(keys(&store, "reg/uploads").await.is_empty());
    // Expiry: an idle session goes with its bytes; a fresh one stays.
    let old = s.upload_start(&r).await.unwrap();
    s.upload_append(&r, &old, None, body(vec![data(6, 3 * MIB)]))
        .await
        .unwrap();
    let kept = s.uploads_expire(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(kept.sessions, 0);
    let gone = s.uploads_expire(Duration::ZERO).await.unwrap();
    assert_eq!((gone.sessions, gone.bytes), (1, 3 * MIB as u64));
    assert!(s.upload_size(&r, &old).await.unwrap_err().is_not_found());
    assert!(keys(&store, "reg/data").await.is_empty());
    assert!(keys(&store, "reg/uploads").await.is_empty());
}

#[tokio::test]
async fn two_nodes_one_session() {
    let store = Arc::new(InMemory::new());
    let (a, b) = (
        ObjectStorage::new(store.clone(), "reg"),
        ObjectStorage::new(store.clone(), "reg"),
    );
    let r = repo("two/nodes");
    let blob = data(7, 11 * MIB);
    // Started on a, continued on b (which carries on a's SHA-256 state), committed on a.
    let id = a.upload_start(&r).await.unwrap();
    a.upload_append(&r, &id, Some(0), body(vec![blob[..6 * MIB].to_vec()]))
        .await
        .unwrap();
    b.upload_append(
        &r,
        &id,
        Some(6 * MIB as u64),
        body(vec![blob[6 * MIB..].to_vec()]),
    )
    .await
    .unwrap();
    let d = Digest::sha256(&blob);
    a.upload_commit(&r, &id, &d).await.unwrap();
    assert!(read_all(&b, &r, &d, None).await == blob);

    // Two appends at once, one per node: a's body waits while b's completes; a's record then
    // finds the session changed, a is refused, and only b's bytes count.
    let id = a.upload_start(&r).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(1);
    let held: ByteStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (b, rx))
    }));
    tx.send(Ok(Bytes::from(data(8, MIB)))).await.unwrap();
    let (a2, r2, id2) = (a.clone(), r.clone(), id.clone());
    let slow = tokio::spawn(async move { a2.upload_append(&r2, &id2, Some(0), held).await });
    let fast = data(9, 2 * MIB);
    // b starts once a has the session loaded (a's first chunk arrived).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let n = b
        .upload_append(&r, &id, Some(0), body(vec![fast.clone()]))
        .await
        .unwrap();
    assert_eq!(n, 2 * MIB as u64);
    drop(tx);
    // Refused: as busy when it had read the session before b recorded (the usual case with
    // the pause above), or for a wrong offset when it had not.
    let e = slow.await.unwrap().unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::UploadBusy { .. } | ErrorKind::OffsetMismatch { .. }
        ),
        "{e}"
    );
    assert_eq!(a.upload_size(&r, &id).await.unwrap(), 2 * MIB as u64);
    // The loser removed what it wrote: one segment is left.
    assert_eq!(keys(&store, &format!("reg/data/{id}")).await.len(), 1);
    let d = Digest::sha256(&fast);
    b.upload_commit(&r, &id, &d).await.unwrap();
    assert!(read_all(&a, &r, &d, None).await == fast);
}

/// A store that ignores the conditions of a PUT (every PUT overwrites), as some
/// S3-compatible stores do.
#[derive(Debug)]
struct Unconditional(InMemory);

impl std::fmt::Display for Unconditional {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unconditional({})", self.0)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Unconditional {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.0
            .put_opts(location, payload, PutOptions::default())
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

#[async_trait::async_trait]
impl MultipartStore for Unconditional {
    async fn create_multipart(&self, path: &Path) -> object_store::Result<MultipartId> {
        self.0.create_multipart(path).await
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        self.0.put_part(path, id, part_idx, data).await
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        self.0.complete_multipart(path, id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> object_store::Result<()> {
        self.0.abort_multipart(path, id).await
    }
}

#[tokio::test]
async fn a_store_without_conditional_writes_is_refused() {
    let (store, s) = setup();
    s.check_conditional_writes().await.unwrap();
    // The sentinel is gone.
    assert!(keys(&store, "reg").await.is_empty());
    let s = ObjectStorage::new(Arc::new(Unconditional(InMemory::new())), "reg");
    let e = s.check_conditional_writes().await.unwrap_err();
    assert!(
        e.to_string().contains("If-None-Match") && e.to_string().contains("conditional writes"),
        "{e}"
    );
}

/// What [`Hooked`] runs when the collector writes a tombstone.
enum Hook {
    /// Before the tombstone's conditional write reaches the store.
    Before(BoxFuture<'static, ()>),
    /// After it.
    After(BoxFuture<'static, ()>),
}

/// The collector's view of an in-memory store: runs a hook around its first tombstone
/// write, to interleave a push's touch with a removal by hand.
#[derive(Debug)]
struct Hooked {
    inner: Arc<InMemory>,
    hook: std::sync::Mutex<Option<Hook>>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

impl std::fmt::Display for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hooked({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Hooked {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let bytes: Vec<u8> = payload.iter().flat_map(|b| b.to_vec()).collect();
        let tombstone = String::from_utf8_lossy(&bytes).contains("\"removed\":true");
        let hook = if tombstone {
            self.hook.lock().unwrap().take()
        } else {
            None
        };
        match hook {
            Some(Hook::Before(f)) => {
                f.await;
                self.inner.put_opts(location, payload, opts).await
            }
            Some(Hook::After(f)) => {
                let r = self.inner.put_opts(location, payload, opts).await;
                f.await;
                r
            }
            None => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[async_trait::async_trait]
impl MultipartStore for Hooked {
    async fn create_multipart(&self, path: &Path) -> object_store::Result<MultipartId> {
        self.inner.create_multipart(path).await
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        self.inner.put_part(path, id, part_idx, data).await
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        self.inner.complete_multipart(path, id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> object_store::Result<()> {
        self.inner.abort_multipart(path, id).await
    }
}

/// Upload `bytes` to `r` as one blob through `s`.
async fn push(s: &ObjectStorage, r: &RepoName, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let id = s.upload_start(r).await.unwrap();
    s.upload_append(r, &id, Some(0), body(vec![bytes.to_vec()]))
        .await
        .unwrap();
    s.upload_commit(r, &id, &d).await.unwrap();
    d
}

/// A cutoff after everything stored so far (as a collection with no grace period takes).
async fn cutoff_now() -> SystemTime {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    t
}

/// A push's touch and a collector's removal of one blob, interleaved by hand at the
/// removal's conditional write: a touch that lands first keeps the blob; one that comes
/// after the tombstone answers false (the manifest PUT asking is refused).
#[tokio::test]
async fn a_touch_racing_a_removal_keeps_the_blob_or_answers_false() {
    let inner = Arc::new(InMemory::new());
    let hooked = Arc::new(Hooked {
        inner: inner.clone(),
        hook: std::sync::Mutex::new(None),
    });
    let collector = ObjectStorage::new(hooked.clone(), "reg");
    let node = ObjectStorage::new(inner.clone(), "reg");
    let r = repo("race/touch");
    let layer = data(7, 3000);
    let d = push(&node, &r, &layer).await;

    // The touch lands between the removal's read and its tombstone: kept.
    let cutoff = cutoff_now().await;
    let touched = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (node, d, touched) = (node.clone(), d.clone(), touched.clone());
        *hooked.hook.lock().unwrap() = Some(Hook::Before(Box::pin(async move {
            assert!(node.blob_touch(&d).await.unwrap());
            touched.store(true, std::sync::atomic::Ordering::SeqCst);
        })));
    }
    assert_eq!(collector.blob_remove(&d, cutoff).await.unwrap(), None);
    assert!(touched.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(read_all(&node, &r, &d, None).await, layer);

    // The touch comes after the tombstone: false, and the removal goes through.
    let cutoff = cutoff_now().await;
    {
        let (node, d, touched) = (node.clone(), d.clone(), touched.clone());
        *hooked.hook.lock().unwrap() = Some(Hook::After(Box::pin(async move {
            assert!(!node.blob_touch(&d).await.unwrap());
            touched.store(false, std::sync::atomic::Ordering::SeqCst);
        })));
    }
    assert_eq!(
        collector.blob_remove(&d, cutoff).await.unwrap(),
        Some(layer.len() as u64)
    );
    assert!(!touched.load(std::sync::atomic::Ordering::SeqCst));
    assert!(!node.blob_touch(&d).await.unwrap());
    assert!(
        keys(&inner, "reg/data").await.is_empty(),
        "its segments went"
    );
    assert!(node.blob_read(&r, &d, None).await.unwrap().is_none());
    assert!(node.blob_size(&r, &d).await.unwrap().is_none());

    // Pushed again over the emptied pointer: stored and readable.
    assert_eq!(push(&node, &r, &layer).await, d);
    assert_eq!(read_all(&node, &r, &d, None).await, layer);
    assert!(node.blob_touch(&d).await.unwrap());
}

/// A node that cached a blob's pointer before another node collected it: its reads answer
/// "not found", not a broken body, and its touch (the manifest PUT's) goes to the bucket and
/// answers false, even where a repository's link to it survived.
#[tokio::test]
async fn a_node_caching_a_collected_blob_does_not_trust_its_cache() {
    let (store, a) = setup();
    let b = ObjectStorage::new(store.clone(), "reg");
    let r = repo("cached/blob");
    let layer = data(8, 2 * MIB);
    let d = push(&a, &r, &layer).await;
    assert_eq!(read_all(&a, &r, &d, None).await, layer);
    let cutoff = cutoff_now().await;
    assert_eq!(
        b.blob_remove(&d, cutoff).await.unwrap(),
        Some(layer.len() as u64)
    );
    assert!(a.blob_read(&r, &d, None).await.unwrap().is_none());
    // A link left behind (a repository the collector did not know yet): still not found.
    let link = Path::from(format!("reg/repos/cached/blob/_blobs/sha256/{}", d.hex()));
    store.put(&link, PutPayload::new()).await.unwrap();
    assert!(
        a.blob_read(&r, &d, Some((10, 100)))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!a.blob_touch(&d).await.unwrap());
    // Pushed again (other segments): the node reads the new ones.
    push(&b, &r, &layer).await;
    assert_eq!(read_all(&a, &r, &d, None).await, layer);
}

/// A collection that stopped after its tombstone: touches answer false, and the next
/// collection finishes the removal.
#[tokio::test]
async fn a_removal_stopped_after_its_tombstone_is_finished_later() {
    let (store, s) = setup();
    let r = repo("stopped/gc");
    let layer = data(9, 4000);
    let d = push(&s, &r, &layer).await;
    let key = Path::from(format!("reg/blobs/sha256/{}", d.hex()));
    let raw = store.get(&key).await.unwrap().bytes().await.unwrap();
    let mut p: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    p["removed"] = true.into();
    store
        .put(&key, serde_json::to_vec(&p).unwrap().into())
        .await
        .unwrap();
    assert!(!s.blob_touch(&d).await.unwrap());
    let listed = s.blobs().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let cutoff = cutoff_now().await;
    assert_eq!(
        s.blob_remove(&d, cutoff).await.unwrap(),
        Some(layer.len() as u64)
    );
    assert!(keys(&store, "reg/data").await.is_empty());
    assert!(s.blobs().await.unwrap().is_empty());
    assert!(keys(&store, "reg/repos").await.is_empty(), "links gone");
}

/// A commit whose node died after fencing the session (`committing` recorded, nothing
/// published yet) is finished by the client's retry through another node: `PUT ?digest=`
/// with an empty body. Bytes sent to the fenced session are still refused.
#[tokio::test]
async fn a_commit_retried_after_its_node_died_finishes() {
    let (store, b) = setup();
    let r = repo("retried/commit");
    let blob = data(11, 3 * MIB);
    let d = Digest::sha256(&blob);
    let id = b.upload_start(&r).await.unwrap();
    b.upload_append(&r, &id, Some(0), body(vec![blob.clone()]))
        .await
        .unwrap();
    // What node a left when it died in the middle of its commit.
    let key = Path::from(format!("reg/uploads/{id}"));
    let raw = store.get(&key).await.unwrap().bytes().await.unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    st["committing"] = true.into();
    store
        .put(&key, serde_json::to_vec(&st).unwrap().into())
        .await
        .unwrap();
    let e = b
        .upload_append(&r, &id, Some(blob.len() as u64), body(vec![vec![1]]))
        .await
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::UploadBusy { .. }), "{e}");
    // The retried PUT: an empty body, then the commit.
    let n = b
        .upload_append(&r, &id, Some(blob.len() as u64), body(vec![]))
        .await
        .unwrap();
    assert_eq!(n, blob.len() as u64);
    assert_eq!(
        b.upload_commit(&r, &id, &d).await.unwrap(),
        blob.len() as u64
    );
    assert!(read_all(&b, &r, &d, None).await == blob);
    assert!(
        keys(&store, "reg/uploads").await.is_empty(),
        "session ended"
    );
}

/// A write of the session that lands while a request is in the middle of its append, and
/// changes only the bookkeeping of multipart uploads (a node killed with that write in
/// flight), does not refuse the request: its bytes are recorded on top of it, and the
/// other upload stays recorded for the end of the session to abort.
#[tokio::test]
async fn a_late_write_of_a_dead_node_does_not_refuse_an_append() {
    let (store, s) = setup();
    let r = repo("late/write");
    let id = s.upload_start(&r).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(1);
    let held: ByteStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (b, rx))
    }));
    let blob = data(12, MIB);
    tx.send(Ok(Bytes::from(blob.clone()))).await.unwrap();
    let (s2, r2, id2) = (s.clone(), r.clone(), id.clone());
    let append = tokio::spawn(async move { s2.upload_append(&r2, &id2, Some(0), held).await });
    // The append has the session loaded (its first chunk arrived); the dead node's write
    // lands.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let key = Path::from(format!("reg/uploads/{id}"));
    let raw = store.get(&key).await.unwrap().bytes().await.unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    st["pending"] = serde_json::json!([{"key": format!("data/{id}/dead"), "upload": "dead"}]);
    st["rev"] = "written by a node that died".into();
    store
        .put(&key, serde_json::to_vec(&st).unwrap().into())
        .await
        .unwrap();
    drop(tx);
    assert_eq!(append.await.unwrap().unwrap(), MIB as u64);
    let raw = store.get(&key).await.unwrap().bytes().await.unwrap();
    let st: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(st["pending"][0]["upload"], "dead", "{st}");
    let d = Digest::sha256(&blob);
    s.upload_commit(&r, &id, &d).await.unwrap();
    assert!(read_all(&s, &r, &d, None).await == blob);
}

/// A node that died between publishing a blob and removing the session's state leaves a
/// committing session whose segments are the blob's. Expiring that session removes the
/// state and keeps the blob whole, whether the state recorded the digest it commits or was
/// written before digests were recorded (the SHA-256 of its bytes stands in).
#[tokio::test]
async fn expiring_a_session_whose_commit_published_keeps_the_blob() {
    let (store, s) = setup();
    let r = repo("dead/publisher");
    for (seed, recorded) in [(13, false), (14, true)] {
        let blob = data(seed, 7 * MIB);
        let d = Digest::sha256(&blob);
        let id = s.upload_start(&r).await.unwrap();
        s.upload_append(&r, &id, Some(0), body(vec![blob.clone()]))
            .await
            .unwrap();
        let key = Path::from(format!("reg/uploads/{id}"));
        let raw = store.get(&key).await.unwrap().bytes().await.unwrap();
        s.upload_commit(&r, &id, &d).await.unwrap();
        // The state as the dead node left it: committing, the blob published.
        let mut st: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        st["committing"] = true.into();
        if recorded {
            st["digest"] = d.to_string().into();
        }
        store
            .put(&key, serde_json::to_vec(&st).unwrap().into())
            .await
            .unwrap();
        // The client's DELETE of it is refused: the session is the commit's.
        let e = s.upload_cancel(&r, &id).await.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::UploadBusy { .. }), "{e}");
        let gone = s.uploads_expire(Duration::ZERO).await.unwrap();
        assert_eq!((gone.sessions, gone.bytes), (1, 0), "seed {seed}");
        assert!(keys(&store, "reg/uploads").await.is_empty());
        // Read through another node: nothing cached.
        let other = ObjectStorage::new(store.clone(), "reg");
        assert!(read_all(&other, &r, &d, None).await == blob, "seed {seed}");
    }
}

/// A removal stopped midway (its node died after fencing the session) leaves an ending
/// session: unknown to every request, and finished by the next expiry, which aborts its
/// multipart upload and removes its segments.
#[tokio::test]
async fn a_removal_stopped_midway_is_finished_by_expiry() {
    let (store, s) = setup();
    let r = repo("dead/remover");
    let id = s.upload_start(&r).await.unwrap();
    s.upload_append(&r, &id, Some(0), body(vec![data(15, 3 * MIB)]))
        .await
        .unwrap();
    // A multipart upload the session has pending, with a part sent.
    let part_key = Path::from(format!("reg/data/{id}/pending"));
    let upload = store.create_multipart(&part_key).await.unwrap();
    let part = store
        .put_part(&part_key, &upload, 0, Bytes::from(data(16, MIB)).into())
        .await
        .unwrap();
    let key = Path::from(format!("reg/uploads/{id}"));
    let raw = store.get(&key).await.unwrap().bytes().await.unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    st["pending"] = serde_json::json!([{"key": format!("data/{id}/pending"), "upload": upload}]);
    st["ending"] = true.into();
    store
        .put(&key, serde_json::to_vec(&st).unwrap().into())
        .await
        .unwrap();
    assert!(s.upload_size(&r, &id).await.unwrap_err().is_not_found());
    let e = s
        .upload_append(&r, &id, Some(3 * MIB as u64), body(vec![vec![1]]))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(s.upload_cancel(&r, &id).await.unwrap_err().is_not_found());
    let gone = s.uploads_expire(Duration::ZERO).await.unwrap();
    assert_eq!((gone.sessions, gone.bytes), (1, 3 * MIB as u64));
    assert!(keys(&store, "reg/uploads").await.is_empty());
    assert!(keys(&store, "reg/data").await.is_empty());
    assert!(
        store
            .complete_multipart(&part_key, &upload, vec![part])
            .await
            .is_err(),
        "the multipart upload was aborted"
    );
}
