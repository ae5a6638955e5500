//! Validated repository names, tags and manifest references. A validated name is safe as
//! a relative path: its components match `[a-z0-9]+(?:[._-][a-z0-9]+)*` (so no `..`, no
//! leading `_` that could collide with the storage's own `_blobs`/`_manifests` folders).

use std::fmt;

use hoist_image::Digest;

use crate::error::{Code, Error, Result};

/// Longest repository name accepted (distribution's limit).
pub const MAX_NAME_LEN: usize = 255;

/// A validated repository name, like `library/alpine`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Validate a repository name.
    pub fn parse(s: &str) -> Result<RepoName> {
        validate_repository(s).map_err(|reason| {
            Error::new(
                Code::NameInvalid,
                format!("repository name {s:?}: {reason}"),
            )
        })?;
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

fn validate_repository(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!("{} characters, at most {MAX_NAME_LEN}", s.len()));
    }
    for comp in s.split('/') {
        validate_component(comp).map_err(|r| format!("component {comp:?} {r}"))?;
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
fn validate_component(c: &str) -> std::result::Result<(), &'static str> {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() {
        return Err("is empty");
    }
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("must start and end with [a-z0-9]");
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or "-+", followed by [a-z0-9].
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return Err("may only contain [a-z0-9] separated by '.', '_', '__' or '-'");
        }
    }
    Ok(())
}

/// Validate a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn validate_tag(s: &str) -> Result<()> {
    let b = s.as_bytes();
    let first = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let rest = |x: u8| first(x) || x == b'.' || x == b'-';
    if b.is_empty() || b.len() > 128 || !first(b[0]) || !b[1..].iter().all(|&x| rest(x)) {
        return Err(Error::new(
            Code::ManifestInvalid,
            format!("tag {s:?}: expected [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}"),
        ));
    }
    Ok(())
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
    Digest::parse(s).map_err(|e| Error::new(Code::DigestInvalid, e.to_string()))
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
            assert_eq!(e.code(), Code::NameInvalid, "{b}");
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
