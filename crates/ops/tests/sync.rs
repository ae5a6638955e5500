//! sync: registry to registry, against the in-process registry (which has the referrers
//! API) and the distribution registry (which has not: the referrers tag schema), with
//! counting proxies in front to prove what was (not) sent.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use hoist_ops::sync::{self, Endpoint, Outcome, Pair, Report, TagFilter};
use hoist_ops::{Context, Location, Platforms};
use hoist_testkit::api::{ALL_MANIFESTS, Raw};
use hoist_testkit::distribution::Distribution;
use hoist_testkit::faults::{Fault, Match, Proxy, Rule};
use hoist_testkit::mirror::{self, Source};
use hoist_testkit::registry::TestRegistry;

fn ctx() -> Context {
    Context::builder().retries(2).jobs(4).build().unwrap()
}

fn pair(src: &str, dst: &str) -> Pair {
    Pair::new(Endpoint::parse(src).unwrap(), Endpoint::parse(dst).unwrap())
}

fn run(pairs: &[Pair], opts: &sync::Options, ctx: &Context) -> Report {
    let r = sync::sync(pairs, opts, ctx).unwrap();
    let failed: Vec<_> = r
        .images
        .iter()
        .filter(|i| matches!(i.outcome, Outcome::Failed(_)))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    r
}

/// Every image of `src` is at `dst` (prefix `from` renamed `to`) with its digest and
/// passes the oracle; every referrer is there byte for byte, listed through the
/// referrers API (`dst_api`) or under its subject's fallback tag.
fn check_mirrored(
    raw: &Raw,
    src: &Source,
    (src_host, from): (&str, &str),
    (dst_host, to): (&str, &str),
    dst_api: bool,
    ctx: &Context,
) {
    let rename = |repo: &str| format!("{to}{}", repo.strip_prefix(from).unwrap());
    for (repo, tag, d) in &src.images {
        let at = rename(repo);
        assert_eq!(
            raw.digest(dst_host, &at, tag).as_ref(),
            Some(d),
            "{at}:{tag}"
        );
        let loc = Location::parse(&format!("docker://{dst_host}/{at}:{tag}")).unwrap();
        let report = hoist_ops::validate::validate(&loc, Default::default(), ctx)
            .unwrap_or_else(|e| panic!("{loc}: {e:#}"));
        assert_eq!(report.digest.as_ref(), Some(d), "{loc}");
    }
    for r in &src.referrers {
        let at = rename(&r.repo);
        let want = raw.get(
            &format!("http://{src_host}/v2/{}/manifests/{}", r.repo, r.digest),
            ALL_MANIFESTS,
        );
        let got = raw.get(
            &format!("http://{dst_host}/v2/{at}/manifests/{}", r.digest),
            ALL_MANIFESTS,
        );
        assert_eq!(
            (got.0, &got.1),
            (200, &want.1),
            "referrer {} in {at}",
            r.digest
        );
        let listing = if dst_api {
            raw.json(
                &format!("http://{dst_host}/v2/{at}/referrers/{}", r.subject),
                "application/vnd.oci.image.index.v1+json",
            )
        } else {
            raw.json(
                &format!(
                    "http://{dst_host}/v2/{at}/manifests/sha256-{}",
                    r.subject.hex()
                ),
                "application/vnd.oci.image.index.v1+json",
            )
        };
        let listed: Vec<&str> = listing["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap())
            .collect();
        assert!(
            listed.contains(&r.digest.to_string().as_str()),
            "{} not listed for {} in {at}: {listing}",
            r.digest,
            r.subject
        );
        let entry = listing["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["digest"] == r.digest.to_string())
            .unwrap();
        assert_eq!(entry["artifactType"], r.artifact_type.as_str(), "{listing}");
    }
}

/// The routes a proxy saw, other than these.
fn other_routes(p: &Proxy, allowed: &[&str]) -> Vec<(String, u64)> {
    p.counters()
        .routes()
        .into_iter()
        .filter(|(k, _)| !allowed.contains(&k.as_str()))
        .collect()
}

#[test]
fn a_registry_with_the_referrers_api_mirrored_to_distribution() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let src = TestRegistry::start();
    let src_proxy = Proxy::start(src.addr(), vec![]);
    let dst_proxy = Proxy::start(dist.addr(), vec![]);
    let (sh, dh) = (src_proxy.addr().to_string(), dst_proxy.addr().to_string());
    let fixture = mirror::populate(&src.url(), &mirror::Options::default());
    let raw = Raw::new();
    let tags = fixture.images.len();
    assert_eq!(tags, 31);

    let mut p = pair(&format!("{sh}/team"), &format!("{dh}/mirror"));
    p.referrers = true;
    let report = run(std::slice::from_ref(&p), &Default::default(), &ctx());
    assert_eq!(report.copied(), tags, "{report:#?}");
    // Each distinct blob went to the destination registry once; every other
    // repository that needed it had it mounted (the two base layers: into each app
    // repository but the first), or had it already (tags of one repository).
    let m = report.moved;
    let apps = fixture.repos().len() as u64 - 1;
    assert_eq!(m.blobs_uploaded, fixture.blobs.len() as u64, "{m:?}");
    assert_eq!(
        m.bytes_uploaded,
        fixture.blobs.values().sum::<u64>(),
        "{m:?}"
    );
    assert!(m.blobs_mounted >= 2 * (apps - 1), "{m:?}");
    assert_eq!(
        dst_proxy.counters().route("PUT", "uploads"),
        fixture.blobs.len() as u64,
        "{}",
        dst_proxy.counters().summary()
    );
    assert_eq!(m.referrers, fixture.referrers.len() as u64, "{m:?}");
    // Every destination repository was new: its tag list was asked once (404), and no
    // blob was HEADed there; a tag the destination lacked cost no HEAD at the source.
    let (s, d) = (src_proxy.counters(), dst_proxy.counters());
    assert_eq!(d.route("HEAD", "blobs"), 0, "{}", d.summary());
    assert_eq!(
        d.route("GET", "tags"),
        fixture.repos().len() as u64,
        "{}",
        d.summary()
    );
    assert_eq!(s.route("HEAD", "manifests"), 0, "{}", s.summary());
    // Nor was any tag but the first asked of each repository HEADed there: the first
    // one's 404 and the tag list told that the repository, so all its tags, were new.
    for repo in fixture.repos() {
        let at = repo.replacen("team", "mirror", 1);
        let headed: Vec<&String> = fixture
            .images
            .iter()
            .filter(|(r, t, _)| {
                *r == repo && d.count_of("HEAD", &format!("/v2/{at}/manifests/{t}")) > 0
            })
            .map(|(_, t, _)| t)
            .collect();
        assert_eq!(headed.len(), 1, "{at}: {headed:?} {:#?}", d.log());
        assert_eq!(
            d.count_of("HEAD", &format!("/v2/{at}/manifests/{}", headed[0])),
            1,
            "{at}"
        );
    }
    check_mirrored(
        &raw,
        &fixture,
        (&sh, "team"),
        (&dh, "mirror"),
        false,
        &ctx(),
    );

    // Again, nothing changed: a HEAD of each tag on each side, the listings at the
    // source, and nothing else.
    src_proxy.counters().reset();
    dst_proxy.counters().reset();
    let plain = pair(&format!("{sh}/team"), &format!("{dh}/mirror"));
    let again = run(&[plain], &Default::default(), &ctx());
    assert_eq!(again.unchanged(), tags);
    let (s, d) = (src_proxy.counters(), dst_proxy.counters());
    assert_eq!(s.route("HEAD", "manifests"), tags as u64, "{}", s.summary());
    assert_eq!(d.route("HEAD", "manifests"), tags as u64, "{}", d.summary());
    assert_eq!(s.route("GET", "catalog"), 1, "{}", s.summary());
    assert_eq!(
        s.route("GET", "tags"),
        fixture.repos().len() as u64,
        "{}",
        s.summary()
    );
    let allowed = ["HEAD manifests", "GET tags", "GET catalog", "GET base"];
    assert!(
        other_routes(&src_proxy, &allowed).is_empty(),
        "{}",
        s.summary()
    );
    assert!(
        other_routes(&dst_proxy, &["HEAD manifests", "GET base"]).is_empty(),
        "{}",
        d.summary()
    );
    assert_eq!(d.body_bytes.load(std::sync::atomic::Ordering::Relaxed), 0);

    // With referrers: they are looked up, found there, and nothing is written.
    dst_proxy.counters().reset();
    let again = run(std::slice::from_ref(&p), &Default::default(), &ctx());
    assert_eq!(again.unchanged(), tags, "{again:#?}");
    assert_eq!(again.moved.referrers, 0);
    assert_eq!(
        dst_proxy.counters().method("PUT"),
        0,
        "{}",
        dst_proxy.counters().summary()
    );
    assert_eq!(
        dst_proxy.counters().method("POST"),
        0,
        "{}",
        dst_proxy.counters().summary()
    );
}

#[test]
fn distribution_with_fallback_tags_mirrored_to_a_registry_with_the_api() {
    let Some(dist) = Distribution::start() else {
        return;
    };
    let dst = TestRegistry::start();
    let opts = mirror::Options {
        repos: 3,
        referrers_api: false,
        ..Default::default()
    };
    let fixture = mirror::populate(&dist.url(), &opts);
    let raw = Raw::new();
    let (sh, dh) = (dist.addr().to_string(), dst.host());
    // The source lists the fallback tags among its tags.
    assert!(
        raw.tags(&sh, "team/multi")
            .iter()
            .any(|t| t.starts_with("sha256-"))
    );
    let mut p = pair(&format!("{sh}/team"), &format!("{dh}/copy"));
    p.referrers = true;
    let report = run(&[p], &Default::default(), &ctx());
    assert_eq!(report.copied(), fixture.images.len(), "{report:#?}");
    assert_eq!(report.moved.referrers, fixture.referrers.len() as u64);
    check_mirrored(&raw, &fixture, (&sh, "team"), (&dh, "copy"), true, &ctx());
    // The fallback tags are the referrers copy's business, not tags to copy: the
    // destination, which has the API, needs none.
    for repo in fixture.repos() {
        let at = repo.replacen("team", "copy", 1);
        let tags = raw.tags(&dh, &at);
        assert!(
            !tags.iter().any(|t| t.starts_with("sha256-")),
            "{at}: {tags:?}"
        );
    }
}

#[test]
fn tag_filters_a_dry_run_and_platforms() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let src_proxy = Proxy::start(src.addr(), vec![]);
    let (sh, dh) = (src_proxy.addr().to_string(), dst.host());
    let opts = mirror::Options {
        repos: 2,
        tags: ["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0", "latest", "edge"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    let fixture = mirror::populate(&src.url(), &opts);
    let raw = Raw::new();

    // A dry run: the plan, with bytes, and nothing written.
    let mut p = pair(&format!("{sh}/team"), &format!("{dh}/m"));
    p.tags = TagFilter::all()
        .semver(">=1.1, <3")
        .unwrap()
        .latest(2)
        .unwrap();
    let dry = sync::Options {
        dry_run: true,
        ..Default::default()
    };
    let plan = run(std::slice::from_ref(&p), &dry, &ctx());
    let planned: BTreeSet<String> = plan
        .images
        .iter()
        .filter(|i| i.outcome == Outcome::Planned)
        .map(|i| i.source.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(
        planned,
        ["app0:1.1.0", "app0:2.0.0", "app1:1.1.0", "app1:2.0.0"]
            .map(String::from)
            .into(),
        "{plan:#?}"
    );
    // 2 base layers, and per image its own layer and config: the base goes once.
    let own = |repo: &str, tag: &str| {
        let d = fixture
            .images
            .iter()
            .find(|(r, t, _)| r == repo && t == tag)
            .unwrap();
        d.2.clone()
    };
    assert_eq!(plan.moved.blobs_uploaded, 2 + 4 * 2, "{:?}", plan.moved);
    assert!(plan.moved.bytes_uploaded > 0);
    assert_eq!(plan.copied(), 0);
    let catalog = raw.json(&format!("http://{dh}/v2/_catalog"), "*/*");
    assert_eq!(
        catalog["repositories"].as_array().map_or(0, Vec::len),
        0,
        "{catalog}"
    );

    // The real thing: the whole tag must match, then exclusions.
    let mut p = pair(&format!("{sh}/team"), &format!("{dh}/m"));
    p.tags = TagFilter::all()
        .tags(r"1\..*")
        .unwrap()
        .exclude(".*-rc.*")
        .unwrap();
    let r = run(&[p], &Default::default(), &ctx());
    assert_eq!(r.copied(), 4);
    assert_eq!(raw.tags(&dh, "m/app0"), vec!["1.0.0", "1.1.0"]);
    assert_eq!(
        raw.digest(&dh, "m/app1", "1.1.0"),
        Some(own("team/app1", "1.1.0"))
    );

    // One platform of an index: that image; several: a narrowed index, as `copy` makes it.
    let index = own("team/multi", "v1");
    let m = raw.json(
        &format!("http://{sh}/v2/team/multi/manifests/{index}"),
        ALL_MANIFESTS,
    );
    let amd64 = m["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut one = pair(&format!("{sh}/team/multi"), &format!("{dh}/one"));
    one.platforms = Platforms::parse(&["linux/amd64".into()]).unwrap();
    let mut two = pair(&format!("{sh}/team/multi"), &format!("{dh}/two"));
    two.platforms = Platforms::parse(&["linux/amd64,linux/s390x".into()]).unwrap();
    let t = tempfile::tempdir().unwrap();
    let state = sync::Options {
        state: Some(t.path().join("state.jsonl")),
        ..Default::default()
    };
    let r = run(&[one.clone(), two.clone()], &state, &ctx());
    assert_eq!(r.copied(), 2, "{r:#?}");
    assert_eq!(raw.digest(&dh, "one", "v1").unwrap().to_string(), amd64);
    let copied = hoist_ops::copy::copy(
        &Location::parse(&format!("docker://{sh}/team/multi:v1")).unwrap(),
        &Location::parse(&format!("docker://{dh}/by-copy:v1")).unwrap(),
        &hoist_ops::copy::Options {
            platforms: two.platforms.clone(),
            ..Default::default()
        },
        &ctx(),
    )
    .unwrap();
    let narrowed = raw.digest(&dh, "two", "v1").unwrap();
    assert_eq!(copied.digest(), Some(&narrowed));
    assert_ne!(narrowed, index);
    // Unchanged, told from the state file: the source's index is not fetched again.
    src_proxy.counters().reset();
    let r = run(&[one, two], &state, &ctx());
    assert_eq!(r.unchanged(), 2, "{r:#?}");
    let s = src_proxy.counters();
    assert_eq!(s.route("GET", "manifests"), 0, "{}", s.summary());
    assert_eq!(s.route("HEAD", "manifests"), 2, "{}", s.summary());
}

#[test]
fn one_bound_on_blob_transfers_across_all_images() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    // Uploads held a little, so that they overlap when allowed to.
    let dst_proxy = Proxy::start(
        dst.addr(),
        vec![Rule::new(
            Match::method("PUT").path("/blobs/uploads/"),
            Fault::Stall(Duration::from_millis(30)),
            u64::MAX,
        )],
    );
    let opts = mirror::Options {
        repos: 6,
        tags: vec!["a".into(), "b".into()],
        extras: false,
        ..Default::default()
    };
    let fixture = mirror::populate(&src.url(), &opts);
    let ctx = Context::builder().retries(1).jobs(2).build().unwrap();
    let p = pair(
        &format!("{}/team", src.host()),
        &format!("{}/team", dst_proxy.addr()),
    );
    let r = run(&[p], &Default::default(), &ctx);
    assert_eq!(r.copied(), fixture.images.len());
    let c = dst_proxy.counters();
    let most = c
        .max_uploads_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=2).contains(&most),
        "{most} uploads at once; {}",
        c.summary()
    );
    assert_eq!(r.moved.blobs_uploaded, fixture.blobs.len() as u64);
}

#[test]
fn an_upload_cut_in_one_run_continues_from_the_registry_offset_in_the_next() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    const BIG: u64 = 6 << 20;
    let opts = mirror::Options {
        repos: 1,
        tags: vec!["v1".into()],
        extras: false,
        big_layer: Some(BIG),
        ..Default::default()
    };
    let fixture = mirror::populate(&src.url(), &opts);
    // The big layer's PATCH: 4 MiB reach the registry, then the connection drops.
    let cut = 4 << 20;
    let dst_proxy = Proxy::start(
        dst.addr(),
        vec![Rule::new(Match::method("PATCH"), Fault::ResetAfter(cut), 1)],
    );
    let t = tempfile::tempdir().unwrap();
    let opts = sync::Options {
        state: Some(t.path().join("state.jsonl")),
        ..Default::default()
    };
    let p = pair(
        &format!("{}/team", src.host()),
        &format!("{}/team", dst_proxy.addr()),
    );
    // No retries: the first run gives up on the cut upload (as a killed one would).
    let once = Context::builder().retries(0).build().unwrap();
    let r = sync::sync(std::slice::from_ref(&p), &opts, &once).unwrap();
    assert_eq!(r.failed(), 1, "{r:#?}");
    let state = std::fs::read_to_string(t.path().join("state.jsonl")).unwrap();
    assert!(state.contains(r#""t":"session""#), "{state}");

    dst_proxy.counters().reset();
    let ctx = ctx();
    let r = run(std::slice::from_ref(&p), &opts, &ctx);
    assert_eq!(r.copied(), 1, "{r:#?}");
    let sent = dst_proxy
        .counters()
        .body_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let big = fixture.blobs.values().copied().max().unwrap();
    assert!(big > BIG, "{big}");
    assert!(
        sent < big - cut + (1 << 20),
        "sent {sent} bytes again; the big blob is {big} and {cut} arrived before"
    );
    assert_eq!(ctx.opened_client().unwrap().stats().resumes, 1);
    let (repo, tag, d) = &fixture.images[0];
    let at = Location::parse(&format!("docker://{}/{repo}:{tag}", dst.host())).unwrap();
    assert_eq!(
        hoist_ops::validate::validate(&at, Default::default(), &ctx)
            .unwrap()
            .digest
            .as_ref(),
        Some(d)
    );
}

/// What the transport announced: retries (with their waits) and slowdowns.
#[derive(Default)]
struct Heard {
    retries: std::sync::Mutex<Vec<(String, Duration)>>,
    throttled: std::sync::Mutex<Vec<(u64, u64, Duration)>>,
}

impl hoist_remote::push::Progress for Heard {
    fn retrying(&self, r: &hoist_remote::push::Retrying<'_>) {
        self.retries
            .lock()
            .unwrap()
            .push((format!("{} {}", r.what, r.error), r.delay));
    }
    fn throttled(&self, t: &hoist_remote::push::Throttled<'_>) {
        self.throttled
            .lock()
            .unwrap()
            .push((t.remaining, t.limit, t.spacing));
    }
}

#[test]
fn rate_limits_slow_the_sync_down_and_retry_after_is_honoured() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let src_proxy = Proxy::start(src.addr(), vec![]);
    let opts = mirror::Options {
        repos: 1,
        tags: vec!["a".into(), "b".into(), "c".into()],
        extras: false,
        ..Default::default()
    };
    let fixture = mirror::populate(&src.url(), &opts);
    let sh = src_proxy.addr().to_string();
    let raw = Raw::new();
    // A retry that ignored `Retry-After` would come back within the window (the
    // backoff is a fraction of a second) and be refused again, twice: the run fails.
    let heard = std::sync::Arc::new(Heard::default());
    let ctx = || {
        Context::builder()
            .retries(2)
            .progress(heard.clone())
            .build()
            .unwrap()
    };
    let one_at_a_time = sync::Options {
        images: 1,
        ..Default::default()
    };

    // Docker Hub's way: two manifest GETs per window of 2 s, told in every answer.
    // The second answer says none are left: the third GET waits for the next window
    // instead of being refused.
    src_proxy.set_rate_limit(
        Match::method("GET").path("/manifests/"),
        2,
        Duration::from_secs(2),
    );
    let p = pair(&format!("{sh}/team/app0"), &format!("{}/paced", dst.host()));
    let r = run(std::slice::from_ref(&p), &one_at_a_time, &ctx());
    assert_eq!(r.copied(), 3, "{r:#?}");
    let c = src_proxy.counters();
    assert_eq!(c.route("GET", "manifests"), 3, "{}", c.summary());
    assert_eq!(
        c.limited.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "{}",
        c.summary()
    );
    let throttled = heard.throttled.lock().unwrap().clone();
    assert_eq!(
        throttled.first().map(|t| (t.0, t.1)),
        Some((0, 2)),
        "{throttled:?}"
    );
    assert!(throttled[0].2 >= Duration::from_secs(2), "{throttled:?}");
    assert!(heard.retries.lock().unwrap().is_empty());

    // Refused: a 429 with `Retry-After`, waited for, then the request goes again.
    // HEADs are not paced (Docker Hub does not count them). The destination has the
    // repository (with the tag c), so each tag is HEADed there: the first one asked
    // alone, then the other two at once, one allowed (a tag the destination lacks
    // costs no HEAD at the source). The source is read directly (its GETs are paced
    // above: this part is about the destination's 429).
    let mut first = pair(
        &format!("{}/team/app0", src.host()),
        &format!("{}/refused", dst.host()),
    );
    first.tags = TagFilter::all().tags("c").unwrap();
    assert_eq!(run(&[first], &one_at_a_time, &ctx()).copied(), 1);
    let dst_proxy = Proxy::start(dst.addr(), vec![]);
    dst_proxy.set_rate_limit(
        Match::method("HEAD").path("/manifests/"),
        2,
        Duration::from_secs(3),
    );
    let three_at_a_time = sync::Options {
        images: 3,
        ..Default::default()
    };
    let p = pair(
        &format!("{}/team/app0", src.host()),
        &format!("{}/refused", dst_proxy.addr()),
    );
    let r = run(&[p], &three_at_a_time, &ctx());
    assert_eq!((r.copied(), r.unchanged()), (2, 1), "{r:#?}");
    let c = dst_proxy.counters();
    assert_eq!(
        c.limited.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "{}",
        c.summary()
    );
    let retries = heard.retries.lock().unwrap().clone();
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert!(
        retries[0].0.contains("429") || retries[0].0.to_lowercase().contains("too many"),
        "{retries:?}"
    );
    assert!(retries[0].1 >= Duration::from_secs(1), "{retries:?}");
    for (repo, tag, d) in &fixture.images {
        let at = repo.replacen("team/app0", "paced", 1);
        assert_eq!(
            raw.digest(&dst.host(), &at, tag).as_ref(),
            Some(d),
            "{at}:{tag}"
        );
    }
}

/// Told as the sync goes: when images were listed and when each ended.
#[derive(Default)]
struct Events(std::sync::Mutex<Vec<Event>>);
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Planned(usize),
    Done(String),
}
impl sync::Watch for Events {
    fn planned(&self, images: usize) {
        self.0.lock().unwrap().push(Event::Planned(images));
    }
    fn image(&self, image: &sync::Image) {
        self.0
            .lock()
            .unwrap()
            .push(Event::Done(image.source.clone()));
    }
}

#[test]
fn images_start_while_other_repositories_are_still_listed() {
    let src = TestRegistry::start();
    let dst = TestRegistry::start();
    let opts = mirror::Options {
        repos: 4,
        tags: vec!["a".into(), "b".into()],
        extras: false,
        ..Default::default()
    };
    let fixture = mirror::populate(&src.url(), &opts);
    // The last repository's tags come late: the others' images go meanwhile.
    let src_proxy = Proxy::start(
        src.addr(),
        vec![Rule::new(
            Match::method("GET").path("/team/app3/tags/list"),
            Fault::Stall(Duration::from_millis(1500)),
            u64::MAX,
        )],
    );
    let events = std::sync::Arc::new(Events::default());
    let sopts = sync::Options {
        watch: events.clone(),
        ..Default::default()
    };
    let p = pair(
        &format!("{}/team", src_proxy.addr()),
        &format!("{}/team", dst.host()),
    );
    let r = run(&[p], &sopts, &ctx());
    assert_eq!(r.copied(), fixture.images.len());
    // The report keeps the listing's order: repositories, then tags, sorted.
    let listed: Vec<String> = r.images.iter().map(|i| i.source.clone()).collect();
    let want: Vec<String> = fixture
        .images
        .iter()
        .map(|(repo, tag, _)| format!("{}/{repo}:{tag}", src_proxy.addr()))
        .collect();
    assert_eq!(listed, want);
    let ev = events.0.lock().unwrap().clone();
    let planned: Vec<usize> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Planned(n) => Some(*n),
            Event::Done(_) => None,
        })
        .collect();
    // One call per repository, as its tags arrive; app3's last.
    assert_eq!(planned, vec![2; 4], "{ev:?}");
    let last = ev
        .iter()
        .rposition(|e| matches!(e, Event::Planned(_)))
        .unwrap();
    let before: Vec<&Event> = ev[..last]
        .iter()
        .filter(|e| matches!(e, Event::Done(_)))
        .collect();
    // (all six, on an idle machine: 1.5 s is long for them)
    assert!(
        !before.is_empty(),
        "no image done before app3 was listed: {ev:?}"
    );
    assert!(
        before
            .iter()
            .all(|e| !matches!(e, Event::Done(s) if s.contains("/team/app3:"))),
        "{ev:?}"
    );
}
