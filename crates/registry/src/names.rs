//! Validated repository names, tags and manifest references. A validated name is safe as
//! a relative path: its components match `[a-z0-9]+(?:[._-][a-z0-9]+)*` (so no `..`, no
//! leading `_` that could collide with the storage's own `_blobs`/`_manifests` folders).

use std::fmt;

use hoist_image::Digest;

use crate::error::{ErrorKind, Result};

/// A validated repository name, like `library/alpine`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Validate a repository name (the distribution grammar, via
    /// [`hoist_image::validate_repository`]).
    pub fn parse(s: &str) -> Result<RepoName> {
        hoist_image::validate_repository(s).map_err(|e| ErrorKind::NameInvalid(e.to_string()))?;
        Ok(RepoName(s.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `/`-separated components (each safe as a path component).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validate a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}` (via [`hoist_image::validate_tag`]).
pub fn validate_tag(s: &str) -> Result<()> {
    hoist_image::validate_tag(s).map_err(|e| ErrorKind::TagInvalid(e.to_string()).into())
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    /// Parse: anything with a `:` is a digest, otherwise a tag.
    pub fn parse(s: &str) -> Result<Reference> {
        if s.contains(':') {
            parse_digest(s).map(Reference::Digest)
        } else {
            validate_tag(s)?;
            Ok(Reference::Tag(s.to_string()))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// Parse a digest, answering DIGEST_INVALID with the reason.
pub fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| ErrorKind::DigestInvalid(e.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        const GOOD: &[&str] = &[
            "a",
            "library/alpine",
            "a/b/c",
            "foo-bar",
            "foo--bar",
            "foo.bar",
            "foo_bar",
            "foo__bar",
            "x0/y1",
        ];
        const BAD: &[&str] = &[
            "",
            "A",
            "../etc",
            "a/../b",
            "a//b",
            "/a",
            "a/",
            ".a",
            "a.",
            "a..b",
            "a___b",
            "_blobs",
            "a/_manifests",
            "a b",
            "a%2fb",
            "a\\b",
        ];
        for g in GOOD {
            assert!(RepoName::parse(g).is_ok(), "{g} should be valid");
        }
        for b in BAD {
            let e = RepoName::parse(b).expect_err(b);
            assert!(matches!(e.kind(), ErrorKind::NameInvalid(_)), "{b}");
        }
        assert!(RepoName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags() {
        for g in ["latest", "v1.0", "_x", "A-b.c_d", &"a".repeat(128)] {
            assert!(validate_tag(g).is_ok(), "{g}");
        }
        for b in ["", ".x", "-x", "a/b", "a:b", "..", &"a".repeat(129)] {
            assert!(validate_tag(b).is_err(), "{b}");
        }
    }
}
