//! Basic authentication against an htpasswd file of bcrypt hashes (`htpasswd -B`).
//!
//! - **No user enumeration by timing**: a user the file does not know costs a bcrypt
//!   verification too, against a hash of the file's highest cost made at load, so an
//!   unknown user and a wrong password take the same work.
//! - **Bounded work**: at most [`MAX_CHECKS`] verifications run at once; a check that
//!   waits longer than [`CHECK_WAIT`] for its turn fails (the client gets 401 and tries
//!   again), so a flood of bad passwords costs at most that much CPU and memory.
//! - **A short memory of successes**: clients send the same credentials with every
//!   request, so a successful check is remembered for [`REMEMBER_FOR`], keyed by a keyed
//!   hash (a per-process random key) of the user, the password and the stored hash: never
//!   the password itself, and a changed password in the file never matches. Remembered
//!   credentials skip the queue: clients already in cannot be starved by clients that are not.
//! - The scheme is matched in any case (`basic`, RFC 7617).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hoist_image::Hasher;
use tokio::sync::Semaphore;

/// Successful checks remembered, at most this many (the oldest half is dropped then).
const MAX_REMEMBERED: usize = 4096;
/// How long a successful check is remembered.
pub const REMEMBER_FOR: Duration = Duration::from_secs(300);
/// bcrypt verifications running at once: one per core of a small server, and each takes
/// tens of milliseconds, so several hundred checks a second at most.
pub const MAX_CHECKS: usize = 4;
/// How long a check waits for its turn before it fails.
pub const CHECK_WAIT: Duration = Duration::from_secs(10);

/// Users and bcrypt hashes from an htpasswd file.
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// A hash of a random password at the file's highest cost: what an unknown user is
    /// verified against.
    decoy: String,
    /// The key of the remembered successes' hashes, random per process.
    key: [u8; 32],
    ok: Mutex<HashMap<String, Instant>>,
    checks: Semaphore,
    /// bcrypt verifications done (the work an attacker can make the server do).
    verified: AtomicU64,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.len())
            .finish()
    }
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The credentials are right: the user's name.
    User(String),
    /// No credentials, malformed ones, an unknown user or a wrong password.
    Denied,
    /// Too many checks waiting: try again later.
    Busy,
}

impl Htpasswd {
    /// Load an htpasswd file. Every entry must be a bcrypt hash (`$2y$`, `$2b$`, `$2a$`).
    pub fn load(path: &Path) -> Result<Htpasswd, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("htpasswd file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("htpasswd file {}: {e}", path.display()))
    }

    /// Parse htpasswd text.
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        let mut cost = 4;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: expected user:hash", i + 1));
            };
            let parts = hash
                .parse::<bcrypt::HashParts>()
                .ok()
                .filter(|_| ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)));
            let Some(parts) = parts else {
                return Err(format!(
                    "line {}: user {} has no bcrypt hash (create it with htpasswd -B)",
                    i + 1,
                    hoist_image::quote(user)
                ));
            };
            cost = cost.max(parts.get_cost());
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err("no users".into());
        }
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
            .map_err(|e| format!("/dev/urandom: {e}"))?;
        let decoy = bcrypt::hash(hex::encode(key), cost).map_err(|e| e.to_string())?;
        Ok(Htpasswd {
            users,
            decoy,
            key,
            ok: Mutex::new(HashMap::new()),
            checks: Semaphore::new(MAX_CHECKS),
            verified: AtomicU64::new(0),
        })
    }

    /// Check an `Authorization` header value.
    pub(crate) async fn check(&self, authorization: Option<&str>) -> Checked {
        let Some((user, pass)) = authorization.and_then(basic_credentials) else {
            return Checked::Denied;
        };
        let hash = self.users.get(&user);
        let key = self.remember_key(&user, &pass, hash.map_or("", String::as_str));
        if hash.is_some() && self.remembered(&key) {
            return Checked::User(user);
        }
        let Ok(Ok(_permit)) = tokio::time::timeout(CHECK_WAIT, self.checks.acquire()).await else {
            return Checked::Busy;
        };
        // The same bcrypt work whether the user exists or not.
        let target = hash.cloned().unwrap_or_else(|| self.decoy.clone());
        self.verified.fetch_add(1, Ordering::Relaxed);
        let right =
            tokio::task::spawn_blocking(move || bcrypt::verify(pass, &target).unwrap_or(false))
                .await
                .unwrap_or(false);
        if !(right && hash.is_some()) {
            return Checked::Denied;
        }
        self.remember(key);
        Checked::User(user)
    }

    fn remember_key(&self, user: &str, pass: &str, hash: &str) -> String {
        let mut h = Hasher::sha256();
        h.update(&self.key);
        for part in [user, pass, hash] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finish().hex().to_string()
    }

    fn remembered(&self, key: &str) -> bool {
        let ok = self.ok.lock().unwrap_or_else(|e| e.into_inner());
        ok.get(key).is_some_and(|t| t.elapsed() < REMEMBER_FOR)
    }

    fn remember(&self, key: String) {
        let mut ok = self.ok.lock().unwrap_or_else(|e| e.into_inner());
        if ok.len() >= MAX_REMEMBERED {
            ok.retain(|_, t| t.elapsed() < REMEMBER_FOR);
            if ok.len() >= MAX_REMEMBERED {
                let mut times: Vec<Instant> = ok.values().copied().collect();
                times.sort();
                let cut = times[times.len() / 2];
                ok.retain(|_, t| *t > cut);
            }
        }
        ok.insert(key, Instant::now());
    }
}

/// The user and password of a Basic `Authorization` value, the scheme in any case.
fn basic_credentials(authorization: &str) -> Option<(String, String)> {
    let (scheme, creds) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    fn users() -> Htpasswd {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        Htpasswd::parse(&format!("# comment\nalice:{hash}\n")).unwrap()
    }

    #[tokio::test]
    async fn htpasswd_checks() {
        let h = users();
        let alice = Checked::User("alice".into());
        assert_eq!(h.check(Some(&basic("alice:s3cret"))).await, alice);
        assert_eq!(
            h.check(Some(&basic("alice:s3cret"))).await,
            alice,
            "remembered"
        );
        let lower = basic("alice:s3cret").replacen("Basic", "basic", 1);
        assert_eq!(h.check(Some(&lower)).await, alice, "scheme in any case");
        let upper = basic("alice:s3cret").replacen("Basic", "BASIC", 1);
        assert_eq!(h.check(Some(&upper)).await, alice);
        assert_eq!(h.check(Some(&basic("alice:wrong"))).await, Checked::Denied);
        assert_eq!(h.check(Some(&basic("bob:s3cret"))).await, Checked::Denied);
        assert_eq!(h.check(Some("Basic !!!")).await, Checked::Denied);
        assert_eq!(h.check(Some("Bearer x")).await, Checked::Denied);
        assert_eq!(h.check(None).await, Checked::Denied);
        assert!(Htpasswd::parse("alice:{SHA}abc").is_err());
        assert!(Htpasswd::parse("alice:$2y$10$short").is_err());
        assert!(Htpasswd::parse("nocolon").is_err());
        assert!(Htpasswd::parse("").is_err());
    }

    /// An unknown user costs one bcrypt verification, as a wrong password does, against a
    /// hash of the file's cost; a remembered success costs none.
    #[tokio::test]
    async fn unknown_users_take_the_same_bcrypt_work() {
        let hash = bcrypt::hash("s3cret", 5).unwrap();
        let h = Htpasswd::parse(&format!(
            "alice:{hash}\ncarol:{}\n",
            bcrypt::hash("x", 4).unwrap()
        ))
        .unwrap();
        assert_eq!(
            h.decoy.parse::<bcrypt::HashParts>().unwrap().get_cost(),
            5,
            "the decoy has the file's highest cost"
        );
        let n = || h.verified.load(Ordering::Relaxed);
        let before = n();
        assert_eq!(
            h.check(Some(&basic("mallory:s3cret"))).await,
            Checked::Denied
        );
        assert_eq!(n(), before + 1, "an unknown user is verified too");
        assert_eq!(h.check(Some(&basic("alice:wrong"))).await, Checked::Denied);
        assert_eq!(n(), before + 2);
        assert_eq!(
            h.check(Some(&basic("alice:s3cret"))).await,
            Checked::User("alice".into())
        );
        assert_eq!(n(), before + 3);
        assert_eq!(
            h.check(Some(&basic("alice:s3cret"))).await,
            Checked::User("alice".into())
        );
        assert_eq!(n(), before + 3, "a remembered success costs no bcrypt");
        // The memory holds no password.
        let ok = h.ok.lock().unwrap();
        assert!(ok.keys().all(|k| !k.contains("s3cret") && k.len() == 64));
    }

    /// While every check slot is taken (a flood of bad passwords), a remembered client
    /// still gets in, and a new check waits for a slot instead of adding work.
    #[tokio::test(start_paused = true)]
    async fn checks_are_bounded_and_remembered_clients_skip_the_queue() {
        let h = users();
        let alice = Checked::User("alice".into());
        assert_eq!(h.check(Some(&basic("alice:s3cret"))).await, alice);
        let held = h.checks.acquire_many(MAX_CHECKS as u32).await.unwrap();
        let before = h.verified.load(Ordering::Relaxed);
        assert_eq!(h.check(Some(&basic("alice:s3cret"))).await, alice);
        // An unremembered check waits for its turn and, past CHECK_WAIT, gives up.
        assert_eq!(h.check(Some(&basic("alice:other"))).await, Checked::Busy);
        assert_eq!(h.verified.load(Ordering::Relaxed), before, "no bcrypt ran");
        drop(held);
        assert_eq!(h.check(Some(&basic("alice:other"))).await, Checked::Denied);
    }
}
