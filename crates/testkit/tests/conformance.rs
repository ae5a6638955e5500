//! The conformance harness against hoist (everything passes) and against the distribution
//! registry (everything passes but the KNOWN_DIFFERENCES, which must really fail there).

use hoist_testkit::conformance::{self, CHECKS, KNOWN_DIFFERENCES, Outcome};
use hoist_testkit::distribution::Distribution;
use hoist_testkit::registry::TestRegistry;

fn report(who: &str, outcomes: &[Outcome]) {
    for o in outcomes {
        match &o.result {
            Ok(()) => eprintln!("{who}: ok   {}", o.name),
            Err(e) => eprintln!("{who}: FAIL {}: {e}", o.name),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hoist_passes_every_check() {
    let reg = TestRegistry::start();
    let outcomes = conformance::run(&reg.url(), None).await;
    report("hoist", &outcomes);
    assert_eq!(outcomes.len(), CHECKS.len());
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.name)
        .collect();
    assert!(failed.is_empty(), "hoist failed {failed:?}");
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
