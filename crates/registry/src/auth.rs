//! Basic authentication against an htpasswd file of bcrypt hashes (`htpasswd -B`).
//!
//! bcrypt is slow on purpose (tens of milliseconds per check), and clients send the same
//! credentials with every request, so a successful check is remembered by a sha256 of the
//! user, the password and the stored hash: a changed password in the file (after a restart)
//! or a different password never matches a remembered one.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use hoist_image::Hasher;

/// Remembered successful checks, at most this many (then the memory starts over).
const MAX_REMEMBERED: usize = 1024;

/// Users and bcrypt hashes from an htpasswd file.
#[derive(Debug)]
pub struct Htpasswd {
    users: HashMap<String, String>,
    ok: Mutex<HashSet<String>>,
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
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: expected user:hash", i + 1));
            };
            if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
                return Err(format!(
                    "line {}: user {} has no bcrypt hash (create it with htpasswd -B)",
                    i + 1,
                    hoist_image::quote(user)
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err("no users".into());
        }
        Ok(Htpasswd {
            users,
            ok: Mutex::new(HashSet::new()),
        })
    }

    /// Check an `Authorization` header value. Blocking (bcrypt): call it off the async threads.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some(creds) = authorization.and_then(|a| a.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(creds.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, pass)) = decoded.split_once(':') else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let mut h = Hasher::sha256();
        for part in [user, pass, hash] {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        let key = h.finish().hex().to_string();
        if self
            .ok
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return true;
        }
        if !bcrypt::verify(pass, hash).unwrap_or(false) {
            return false;
        }
        let mut ok = self.ok.lock().unwrap_or_else(|e| e.into_inner());
        if ok.len() >= MAX_REMEMBERED {
            ok.clear();
        }
        ok.insert(key);
        true
    }
}

/// The user name of a Basic `Authorization` value (for the access log, once
/// [`Htpasswd::check`] accepted it). Never the password.
pub(crate) fn basic_user(authorization: &str) -> Option<String> {
    let (scheme, creds) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    decoded.split_once(':').map(|(user, _)| user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_checks() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let h = Htpasswd::parse(&format!("# comment\nalice:{hash}\n")).unwrap();
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(h.check(Some(&basic("alice:s3cret"))));
        assert!(h.check(Some(&basic("alice:s3cret"))), "remembered");
        assert!(!h.check(Some(&basic("alice:wrong"))));
        assert!(!h.check(Some(&basic("bob:s3cret"))));
        assert!(!h.check(Some("Basic !!!")));
        assert!(!h.check(Some("Bearer x")));
        assert!(!h.check(None));
        assert_eq!(basic_user(&basic("alice:s3cret")).as_deref(), Some("alice"));
        assert_eq!(basic_user("Bearer x"), None);
        assert!(Htpasswd::parse("alice:{SHA}abc").is_err());
        assert!(Htpasswd::parse("nocolon").is_err());
        assert!(Htpasswd::parse("").is_err());
    }
}
