//! The two sides of a sync: [`Endpoint`] (`HOST`, `HOST/PREFIX`, `HOST/REPO`, or
//! `HOST/REPO:TAG`), the repositories a source side stands for (from the registry's
//! catalog), and the destination repository of each.

use std::fmt;

use hoist_image::Reference;
use hoist_remote::{Client, Repository};

use crate::error::{Error, Result};

/// One side of a sync: a registry, a path in it (a repository, or a prefix of
/// repositories; empty for the whole registry), and a tag (one tag only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]`, as requests go to it (`registry-1.docker.io` for Docker Hub).
    pub registry: String,
    /// A repository or a prefix of repositories (`team`, `team/app`); empty for all.
    pub path: String,
    /// One tag of the repository `path` names.
    pub tag: Option<String>,
}

/// True when the first component of a name is a registry host (as docker reads it).
fn is_host(s: &str) -> bool {
    s.contains('.') || s.contains(':') || s == "localhost"
}

impl Endpoint {
    /// Parse `HOST`, `HOST/PATH` or `HOST/PATH:TAG` (`docker://` optional). A name
    /// without a host is on Docker Hub (`alpine` is `docker.io/library/alpine`).
    pub fn parse(s: &str) -> Result<Endpoint> {
        let t = s
            .strip_prefix("docker://")
            .unwrap_or(s)
            .trim_end_matches('/');
        let bad = |why: String| {
            Error::invalid(format!(
                "invalid sync location {}: {why}",
                hoist_image::quote(s)
            ))
        };
        if t.is_empty() {
            return Err(bad("expected HOST, HOST/PREFIX or HOST/REPO[:TAG]".into()));
        }
        if !t.contains('/') && is_host(t) && !t.contains('@') {
            hoist_image::validate_registry(t).map_err(|e| bad(e.to_string()))?;
            return Ok(Endpoint {
                registry: t.to_string(),
                path: String::new(),
                tag: None,
            });
        }
        let r = Reference::parse(t).map_err(|e| bad(e.to_string()))?;
        if r.digest().is_some() {
            return Err(bad("a sync copies tags; name a tag, not a digest".into()));
        }
        Ok(Endpoint {
            registry: r.api_host().to_string(),
            path: r.repository().to_string(),
            tag: r.tag().map(str::to_string),
        })
    }

    /// The repository `path` names (for a one-repository or one-tag endpoint).
    pub fn repository(&self) -> Result<Repository> {
        Ok(Repository::new(&self.registry, &self.path)?)
    }

    /// The destination repository, on this endpoint, of the source repository `name`
    /// listed under `src`: this endpoint's path followed by what follows `src`'s path in
    /// `name`; a destination of a bare host keeps the full name.
    pub fn destination_of(&self, src: &Endpoint, name: &str) -> Result<Repository> {
        let rest = if src.path.is_empty() {
            name
        } else {
            name.strip_prefix(src.path.as_str())
                .unwrap_or(name)
                .trim_start_matches('/')
        };
        let dst = match (self.path.is_empty(), rest.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => self.path.clone(),
            (false, false) => format!("{}/{rest}", self.path),
        };
        Ok(Repository::new(&self.registry, dst)?)
    }

    /// The repositories this source endpoint stands for: the one it names with a tag;
    /// else those the catalog lists equal to the path or under it (all for a bare host).
    /// A registry without a catalog (Docker Hub), or whose catalog does not list the
    /// path, has the path read as one repository.
    pub(crate) async fn repositories(&self, client: &Client) -> Result<Vec<String>> {
        if self.tag.is_some() {
            return Ok(vec![self.path.clone()]);
        }
        let under = |r: &String| {
            self.path.is_empty()
                || *r == self.path
                || r.strip_prefix(self.path.as_str())
                    .is_some_and(|x| x.starts_with('/'))
        };
        match hoist_remote::ops::catalog(client, &self.registry).await {
            Ok(all) => {
                let mut list: Vec<String> = all.into_iter().filter(under).collect();
                list.sort();
                list.dedup();
                if list.is_empty() {
                    if self.path.is_empty() {
                        return Err(Error::invalid(format!(
                            "{}: the registry's catalog lists no repositories",
                            self.registry
                        )));
                    }
                    return Ok(vec![self.path.clone()]);
                }
                Ok(list)
            }
            Err(e) if !self.path.is_empty() && !e.is_temporary() => {
                tracing::debug!(registry = %self.registry, error = %e, "no catalog: the path is one repository");
                Ok(vec![self.path.clone()])
            }
            Err(e) => {
                Err(Error::from(e)
                    .context(format!("listing the repositories of {}", self.registry)))
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.registry)?;
        if !self.path.is_empty() {
            write!(f, "/{}", self.path)?;
        }
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        Endpoint::parse(s).unwrap()
    }

    #[test]
    fn parse_table() {
        for (input, registry, path, tag) in [
            ("127.0.0.1:5000", "127.0.0.1:5000", "", None),
            ("docker://127.0.0.1:5000/", "127.0.0.1:5000", "", None),
            ("localhost", "localhost", "", None),
            ("registry.local/team", "registry.local", "team", None),
            (
                "registry.local/team/app:v1",
                "registry.local",
                "team/app",
                Some("v1"),
            ),
            ("alpine", "registry-1.docker.io", "library/alpine", None),
        ] {
            let e = ep(input);
            assert_eq!(
                (e.registry.as_str(), e.path.as_str(), e.tag.as_deref()),
                (registry, path, tag),
                "{input}"
            );
        }
        for bad in [
            "",
            "reg.local/Team",
            "reg.local/a@sha256:00",
            "reg.local/a:b:c d",
        ] {
            let e = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid sync location"), "{bad}: {e}");
        }
    }

    #[test]
    fn destination_names() {
        let src = ep("a.local/team");
        for (dst, name, want) in [
            ("b.local/mirror", "team/app", "mirror/app"),
            ("b.local/mirror", "team/app/x", "mirror/app/x"),
            ("b.local/mirror", "team", "mirror"),
            ("b.local", "team/app", "team/app"),
        ] {
            assert_eq!(
                ep(dst).destination_of(&src, name).unwrap().name(),
                want,
                "{dst} {name}"
            );
        }
        let all = ep("a.local");
        assert_eq!(
            ep("b.local/m").destination_of(&all, "x/y").unwrap().name(),
            "m/x/y"
        );
        assert_eq!(ep("a.local/team").to_string(), "a.local/team");
        assert_eq!(ep("a.local/team:v1").to_string(), "a.local/team:v1");
    }
}
