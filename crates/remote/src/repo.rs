//! Where things go: a [`Repository`] (registry host + repository name) and a [`Target`]
//! (a repository plus an optional tag).

use std::fmt;

use crate::error::{Error, Result};

/// Docker Hub's registry host, used when a name has no registry part.
pub const DOCKER_HUB: &str = "index.docker.io";

/// A repository in a registry: `host[:port]/path/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    registry: String,
    name: String,
}

impl Repository {
    /// A repository from its parts. The registry is `host[:port]`; the name is
    /// lower-case path components of `[a-z0-9]` separated by `.`, `_`, `__` or `-`.
    pub fn new(registry: impl Into<String>, name: impl Into<String>) -> Result<Repository> {
        let registry = registry.into();
        let name = name.into();
        check_registry(&registry)?;
        check_name(&name)?;
        Ok(Repository { registry, name })
    }

    /// The registry, `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository name (path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when the registry is a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`),
    /// which hoist talks to over plain http by default.
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.registry)
    }
}

/// True for `localhost`, `127.x.y.z` and `[::1]`, with or without a port.
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// A push destination: a repository and an optional tag. Without a tag the image is
/// pushed by digest only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The repository.
    pub repo: Repository,
    /// The tag, if any.
    pub tag: Option<String>,
}

impl Target {
    /// A target with a tag.
    pub fn tagged(repo: Repository, tag: impl Into<String>) -> Result<Target> {
        let tag = tag.into();
        check_tag(&tag)?;
        Ok(Target {
            repo,
            tag: Some(tag),
        })
    }

    /// Parse `host[:port]/name[:tag]`. A name without a registry part (no `.` or `:` in
    /// its first component, and not `localhost`) is on Docker Hub, as with docker.
    /// A `@digest` suffix is refused: a push destination is a repository and a tag.
    pub fn parse(s: &str) -> Result<Target> {
        let bad = |reason: &str| Error::invalid_input(format!("reference {s:?}"), reason);
        if s.is_empty() {
            return Err(bad("empty; expected host[:port]/name[:tag]"));
        }
        if s.contains('@') {
            return Err(bad(
                "a push destination takes a tag, not a digest; expected host[:port]/name[:tag]",
            ));
        }
        let (registry, rest) = match s.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), s.to_string()),
        };
        // The tag is after the last ':' of the last path component.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                rest[..last_slash + i].to_string(),
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest.clone(), None),
        };
        let name = if registry == DOCKER_HUB && !name.contains('/') {
            format!("library/{name}")
        } else {
            name
        };
        let repo = Repository::new(registry, name).map_err(|e| bad(&inner_reason(&e)))?;
        match tag {
            Some(t) => Target::tagged(repo, t).map_err(|e| bad(&inner_reason(&e))),
            None => Ok(Target { repo, tag: None }),
        }
    }
}

impl Target {
    /// From a parsed reference: its API host, repository and tag (`latest` when it has
    /// neither tag nor digest). A reference with a digest is refused: a push destination
    /// is a repository and a tag.
    pub fn from_reference(r: &hoist_image::Reference) -> Result<Target> {
        if r.digest().is_some() {
            return Err(Error::invalid_input(
                format!("destination {r}"),
                "a push destination takes a tag, not a digest",
            ));
        }
        let repo = Repository::new(r.api_host(), r.repository())?;
        Target::tagged(repo, r.tag().unwrap_or("latest"))
    }
}

fn inner_reason(e: &Error) -> String {
    match e.kind() {
        crate::error::ErrorKind::InvalidInput { what, reason } => format!("{what}: {reason}"),
        _ => e.to_string(),
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

fn check_registry(r: &str) -> Result<()> {
    let ok = !r.is_empty()
        && r.len() <= 255
        && r.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-:[]_".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            format!("registry {r:?}"),
            "expected host[:port]",
        ))
    }
}

fn check_name(n: &str) -> Result<()> {
    let bad = || {
        Error::invalid_input(
            format!("repository name {n:?}"),
            "expected lower-case components of [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'",
        )
    };
    if n.is_empty() || n.len() > 255 {
        return Err(bad());
    }
    for comp in n.split('/') {
        let b = comp.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return Err(bad());
        }
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                i += 1;
                continue;
            }
            // a separator: '.', '_', '__', or one or more '-'
            let start = i;
            match c {
                b'.' => i += 1,
                b'_' => {
                    i += 1;
                    if b.get(i) == Some(&b'_') {
                        i += 1;
                    }
                }
                b'-' => {
                    while b.get(i) == Some(&b'-') {
                        i += 1;
                    }
                }
                _ => return Err(bad()),
            }
            if i > start && !b.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
                return Err(bad());
            }
        }
    }
    Ok(())
}

fn check_tag(t: &str) -> Result<()> {
    let b = t.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            format!("tag {t:?}"),
            "expected up to 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good() {
        for (s, reg, name, tag) in [
            (
                "127.0.0.1:5000/foo/bar:v1",
                "127.0.0.1:5000",
                "foo/bar",
                Some("v1"),
            ),
            ("localhost/x", "localhost", "x", None),
            ("alpine", DOCKER_HUB, "library/alpine", None),
            ("user/app:latest", DOCKER_HUB, "user/app", Some("latest")),
            (
                "reg.example:443/a-b/c__d.e:1.0_rc",
                "reg.example:443",
                "a-b/c__d.e",
                Some("1.0_rc"),
            ),
            ("[::1]:5000/x:y", "[::1]:5000", "x", Some("y")),
        ] {
            let t = Target::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(t.repo.registry(), reg, "{s}");
            assert_eq!(t.repo.name(), name, "{s}");
            assert_eq!(t.tag.as_deref(), tag, "{s}");
        }
    }

    #[test]
    fn bad() {
        for s in [
            "",
            "localhost:5000/UPPER:tag",
            "localhost:5000/a//b",
            "localhost:5000/-a",
            "localhost:5000/a-",
            "localhost:5000/a___b",
            "localhost:5000/a:",
            "localhost:5000/a:.t",
            "localhost:5000/a@sha256:00",
            "localhost:5000/",
            "bad host!/x",
        ] {
            let e = Target::parse(s).expect_err(s);
            let msg = e.to_string();
            assert!(msg.contains(&format!("{s:?}")), "{s}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn loopback() {
        for (r, want) in [
            ("localhost:5000", true),
            ("127.0.0.1:1", true),
            ("127.3.4.5", true),
            ("[::1]:80", true),
            ("example.com", false),
            ("10.0.0.1:5000", false),
            ("localhost.example.com", false),
        ] {
            assert_eq!(is_loopback(r), want, "{r}");
        }
    }
}
