//! Authentication: basic (distribution with htpasswd), bearer tokens (testkit's token
//! service gating a registry), refresh tokens, token death in the middle of a push, and
//! no secret in any error or log line.

mod common;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::TestImage;
use hoist_image::Child;
use hoist_remote::push::{self, NoProgress, Options};
use hoist_remote::{Client, Credential, Repository, StaticKeychain, Target, validate};
use hoist_testkit::distribution::{Distribution, Options as DistOptions};
use hoist_testkit::faults::Proxy;
use hoist_testkit::token::{self, TokenService};

const PASSWORD: &str = "pw-9f8e7d6c5b4a";
const REFRESH: &str = "refresh-0a1b2c3d4e5f";

/// Every log line of hoist-remote at trace level, kept to look for secrets.
fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("hoist_remote=trace"))
            .with_writer(move || Writer(b.clone()))
            .try_init();
        buf
    })
}

struct Writer(Arc<Mutex<Vec<u8>>>);
impl Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_no_secret(text: &str, secrets: &[String]) {
    assert!(!text.is_empty(), "nothing to look at");
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "secret {s:?} leaked into: {text}"
        );
    }
}

fn client(registry: &str, cred: Credential) -> Client {
    Client::builder()
        .keychain(Arc::new(StaticKeychain::new().with(registry, cred)))
        .retry(hoist_remote::retry::RetryPolicy {
            retries: 4,
            base: Duration::from_millis(20),
            max: Duration::from_secs(1),
        })
        .build()
        .unwrap()
}

fn basic(user: &str, pw: &str) -> Credential {
    Credential::Basic {
        username: user.into(),
        password: pw.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_against_distribution_htpasswd() {
    let logs = log_buffer();
    let Some(htpasswd) = hoist_testkit::peers::require("htpasswd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(htpasswd)
        .args(["-Bbn", "alice", PASSWORD])
        .output()
        .unwrap();
    assert!(out.status.success());
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, &out.stdout).unwrap();
    let Some(reg) = Distribution::start_with(DistOptions {
        htpasswd: Some(file),
    }) else {
        return;
    };
    let registry = reg.addr().to_string();
    let t = Target::tagged(Repository::new(&registry, "auth/basic").unwrap(), "v1").unwrap();
    let img = TestImage::new(10, 2, 100 << 10);

    let good = client(&registry, basic("alice", PASSWORD));
    push::push(
        &good,
        Child::Image(img.clone()),
        std::slice::from_ref(&t),
        &Options::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    validate(&good, &t.repo, "v1", Default::default())
        .await
        .unwrap();

    let wrong = client(&registry, basic("alice", "wrong-password-123"));
    let e = push::push(
        &wrong,
        Child::Image(img),
        std::slice::from_ref(&t),
        &Options::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap_err();
    assert!(e.is_unauthorized(), "{e}");
    let secrets = vec![PASSWORD.to_string(), "wrong-password-123".to_string()];
    assert_no_secret(&format!("{e} {e:?}"), &secrets);
    let anon = client(&registry, Credential::Anonymous);
    let e = anon.check_auth(&registry, Some(&t.repo)).await;
    assert!(e.is_ok() || e.as_ref().unwrap_err().is_unauthorized());
    assert_no_secret(&String::from_utf8_lossy(&logs.lock().unwrap()), &secrets);
}

fn gated(opts: token::Options) -> Option<(Distribution, Arc<TokenService>, Proxy)> {
    let reg = Distribution::start()?;
    let svc = TokenService::start(opts);
    let proxy = Proxy::start_with(reg.addr(), vec![], Some(svc.clone()));
    Some((reg, svc, proxy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_basic_and_refresh_grants() {
    let logs = log_buffer();
    let Some((_reg, svc, proxy)) = gated(token::Options {
        users: vec![("alice".into(), PASSWORD.into())],
        refresh_tokens: vec![REFRESH.into()],
        ..Default::default()
    }) else {
        return;
    };
    let registry = proxy.addr().to_string();
    let img = TestImage::new(11, 2, 100 << 10);
    let t = Target::tagged(Repository::new(&registry, "auth/bearer").unwrap(), "v1").unwrap();

    let c = client(&registry, basic("alice", PASSWORD));
    push::push(
        &c,
        Child::Image(img.clone()),
        std::slice::from_ref(&t),
        &Options::default(),
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let s = c.stats();
    assert!(
        s.token_fetches >= 1 && s.token_fetches <= 2,
        "cached per scope: {s:?}"
    );
    validate(&c, &t.repo, "v1", Default::default())
        .await
        .unwrap();

    // An identity token goes through the OAuth2 refresh grant (POST).
    let c = client(&registry, Credential::IdentityToken(REFRESH.into()));
    let before = svc.counters().refresh_grants.load(Ordering::Relaxed);
    validate(&c, &t.repo, "v1", Default::default())
        .await
        .unwrap();
    assert!(svc.counters().refresh_grants.load(Ordering::Relaxed) > before);

    // Bad credentials: an auth error naming the registry, no secret in it.
    let c = client(&registry, basic("alice", "nope-nope-nope"));
    let e = validate(&c, &t.repo, "v1", Default::default())
        .await
        .unwrap_err();
    assert!(e.is_unauthorized(), "{e}");
    assert!(e.to_string().contains(&registry), "{e}");

    let mut secrets: Vec<String> = svc.issued_tokens();
    assert!(!secrets.is_empty());
    secrets.extend([
        PASSWORD.to_string(),
        REFRESH.to_string(),
        "nope-nope-nope".to_string(),
    ]);
    assert_no_secret(&format!("{e} {e:?}"), &secrets);
    assert_no_secret(&String::from_utf8_lossy(&logs.lock().unwrap()), &secrets);
}

/// Tokens die after a few requests while the service claims they live 5 minutes: the
/// client meets 401s in the middle of uploads, fetches new tokens and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_in_the_middle_of_a_push() {
    let logs = log_buffer();
    let Some((_reg, svc, proxy)) = gated(token::Options {
        users: vec![("alice".into(), PASSWORD.into())],
        max_uses: Some(3),
        ..Default::default()
    }) else {
        return;
    };
    let registry = proxy.addr().to_string();
    let img = TestImage::new(12, 3, 1 << 20);
    let t = Target::tagged(Repository::new(&registry, "auth/expiry").unwrap(), "v1").unwrap();
    let c = client(&registry, basic("alice", PASSWORD));
    let opts = Options {
        chunk_size: Some(64 << 10),
        monolithic_max: 0,
        jobs: 2,
        ..Options::default()
    };
    push::push(
        &c,
        Child::Image(img),
        std::slice::from_ref(&t),
        &opts,
        Arc::new(NoProgress),
    )
    .await
    .unwrap();
    let s = c.stats();
    assert!(s.reauths >= 2, "{s:?}");
    assert!(svc.counters().expired.load(Ordering::Relaxed) >= 2);
    assert!(s.token_fetches >= 3, "{s:?}");
    validate(&c, &t.repo, "v1", Default::default())
        .await
        .unwrap();
    let mut secrets = svc.issued_tokens();
    secrets.push(PASSWORD.to_string());
    assert_no_secret(&String::from_utf8_lossy(&logs.lock().unwrap()), &secrets);
}
