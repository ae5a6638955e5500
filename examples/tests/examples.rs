//! Run every example's program against the in-process registry, as a user would.

#[path = "../append_directory.rs"]
mod append_directory;
#[path = "../copy_between_registries.rs"]
mod copy_between_registries;
#[path = "../push_tarball.rs"]
mod push_tarball;
#[path = "../serve_registry.rs"]
mod serve_registry;

use hoist_image::{Child, random};
use hoist_ops::{Context, Location};
use hoist_testkit::registry::TestRegistry;

#[test]
fn push_copy_append_serve() {
    let reg = TestRegistry::start();
    let t = tempfile::tempdir().unwrap();
    let ctx = Context::builder()
        .cache_dir(t.path().join("cache"))
        .build()
        .unwrap();
    let host = reg.host();

    // A tarball to push.
    let tar = t.path().join("app.tar");
    let image = random::image(&random::Options {
        layers: 2,
        size: 10_000,
        ..Default::default()
    })
    .unwrap();
    hoist_ops::write(
        &Location::parse(&format!("docker-archive:{}", tar.display())).unwrap(),
        Child::Image(image),
        &ctx,
    )
    .unwrap();
    let dsts = [format!("{host}/ex/app:v1"), format!("{host}/ex/app:latest")];
    let pushed = push_tarball::run(tar.to_str().unwrap(), &dsts, &ctx).unwrap();
    assert_eq!(pushed.written.len(), 2);
    // Again: nothing uploaded.
    let again = push_tarball::run(tar.to_str().unwrap(), &dsts, &ctx).unwrap();
    assert_eq!(again.push.unwrap().blobs_uploaded, 0);

    let copied = copy_between_registries::run(
        &format!("docker://{host}/ex/app:v1"),
        &format!("docker://{host}/ex/copy:v1"),
        &ctx,
    )
    .unwrap();
    assert_eq!(copied.digest(), pushed.digest());
    assert_eq!(copied.push.unwrap().blobs_uploaded, 0, "mounted, not sent");

    let dir = t.path().join("site");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>hello</h1>").unwrap();
    let out = format!("{host}/ex/site:v1");
    let appended = append_directory::run(
        &format!("{host}/ex/app:v1"),
        dir.to_str().unwrap(),
        &out,
        &ctx,
    )
    .unwrap();
    let checked =
        hoist_ops::validate::validate(&Location::parse(&out).unwrap(), Default::default(), &ctx)
            .unwrap();
    assert_eq!(checked.layers, 3);
    assert_eq!(checked.digest.as_ref(), appended.digest());

    let served = serve_registry::run(&t.path().join("served")).unwrap();
    assert_eq!(served.layers, 3);
}
