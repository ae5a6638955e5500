//! The context: verbs work from inside async code (the runtime is the library's own), and
//! every verb that reads a registry honours the context's registry options.

mod common;

use common::*;
use hoist_ops::{Context, Location};
use hoist_testkit::faults::{Fault, Match, Proxy, Rule};
use hoist_testkit::registry::TestRegistry;

/// Synchronous verbs called from async code: no panic, whatever the caller's runtime.
#[tokio::test(flavor = "current_thread")]
async fn verbs_work_inside_a_current_thread_runtime() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let src = at(&reg, "async/app:v1");
    put(image(2, 1), &src, &ctx);
    let dst = layout(t.path(), "v1");
    let r = hoist_ops::pull::pull(
        &reference(&reg, "async/app:v1"),
        &dst,
        &Default::default(),
        &ctx,
    )
    .unwrap();
    assert_eq!(valid(&dst, &ctx).digest.as_ref(), r.digest());
    // A registry image's layers read from async code, and the context dropped there.
    let out = t.path().join("fs.tar");
    hoist_ops::export::export(&src, &out, &ctx).unwrap();
    assert!(std::fs::metadata(&out).unwrap().len() > 20_000);
    drop(ctx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbs_work_inside_a_multi_thread_runtime() {
    let reg = TestRegistry::start();
    let ctx = ctx();
    let src = at(&reg, "async/app:v2");
    put(image(1, 2), &src, &ctx);
    let copy = at(&reg, "async/copy:v2");
    let r = hoist_ops::copy::copy(&src, &copy, &Default::default(), &ctx).unwrap();
    assert_eq!(valid(&copy, &ctx).digest.as_ref(), r.digest());
}

/// Registry options reach every verb: a registry that fails once with a 503 is retried
/// with retries, and not without. The verbs that only read a source registry took no
/// options before (mutate, append, flatten, rebase, export, index, validate).
#[test]
fn every_verb_honours_the_retry_option() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    put(image(1, 3), &at(&reg, "opt/app:v1"), &ctx());
    let proxy = Proxy::start(reg.addr(), vec![]);
    let src = Location::parse(&format!("{}/opt/app:v1", proxy.addr())).unwrap();
    let out = |n: &str| layout(t.path(), n);
    let fail_once = || {
        proxy.set_rules(vec![Rule::new(
            Match::method("GET").path("/manifests/"),
            Fault::Status(503),
            1,
        )])
    };
    type Verb<'a> = Box<dyn Fn(&Context) -> hoist_ops::Result<()> + 'a>;
    let verbs: Vec<(&str, Verb)> = vec![
        (
            "mutate",
            Box::new(|c| {
                hoist_ops::mutate::mutate(&src, &Default::default(), &out("m"), c).map(drop)
            }),
        ),
        (
            "flatten",
            Box::new(|c| {
                let gz = hoist_image::pipeline::Encoding::gzip();
                hoist_ops::flatten::flatten(&src, &gz, None, &out("f"), c).map(drop)
            }),
        ),
        (
            "export",
            Box::new(|c| hoist_ops::export::export(&src, &t.path().join("fs.tar"), c)),
        ),
        (
            "validate",
            Box::new(|c| hoist_ops::validate::validate(&src, Default::default(), c).map(drop)),
        ),
        (
            "index create",
            Box::new(|c| {
                hoist_ops::index::create(std::slice::from_ref(&src), &out("i"), c).map(drop)
            }),
        ),
        (
            "digest",
            Box::new(|c| hoist_ops::inspect::digest(&src, None, c).map(drop)),
        ),
    ];
    for (name, verb) in &verbs {
        fail_once();
        let none = Context::builder().retries(0).build().unwrap();
        let e = verb(&none).expect_err(name);
        assert!(format!("{e:#}").contains("503"), "{name}: {e:#}");
        fail_once();
        let some = Context::builder().retries(2).build().unwrap();
        verb(&some).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
}
