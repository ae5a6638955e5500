//! Garbage collection through the storage trait: what goes and what stays, dry runs,
//! the grace period, untagged manifests, an interrupted collection, and a collection racing
//! a push loop (no manifest ever points at a removed blob). Each runs on both backends: the
//! file system, and the object store (on `object_store`'s in-memory store).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hoist_image::Digest;
use hoist_registry::{GcOptions, ObjectStorage, Registry};
use object_store::memory::InMemory;
use tower::ServiceExt;

struct Resp {
    status: StatusCode,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn call(reg: &Registry, method: &str, uri: &str, ct: Option<&str>, body: Vec<u8>) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    let resp = reg
        .router()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Resp { status, body }
}

async fn push_blob(reg: &Registry, repo: &str, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let r = call(
        reg,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        None,
        bytes.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    d
}

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn desc(mt: &str, d: &Digest, n: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": n})
}

/// An image manifest over `config` and `layers` (bytes), already uploaded or not.
fn image(config: &[u8], layers: &[&[u8]], subject: Option<serde_json::Value>) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2, "mediaType": IMAGE,
        "config": desc("application/vnd.oci.image.config.v1+json", &Digest::sha256(config), config.len()),
        "layers": layers.iter().map(|l| desc("application/vnd.oci.image.layer.v1.tar", &Digest::sha256(l), l.len())).collect::<Vec<_>>(),
    });
    if let Some(s) = subject {
        m["subject"] = s;
    }
    serde_json::to_vec(&m).unwrap()
}

async fn put(reg: &Registry, repo: &str, reference: &str, ct: &str, raw: &[u8]) -> Resp {
    call(
        reg,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        Some(ct),
        raw.to_vec(),
    )
    .await
}

/// Upload `config` and `layers` and put the image as `reference`; returns its digest.
async fn push_image(
    reg: &Registry,
    repo: &str,
    reference: &str,
    config: &[u8],
    layers: &[&[u8]],
) -> Digest {
    push_blob(reg, repo, config).await;
    for l in layers {
        push_blob(reg, repo, l).await;
    }
    let raw = image(config, layers, None);
    let r = put(reg, repo, reference, IMAGE, &raw).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    Digest::sha256(&raw)
}

/// Every blob a manifest of `repo` reaches can be read back with its digest.
async fn pulls_whole(reg: &Registry, repo: &str, reference: &str) -> bool {
    let r = call(
        reg,
        "GET",
        &format!("/v2/{repo}/manifests/{reference}"),
        None,
        vec![],
    )
    .await;
    if r.status != StatusCode::OK {
        eprintln!("manifest {repo}:{reference}: {} {}", r.status, r.text());
        return false;
    }
    let m: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let mut digests = Vec::new();
    if let Some(children) = m["manifests"].as_array() {
        for c in children {
            let d = c["digest"].as_str().unwrap();
            if !Box::pin(pulls_whole(reg, repo, d)).await {
                return false;
            }
        }
    } else {
        digests.push(m["config"]["digest"].as_str().unwrap().to_string());
        for l in m["layers"].as_array().unwrap() {
            digests.push(l["digest"].as_str().unwrap().to_string());
        }
    }
    for d in digests {
        let b = call(reg, "GET", &format!("/v2/{repo}/blobs/{d}"), None, vec![]).await;
        if b.status != StatusCode::OK || Digest::sha256(&b.body).to_string() != d {
            eprintln!("blob {d} of {repo}:{reference}: {} {}", b.status, b.text());
            return false;
        }
    }
    true
}

/// A test run on both backends: `name::fs` and `name::object`.
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn fs() {
                let dir = tempfile::tempdir().unwrap();
                super::$name(hoist_registry::Registry::open(dir.path()).unwrap()).await
            }

            #[tokio::test]
            async fn object() {
                super::$name(super::object_registry().0).await
            }
        }
    };
}

/// A registry on an object store (in memory), and the store.
fn object_registry() -> (Registry, Arc<InMemory>) {
    let store = Arc::new(InMemory::new());
    let reg = Registry::with_storage(ObjectStorage::new(store.clone(), "reg"));
    (reg, store)
}

fn now_only() -> GcOptions {
    GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    }
}

on_both!(unreached_blobs_go_reached_ones_stay_and_dry_runs_remove_nothing);
async fn unreached_blobs_go_reached_ones_stay_and_dry_runs_remove_nothing(reg: Registry) {
    let shared = b"shared base layer".to_vec();
    let a = push_image(&reg, "app", "v1", b"{\"a\":1}", &[&shared, b"a only"]).await;
    let b = push_image(&reg, "app", "v2", b"{\"b\":2}", &[&shared, b"b only"]).await;
    push_image(&reg, "other", "latest", b"{\"c\":3}", &[&shared]).await;
    let orphan = push_blob(&reg, "app", b"uploaded, never referenced").await;
    // v2's manifest deleted: its config and its own layer are garbage, the shared one is not.
    assert_eq!(
        call(
            &reg,
            "DELETE",
            &format!("/v2/app/manifests/{b}"),
            None,
            vec![]
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    let want: HashSet<Digest> = [
        b.clone(),
        Digest::sha256(b"{\"b\":2}"),
        Digest::sha256(b"b only"),
        orphan.clone(),
    ]
    .into();

    // Fresh blobs are protected by the default grace period.
    let r = reg.collect_garbage(&GcOptions::default()).await.unwrap();
    assert!(r.removed_blobs.is_empty(), "{r:?}");
    assert_eq!(r.kept_fresh, 4, "{r:?}");

    // The object store keeps touch times in milliseconds: one later, all of them are past.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let dry = reg
        .collect_garbage(&GcOptions {
            dry_run: true,
            ..now_only()
        })
        .await
        .unwrap();
    let listed: HashSet<Digest> = dry.removed_blobs.iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(listed, want, "{dry:?}");
    assert_eq!(
        dry.freed,
        dry.removed_blobs.iter().map(|(_, n)| n).sum::<u64>()
    );
    assert_eq!(
        call(
            &reg,
            "HEAD",
            &format!("/v2/app/blobs/{orphan}"),
            None,
            vec![]
        )
        .await
        .status,
        StatusCode::OK,
        "a dry run removes nothing"
    );

    let r = reg.collect_garbage(&now_only()).await.unwrap();
    let removed: HashSet<Digest> = r.removed_blobs.iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(removed, want, "{r:?}");
    assert_eq!(r.freed, dry.freed);
    assert_eq!(
        call(
            &reg,
            "HEAD",
            &format!("/v2/app/blobs/{orphan}"),
            None,
            vec![]
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert!(pulls_whole(&reg, "app", "v1").await);
    assert!(pulls_whole(&reg, "app", &a.to_string()).await);
    assert!(pulls_whole(&reg, "other", "latest").await);
    // A second run finds nothing more; the metrics counted the first.
    let again = reg.collect_garbage(&now_only()).await.unwrap();
    assert!(again.removed_blobs.is_empty(), "{again:?}");
    let m = reg.metrics().render();
    assert!(
        m.contains(&format!("hoist_gc_freed_bytes_total {}", r.freed)),
        "{m}"
    );
    assert!(m.contains("hoist_gc_runs_total{result=\"ok\"} 4"), "{m}");
    assert!(
        m.contains(&format!("hoist_storage_blobs {}", again.blobs)),
        "{m}"
    );
    // The removed blob can be pushed again.
    push_blob(&reg, "app", b"uploaded, never referenced").await;
}

on_both!(untagged_manifests_go_only_when_asked_keeping_children_and_referrers);
async fn untagged_manifests_go_only_when_asked_keeping_children_and_referrers(reg: Registry) {
    let tagged = push_image(&reg, "app", "v1", b"{\"t\":1}", &[b"tagged layer"]).await;
    let untagged = push_image(
        &reg,
        "app",
        &Digest::sha256(&image(b"{\"u\":1}", &[b"untagged layer"], None)).to_string(),
        b"{\"u\":1}",
        &[b"untagged layer"],
    )
    .await;
    // An index tagged `multi` whose children are untagged.
    let child = push_image(
        &reg,
        "app",
        &Digest::sha256(&image(b"{\"k\":1}", &[b"child layer"], None)).to_string(),
        b"{\"k\":1}",
        &[b"child layer"],
    )
    .await;
    let child_len = image(b"{\"k\":1}", &[b"child layer"], None).len();
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [desc(IMAGE, &child, child_len)]})).unwrap();
    assert_eq!(
        put(&reg, "app", "multi", INDEX, &index).await.status,
        StatusCode::CREATED
    );
    // A signature of v1 (untagged, its subject kept) and one of the untagged image.
    let v1_len = image(b"{\"t\":1}", &[b"tagged layer"], None).len();
    let empty = push_blob(&reg, "app", b"{}").await;
    let sig = |subject: &Digest, n: usize, salt: &str| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": IMAGE, "artifactType": "application/vnd.example.sig",
            "config": desc("application/vnd.oci.empty.v1+json", &empty, 2), "layers": [],
            "subject": desc(IMAGE, subject, n), "annotations": {"salt": salt}}))
        .unwrap()
    };
    let sig_kept = sig(&tagged, v1_len, "kept");
    let untagged_len = image(b"{\"u\":1}", &[b"untagged layer"], None).len();
    let sig_gone = sig(&untagged, untagged_len, "gone");
    for s in [&sig_kept, &sig_gone] {
        assert_eq!(
            put(&reg, "app", &Digest::sha256(s).to_string(), IMAGE, s)
                .await
                .status,
            StatusCode::CREATED
        );
    }

    // By default untagged manifests stay, and so does everything they reach.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = reg.collect_garbage(&now_only()).await.unwrap();
    assert!(
        r.removed_manifests.is_empty() && r.removed_blobs.is_empty(),
        "{r:?}"
    );

    let r = reg
        .collect_garbage(&GcOptions {
            delete_untagged: true,
            ..now_only()
        })
        .await
        .unwrap();
    let gone: HashSet<Digest> = r.removed_manifests.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(
        gone,
        [untagged.clone(), Digest::sha256(&sig_gone)].into(),
        "{r:?}"
    );
    let blobs: HashSet<Digest> = r.removed_blobs.iter().map(|(d, _)| d.clone()).collect();
    assert!(
        blobs.contains(&Digest::sha256(b"untagged layer")) && blobs.contains(&untagged),
        "{r:?}"
    );
    assert!(!blobs.contains(&empty), "the kept signature's config stays");
    assert!(pulls_whole(&reg, "app", "v1").await);
    assert!(pulls_whole(&reg, "app", "multi").await);
    assert!(pulls_whole(&reg, "app", &Digest::sha256(&sig_kept).to_string()).await);
    let refs = call(
        &reg,
        "GET",
        &format!("/v2/app/referrers/{tagged}"),
        None,
        vec![],
    )
    .await;
    assert!(refs.text().contains(&Digest::sha256(&sig_kept).to_string()));
    let refs = call(
        &reg,
        "GET",
        &format!("/v2/app/referrers/{untagged}"),
        None,
        vec![],
    )
    .await;
    assert!(
        !refs.text().contains(&Digest::sha256(&sig_gone).to_string()),
        "{}",
        refs.text()
    );
    assert_eq!(
        call(
            &reg,
            "GET",
            &format!("/v2/app/manifests/{untagged}"),
            None,
            vec![]
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

/// A collection stopped between moving a blob aside and deciding: opening the storage puts
/// it back.
#[tokio::test]
async fn an_interrupted_collection_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    push_image(&reg, "app", "v1", b"{}", &[b"layer"]).await;
    let layer = Digest::sha256(b"layer");
    let rel = format!("blobs/sha256/{}/{}", &layer.hex()[..2], layer.hex());
    let aside = dir
        .path()
        .join("gc-trash")
        .join(format!("0123~{}", rel.replace('/', "~")));
    std::fs::rename(dir.path().join(&rel), &aside).unwrap();
    assert!(!pulls_whole(&reg, "app", "v1").await);
    let reg = Registry::open(dir.path()).unwrap();
    assert!(pulls_whole(&reg, "app", "v1").await);
    assert!(!aside.exists());
}

/// Collections over and over, with a short grace period, while a loop pushes images (each
/// blob uploaded, then the manifest); some pushes pause longer than the grace period
/// between their blobs and their manifest, so their blobs are collected under them. A
/// manifest PUT either succeeds and its image pulls whole, or is refused because a blob it
/// names was collected (then the loop uploads again). Never a stored manifest that points
/// at a removed blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_racing_a_push_loop_never_leave_a_broken_manifest_fs() {
    let dir = tempfile::tempdir().unwrap();
    collections_racing_a_push_loop(Registry::open(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_racing_a_push_loop_never_leave_a_broken_manifest_object() {
    collections_racing_a_push_loop(object_registry().0).await;
}

async fn collections_racing_a_push_loop(reg: Registry) {
    const PUSHES: usize = 24;
    // Far longer than a manifest PUT takes here, far shorter than the default.
    const GRACE: Duration = Duration::from_secs(2);
    let pusher = {
        let reg = reg.clone();
        tokio::spawn(async move {
            let mut refused = 0;
            for i in 0..PUSHES {
                // Each image shares a base layer with the others, and has its own.
                let config = format!("{{\"i\":{i}}}").into_bytes();
                let own = format!("layer of image {i}").into_bytes();
                let base = b"base layer shared by all".to_vec();
                let mut stale = i % 8 == 3;
                loop {
                    for b in [&config, &own, &base] {
                        push_blob(&reg, "race", b).await;
                    }
                    if stale {
                        // Past the grace period: the collector takes this image's own blobs.
                        tokio::time::sleep(GRACE + Duration::from_millis(1500)).await;
                        stale = false;
                    }
                    let raw = image(&config, &[&base, &own], None);
                    let r = put(&reg, "race", &format!("t{i}"), IMAGE, &raw).await;
                    if r.status == StatusCode::CREATED {
                        break;
                    }
                    assert!(r.text().contains("MANIFEST_BLOB_UNKNOWN"), "{}", r.text());
                    refused += 1;
                }
                assert!(
                    pulls_whole(&reg, "race", &format!("t{i}")).await,
                    "t{i} broken right after its PUT"
                );
            }
            refused
        })
    };
    let opts = GcOptions {
        grace: GRACE,
        ..GcOptions::default()
    };
    let mut runs = 0;
    let mut removed = 0;
    while !pusher.is_finished() && runs < 100_000 {
        let r = reg.collect_garbage(&opts).await.unwrap();
        removed += r.removed_blobs.len();
        runs += 1;
        tokio::task::yield_now().await;
    }
    let refused = pusher.await.unwrap();
    for i in 0..PUSHES {
        assert!(
            pulls_whole(&reg, "race", &format!("t{i}")).await,
            "t{i} broken after the race"
        );
    }
    eprintln!(
        "{runs} collections, {removed} blobs removed mid-push, {refused} manifest PUTs refused and retried"
    );
    assert!(
        refused >= 1,
        "the paused pushes lost their blobs to the collector and were refused"
    );
    assert!(removed >= 2);
}

on_both!(storage_gauges_count_blobs_bytes_and_manifests);
/// `hoist_storage_*` at /metrics: what the storage holds, manifests counted as blobs too.
async fn storage_gauges_count_blobs_bytes_and_manifests(reg: Registry) {
    let reg = reg.metrics_endpoint(true);
    let config = b"{\"g\":1}".to_vec();
    let layers: [&[u8]; 2] = [b"first gauge layer", b"second gauge layer"];
    push_image(&reg, "gauges", "v1", &config, &layers).await;
    let raw = image(&config, &layers, None);
    let inv = reg.take_inventory().await.unwrap();
    let bytes = (config.len() + layers[0].len() + layers[1].len() + raw.len()) as u64;
    assert_eq!((inv.blobs, inv.bytes, inv.manifests), (4, bytes, 1));
    let m = call(&reg, "GET", "/metrics", None, vec![]).await;
    assert_eq!(m.status, StatusCode::OK);
    let text = m.text();
    for want in [
        "hoist_storage_blobs 4".to_string(),
        format!("hoist_storage_blob_bytes {bytes}"),
        "hoist_storage_manifests 1".to_string(),
    ] {
        assert!(text.lines().any(|l| l == want), "{want}: {text}");
    }
}

/// Two nodes over one bucket: one pushed an image (its caches remember the blobs), the
/// other deleted the manifest and collected. The first node then answers 404 for the
/// blobs and refuses a manifest naming them; pushed again, the image pulls whole.
#[tokio::test]
async fn a_node_caching_collected_blobs_refuses_manifests_naming_them_object() {
    let (a, store) = object_registry();
    let b = Registry::with_storage(ObjectStorage::new(store.clone(), "reg"));
    let config = b"{\"n\":1}".to_vec();
    let layers: [&[u8]; 1] = [b"layer cached by node a"];
    let d = push_image(&a, "two/nodes", "v1", &config, &layers).await;
    assert!(pulls_whole(&a, "two/nodes", "v1").await);
    let r = call(
        &b,
        "DELETE",
        &format!("/v2/two/nodes/manifests/{d}"),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let gc = b.collect_garbage(&now_only()).await.unwrap();
    assert_eq!(gc.removed_blobs.len(), 3, "{gc:?}");
    let layer = Digest::sha256(layers[0]);
    for method in ["HEAD", "GET"] {
        let r = call(
            &a,
            method,
            &format!("/v2/two/nodes/blobs/{layer}"),
            None,
            vec![],
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}");
    }
    let raw = image(&config, &layers, None);
    let r = put(&a, "two/nodes", "v1", IMAGE, &raw).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("MANIFEST_BLOB_UNKNOWN"), "{}", r.text());
    // Even with the repository's link left behind (a repository the collector did not
    // know): the manifest PUT's touch goes to the bucket, and the refusal makes the node
    // forget what it cached, so the client's next HEAD sends it uploading again.
    let link = object_store::path::Path::from(format!(
        "reg/repos/two/nodes/_blobs/sha256/{}",
        layer.hex()
    ));
    object_store::ObjectStoreExt::put(store.as_ref(), &link, object_store::PutPayload::new())
        .await
        .unwrap();
    let r = call(
        &a,
        "GET",
        &format!("/v2/two/nodes/blobs/{layer}"),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = put(&a, "two/nodes", "v1", IMAGE, &raw).await;
    assert!(r.text().contains("MANIFEST_BLOB_UNKNOWN"), "{}", r.text());
    let r = call(
        &a,
        "HEAD",
        &format!("/v2/two/nodes/blobs/{layer}"),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    push_image(&a, "two/nodes", "v1", &config, &layers).await;
    assert!(pulls_whole(&b, "two/nodes", "v1").await);
    assert!(pulls_whole(&a, "two/nodes", "v1").await);
}
