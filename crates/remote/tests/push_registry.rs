//! Push against the in-process hoist registry: push then check what it serves, and a
//! connection reset in the middle of a streamed upload is resumed from the registry's
//! offset (the registry keeps the bytes it received), not restarted.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::TestImage;
use hoist_image::Child;
use hoist_remote::push::{self, NoProgress, Options};
use hoist_remote::{Client, Repository, Target, validate};
use hoist_testkit::faults::{Fault, Match, Proxy, Rule};
use hoist_testkit::registry::TestRegistry;

fn client() -> Client {
    Client::builder()
        .retry(hoist_remote::retry::RetryPolicy {
            retries: 5,
            base: Duration::from_millis(20),
            max: Duration::from_secs(1),
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_check_repush_against_the_hoist_registry() {
    common::logs();
    let reg = TestRegistry::start();
    let img = TestImage::new(20, 3, 300 << 10);
    let c = client();
    let opts = Options {
        monolithic_max: 16 << 10,
        ..Options::default()
    };
    let a = Target::tagged(
        Repository::new(reg.addr().to_string(), "inproc/a").unwrap(),
        "v1",
    )
    .unwrap();
    let b = Target::tagged(
        Repository::new(reg.addr().to_string(), "inproc/b").unwrap(),
        "v1",
    )
    .unwrap();
    let r = push::push(
        &c,
        Child::Image(img.clone()),
        &[a.clone(), b.clone()],
        &opts,
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!((r.blobs_uploaded, r.blobs_mounted), (4, 4), "{r:?}");
    for t in [&a, &b] {
        let k = validate(&c, &t.repo, "v1", Default::default())
            .await
            .unwrap();
        assert_eq!(k.layers, 3);
    }
    let r = push::push(
        &c,
        Child::Image(img.clone()),
        &[a, b],
        &opts,
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.blobs_present, r.blobs_uploaded, r.manifests_put),
        (8, 0, 0),
        "{r:?}"
    );
    assert_eq!(img.seals(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_body_resumes_from_the_registry_offset() {
    common::logs();
    let reg = TestRegistry::start();
    let proxy = Proxy::start(
        reg.addr(),
        vec![Rule::new(
            Match::method("PATCH"),
            Fault::ResetAfter(200 << 10),
            1,
        )],
    );
    let img = TestImage::new(21, 1, 2 << 20);
    let c = client();
    let opts = Options {
        monolithic_max: 0,
        ..Options::default()
    };
    let t = Target::tagged(
        Repository::new(proxy.addr().to_string(), "inproc/reset").unwrap(),
        "v1",
    )
    .unwrap();
    push::push(
        &c,
        Child::Image(img.clone()),
        std::slice::from_ref(&t),
        &opts,
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let s = c.stats();
    let pc = proxy.counters();
    assert_eq!(pc.resets.load(Ordering::Relaxed), 1, "{}", pc.summary());
    assert_eq!((s.resumes, s.restarts), (1, 0), "{s:?}");
    let layer = hoist_image::Layer::size(&*img.layers[0]).unwrap();
    let config = img.config.raw().len() as u64;
    let manifest = hoist_image::Image::manifest(&*img).unwrap().raw().len() as u64;
    assert_eq!(
        pc.body_bytes.load(Ordering::Relaxed),
        layer + config + manifest,
        "no byte sent twice: {}",
        pc.summary()
    );
    validate(&c, &t.repo, "v1", Default::default())
        .await
        .unwrap();
}

/// Uploads do not hash layout blobs a second time (the registry does): a blob whose bytes
/// do not match its digest is still refused, by the registry, with an error naming it, and
/// a truncated one is caught by its size. Nothing is stored under the wrong digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_layout_blobs_are_refused_and_named() {
    common::logs();
    let reg = TestRegistry::start();
    common::corrupt_layout_push(reg.addr(), &client()).await;
}

/// A failed push cancels the upload sessions it opened, those aborted in the middle of a
/// request included: the registry's uploads/ is empty afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_push_cancels_its_upload_sessions() {
    common::logs();
    let reg = TestRegistry::start();
    let uploads = reg.root().join("uploads");
    for failure in [common::Failure::MidRequest, common::Failure::AtCommit] {
        common::failed_push_leaves_no_sessions(reg.addr(), &client(), failure, || {
            std::fs::read_dir(&uploads).map(|r| r.count()).unwrap()
        })
        .await;
    }
}
