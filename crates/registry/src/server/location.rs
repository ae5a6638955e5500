//! Upload locations signed with the registry's secret.
//!
//! The `Location` of an upload session is the only state a client carries from one request
//! to the next, and with several nodes it may bring it to any of them. It names the session
//! as `<id>.<mac>`: the MAC (HMAC-SHA256 with the shared secret, truncated to 128 bits) binds
//! the id to its repository, so a node refuses an id it (or a node sharing its secret) did
//! not issue, or one moved to another repository, before asking the storage anything. The
//! offset is never carried by the client: the storage's record of the bytes received is the
//! only one a node trusts.

use aws_lc_rs::hmac;
use base64::Engine as _;

use crate::names::RepoName;

/// Bytes of the HMAC kept in a location (128 bits).
const MAC_BYTES: usize = 16;

/// Signs and checks upload locations.
#[derive(Clone)]
pub(crate) struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// A signer with this secret.
    pub(crate) fn new(secret: &[u8]) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A signer with a random secret of its own (one process, locations die with it).
    pub(crate) fn random() -> Signer {
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret).expect("the system random generator works");
        Signer::new(&secret)
    }

    fn mac(&self, repo: &RepoName, id: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"hoist upload location\0");
        ctx.update(repo.as_str().as_bytes());
        ctx.update(b"\0");
        ctx.update(id.as_bytes());
        let tag = ctx.sign();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag.as_ref()[..MAC_BYTES])
    }

    /// The session `id` of `repo` as its location names it.
    pub(crate) fn token(&self, repo: &RepoName, id: &str) -> String {
        format!("{id}.{}", self.mac(repo, id))
    }

    /// The session id a location's token names, if this signer issued it for `repo`.
    pub(crate) fn verify<'a>(&self, repo: &RepoName, token: &'a str) -> Option<&'a str> {
        let (id, mac) = token.rsplit_once('.')?;
        let want = self.mac(repo, id);
        aws_lc_rs::constant_time::verify_slices_are_equal(want.as_bytes(), mac.as_bytes())
            .ok()
            .map(|()| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_the_id_to_its_repository_and_secret() {
        let (a, b) = (
            RepoName::parse("team/a").unwrap(),
            RepoName::parse("team/b").unwrap(),
        );
        let s = Signer::new(b"a shared secret of some length");
        let t = s.token(&a, "0123456789abcdef0123456789abcdef");
        assert_eq!(s.verify(&a, &t), Some("0123456789abcdef0123456789abcdef"));
        // Another node with the same secret accepts it.
        let same = Signer::new(b"a shared secret of some length");
        assert!(same.verify(&a, &t).is_some());
        // Another repository, another secret, a forged id or MAC: refused.
        assert_eq!(s.verify(&b, &t), None);
        assert_eq!(Signer::new(b"other").verify(&a, &t), None);
        let (id, mac) = t.rsplit_once('.').unwrap();
        let forged_id = format!("{}0.{mac}", &id[..31]);
        assert_eq!(s.verify(&a, &forged_id), None);
        let forged_mac = format!("{id}.{}", "A".repeat(mac.len()));
        assert_eq!(s.verify(&a, &forged_mac), None);
        for junk in ["", ".", "0123456789abcdef0123456789abcdef", "..", "a.b.c"] {
            assert_eq!(s.verify(&a, junk), None, "{junk:?}");
        }
    }
}
