//! The conformance harness against hoist on each storage backend (the filesystem, the
//! object store in memory and on SeaweedFS: everything passes) and against the distribution
//! registry (everything passes but the KNOWN_DIFFERENCES, which must really fail there).

use std::sync::Arc;

use hoist_registry::{ObjectStorage, Storage};
use hoist_testkit::conformance::{self, CHECKS, KNOWN_DIFFERENCES, Outcome};
use hoist_testkit::distribution::Distribution;
use hoist_testkit::registry::{Options, TestRegistry};
use hoist_testkit::seaweedfs::SeaweedFs;

fn report(who: &str, outcomes: &[Outcome]) {
    for o in outcomes {
        match &o.result {
            Ok(()) => eprintln!("{who}: ok   {}", o.name),
            Err(e) => eprintln!("{who}: FAIL {}: {e}", o.name),
        }
    }
}

async fn passes_every_check(who: &str, reg: &TestRegistry) {
    let outcomes = conformance::run(&reg.url(), None).await;
    report(who, &outcomes);
    assert_eq!(outcomes.len(), CHECKS.len());
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.name)
        .collect();
    assert!(failed.is_empty(), "{who} failed {failed:?}");
}

fn on(storage: impl Storage) -> TestRegistry {
    TestRegistry::start_with(Options {
        storage: Some(Arc::new(storage)),
        ..Options::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_passes_every_check() {
    passes_every_check("hoist", &TestRegistry::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_on_an_object_store_passes_every_check() {
    let store = Arc::new(object_store::memory::InMemory::new());
    passes_every_check("hoist-in-memory", &on(ObjectStorage::new(store, "reg"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_on_seaweedfs_passes_every_check() {
    let Some(weed) = SeaweedFs::shared() else {
        return;
    };
    let s3 = ObjectStorage::s3(&weed.store()).expect("S3 storage");
    passes_every_check("hoist-seaweedfs", &on(s3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_passes_all_but_the_known_differences() {
    let Some(reg) = Distribution::start() else {
        return;
    };
    let outcomes = conformance::run(&reg.url(), None).await;
    report("distribution", &outcomes);
    for (name, _) in KNOWN_DIFFERENCES {
        assert!(
            CHECKS.contains(name),
            "KNOWN_DIFFERENCES names no check {name}"
        );
    }
    let known = |n: &str| KNOWN_DIFFERENCES.iter().any(|(k, _)| *k == n);
    let unexpected: Vec<_> = outcomes
        .iter()
        .filter(|o| o.result.is_err() && !known(o.name))
        .map(|o| o.name)
        .collect();
    assert!(
        unexpected.is_empty(),
        "distribution failed checks not in KNOWN_DIFFERENCES: {unexpected:?}"
    );
    let stale: Vec<_> = outcomes
        .iter()
        .filter(|o| o.result.is_ok() && known(o.name))
        .map(|o| o.name)
        .collect();
    assert!(
        stale.is_empty(),
        "listed in KNOWN_DIFFERENCES but passing on distribution: {stale:?}"
    );
}
