//! The storage contract (the top of `storage.rs`), checked through the `Storage` trait on
//! each backend (the filesystem, and the object store on `object_store`'s in-memory store):
//! plain outcomes (offsets, digests, sizes), not HTTP answers.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use hoist_image::Digest;
use hoist_registry::{ByteStream, ErrorKind, FsStorage, ObjectStorage, RepoName, Storage};

fn repo(s: &str) -> RepoName {
    RepoName::parse(s).unwrap()
}

/// A body of these chunks.
fn body(chunks: &[&[u8]]) -> ByteStream {
    let v: Vec<io::Result<Bytes>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(v))
}

/// A body of these chunks that then fails, as a client that goes away does.
fn broken_body(chunks: &[&[u8]]) -> ByteStream {
    let mut v: Vec<io::Result<Bytes>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    v.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone")));
    Box::pin(futures_util::stream::iter(v))
}

async fn read_all(s: &dyn Storage, r: &RepoName, d: &Digest, range: Option<(u64, u64)>) -> Vec<u8> {
    let blob = s.blob_read(r, d, range).await.unwrap().expect("blob");
    let mut out = Vec::new();
    let mut body = blob.body;
    while let Some(b) = body.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

async fn uploads_are_plain_outcomes(s: &dyn Storage) {
    let r = repo("contract/a");
    let id = s.upload_start(&r).await.unwrap();
    let n = s
        .upload_append(&r, &id, Some(0), body(&[b"hello ", b"world"]))
        .await
        .unwrap();
    assert_eq!(n, 11);
    // A chunk that does not start at the bytes received: the offset it should have had.
    let e = s
        .upload_append(&r, &id, Some(5), body(&[b"x"]))
        .await
        .unwrap_err();
    match e.kind() {
        ErrorKind::OffsetMismatch {
            start, received, ..
        } => assert_eq!((*start, *received), (5, 11)),
        k => panic!("want OffsetMismatch, got {k:?}"),
    }
    // A body that breaks keeps what arrived before, and says how much.
    let e = s
        .upload_append(&r, &id, None, broken_body(&[b"!!"]))
        .await
        .unwrap_err();
    match e.kind() {
        ErrorKind::BodyFailed { received, .. } => assert_eq!(*received, 13),
        k => panic!("want BodyFailed, got {k:?}"),
    }
    assert_eq!(s.upload_size(&r, &id).await.unwrap(), 13);
    // A wrong digest keeps nothing.
    let wrong = Digest::sha256(b"something else");
    let e = s.upload_commit(&r, &id, &wrong).await.unwrap_err();
    match e.kind() {
        ErrorKind::DigestMismatch {
            expected,
            actual,
            size,
            ..
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &Digest::sha256(b"hello world!!"));
            assert_eq!(*size, 13);
        }
        k => panic!("want DigestMismatch, got {k:?}"),
    }
    assert!(s.upload_size(&r, &id).await.unwrap_err().is_not_found());
    assert_eq!(s.blob_size(&r, &wrong).await.unwrap(), None);

    // A session that resumes and commits; ranges read back.
    let id = s.upload_start(&r).await.unwrap();
    s.upload_append(&r, &id, None, body(&[b"0123"]))
        .await
        .unwrap();
    s.upload_append(&r, &id, Some(4), body(&[b"4567", b"89"]))
        .await
        .unwrap();
    let d = Digest::sha256(b"0123456789");
    assert_eq!(s.upload_commit(&r, &id, &d).await.unwrap(), 10);
    assert_eq!(s.blob_size(&r, &d).await.unwrap(), Some(10));
    assert_eq!(read_all(s, &r, &d, None).await, b"0123456789");
    assert_eq!(read_all(s, &r, &d, Some((3, 4))).await, b"3456");
}

async fn mounts_need_a_repository_that_sees_the_blob(s: &dyn Storage) {
    let (a, b, c) = (
        repo("contract/m/a"),
        repo("contract/m/b"),
        repo("contract/m/c"),
    );
    let id = s.upload_start(&a).await.unwrap();
    s.upload_append(&a, &id, None, body(&[b"layer"]))
        .await
        .unwrap();
    let d = Digest::sha256(b"layer");
    s.upload_commit(&a, &id, &d).await.unwrap();
    assert!(
        !s.blob_mount(&c, &b, &d).await.unwrap(),
        "c does not see it"
    );
    assert_eq!(s.blob_size(&b, &d).await.unwrap(), None);
    assert!(s.blob_mount(&a, &b, &d).await.unwrap());
    assert_eq!(s.blob_size(&b, &d).await.unwrap(), Some(5));
}

async fn one_writer_per_session(s: &dyn Storage) {
    let r = repo("contract/busy");
    let id = s.upload_start(&r).await.unwrap();
    // A body that never ends holds the session.
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(1);
    let stalled: ByteStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (b, rx))
    }));
    tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
    let (s2, r2, id2) = (s, r.clone(), id.clone());
    let writer = async move { s2.upload_append(&r2, &id2, None, stalled).await };
    let other = async {
        // Once the first writer holds the lock (its bytes show), a second is refused.
        for _ in 0..500 {
            if s.upload_size(&r, &id).await.unwrap() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let e = s
            .upload_append(&r, &id, None, body(&[b"x"]))
            .await
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::UploadBusy { .. }),
            "want UploadBusy, got {e}"
        );
        drop(tx);
    };
    let (n, ()) = tokio::join!(writer, other);
    assert_eq!(n.unwrap(), 3);
}

#[tokio::test]
async fn fs_storage_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStorage::open(dir.path()).unwrap();
    uploads_are_plain_outcomes(&s).await;
    mounts_need_a_repository_that_sees_the_blob(&s).await;
    one_writer_per_session(&s).await;
}

#[tokio::test]
async fn object_storage_keeps_the_contract() {
    let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    let s = ObjectStorage::new(store, "registry");
    uploads_are_plain_outcomes(&s).await;
    mounts_need_a_repository_that_sees_the_blob(&s).await;
    one_writer_per_session(&s).await;
}
