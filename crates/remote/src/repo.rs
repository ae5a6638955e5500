//! Where things go: a [`Repository`] (registry host + repository name) and a [`Target`]
//! (a repository plus an optional tag). Both are typed views of a
//! [`hoist_image::Reference`]: the grammar (Docker Hub and `library/` defaults, name,
//! tag and host rules) is the reference's, in one place.

use std::fmt;

use hoist_image::Reference;

use crate::error::{Error, Result};

/// A repository in a registry: `host[:port]/path/name`, where the host is the one API
/// requests go to (`registry-1.docker.io` for Docker Hub, see
/// [`Reference::api_host`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    registry: String,
    name: String,
}

impl Repository {
    /// A repository from its parts, checked with the reference grammar: the registry is
    /// `host[:port]` ([`hoist_image::validate_registry`]), the name lower-case path
    /// components ([`hoist_image::validate_repository`]).
    pub fn new(registry: impl Into<String>, name: impl Into<String>) -> Result<Repository> {
        let registry = registry.into();
        let name = name.into();
        hoist_image::validate_registry(&registry)?;
        hoist_image::validate_repository(&name)?;
        Ok(Repository { registry, name })
    }

    /// The repository of a reference (its tag and digest are ignored).
    pub fn from_reference(r: &Reference) -> Repository {
        // A parsed reference is valid by construction.
        Repository {
            registry: r.api_host().to_string(),
            name: r.repository().to_string(),
        }
    }

    /// Parse `[host[:port]/]name`, with the reference grammar and defaults; a tag or a
    /// digest is refused.
    pub fn parse(s: &str) -> Result<Repository> {
        let r = Reference::parse(s)?;
        if r.tag().is_some() || r.digest().is_some() {
            return Err(Error::invalid_input(
                format!("repository {s:?}"),
                "expected host[:port]/name without a tag or digest",
            ));
        }
        Ok(Repository::from_reference(&r))
    }

    /// The registry, `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository name (path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The repository as a reference (no tag, no digest), `registry/name`.
    pub fn reference(&self) -> Reference {
        Reference::parse(&self.to_string()).expect("a repository is a valid reference")
    }

    /// True when the registry is a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`),
    /// which hoist talks to over plain http by default.
    pub fn is_loopback(&self) -> bool {
        hoist_image::is_loopback(&self.registry)
    }
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
        hoist_image::validate_tag(&tag)?;
        Ok(Target {
            repo,
            tag: Some(tag),
        })
    }

    /// Parse `[host[:port]/]name[:tag]` with the reference grammar ([`Reference::parse`]):
    /// a name without a registry part is on Docker Hub. Without a tag the target has none
    /// (a push by digest). A `@digest` is refused: a push destination is a repository and
    /// a tag.
    pub fn parse(s: &str) -> Result<Target> {
        let r = Reference::parse(s)?;
        if r.digest().is_some() {
            return Err(digest_refused(&format!("{s:?}")));
        }
        Ok(Target {
            repo: Repository::from_reference(&r),
            tag: r.tag().map(str::to_string),
        })
    }

    /// From a parsed reference: its repository and tag (`latest` when it has neither tag
    /// nor digest, as docker and crane push). A reference with a digest is refused.
    pub fn from_reference(r: &Reference) -> Result<Target> {
        if r.digest().is_some() {
            return Err(digest_refused(&r.to_string()));
        }
        Ok(Target {
            repo: Repository::from_reference(r),
            tag: Some(r.tag().unwrap_or(hoist_image::DEFAULT_TAG).to_string()),
        })
    }
}

fn digest_refused(what: &str) -> Error {
    Error::invalid_input(
        format!("destination {what}"),
        "a push destination takes a tag, not a digest; expected host[:port]/name[:tag]",
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_image::DOCKER_HUB_API;

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
            ("alpine", DOCKER_HUB_API, "library/alpine", None),
            (
                "index.docker.io/alpine",
                DOCKER_HUB_API,
                "library/alpine",
                None,
            ),
            (
                "user/app:latest",
                DOCKER_HUB_API,
                "user/app",
                Some("latest"),
            ),
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

    /// `Target::parse` and `Target::from_reference` agree on every part but the default
    /// tag (a parsed target without a tag pushes by digest; a reference's pushes `latest`).
    #[test]
    fn parse_agrees_with_from_reference() {
        for s in [
            "alpine",
            "alpine:3",
            "docker.io/library/alpine",
            "index.docker.io/user/app:v1",
            "localhost:5000/a/b:c",
            "LOCALHOST:5000/a",
            "[::1]:5000/x",
        ] {
            let parsed = Target::parse(s).unwrap();
            let r = Reference::parse(s).unwrap();
            let viewed = Target::from_reference(&r).unwrap();
            assert_eq!(parsed.repo, viewed.repo, "{s}");
            assert_eq!(parsed.repo, Repository::from_reference(&r), "{s}");
            assert_eq!(
                viewed.tag.as_deref(),
                Some(parsed.tag.as_deref().unwrap_or("latest")),
                "{s}"
            );
            assert_eq!(parsed.repo.is_loopback(), r.is_loopback(), "{s}");
            // And back: the repository as a reference views as the same repository.
            assert_eq!(
                Repository::from_reference(&parsed.repo.reference()),
                parsed.repo
            );
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
            &format!("localhost:5000/a@sha256:{}", "0".repeat(64)),
            "localhost:5000/",
            "bad host!/x",
        ] {
            let e = Target::parse(s).expect_err(s);
            let msg = e.to_string();
            assert!(msg.contains(&format!("{s:?}")), "{s}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        for (reg, name) in [("bad host", "x"), ("h:99999", "x"), ("h", "A"), ("h", "")] {
            let e = Repository::new(reg, name).expect_err(reg);
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        let e = Repository::parse("localhost:5000/a:v1").unwrap_err();
        assert!(e.to_string().contains("without a tag"), "{e}");
    }
}
