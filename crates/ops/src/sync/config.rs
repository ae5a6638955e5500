//! `hoist sync --config FILE`: many pairs, each with its own options, in YAML.
//!
//! ```yaml
//! jobs: 8                          # blob transfers in flight (a --jobs given wins)
//! sync:
//!   - source: registry-a.example/team
//!     destination: registry-b.example/mirror/team
//!     tags: 'v[0-9]+\..*'          # regular expression, the whole tag
//!     exclude: '.*-rc.*'
//!     semver: '>=1.2, <2'
//!     latest: 3
//!     platforms: [linux/amd64, linux/arm64]   # or "linux/amd64,linux/arm64", or all
//!     referrers: true
//!   - source: registry-a.example/tools/cli:stable
//!     destination: registry-b.example/tools/cli
//! ```
//!
//! An option a pair does not set takes the command line's value ([`Spec::over`]). Keys
//! the file may not have are refused by name; so are files with deep nesting or many
//! aliases (the parser's limits), with one line naming the file.

use std::path::Path;

use serde::Deserialize;

use super::{Endpoint, Pair, TagFilter};
use crate::error::{Error, Result};
use crate::open::Platforms;

/// A YAML config file's contents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Blob transfers in flight across every pair.
    #[serde(default)]
    pub jobs: Option<usize>,
    /// The pairs.
    #[serde(default)]
    pub sync: Vec<Spec>,
}

/// A value given as one string or as a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `linux/amd64,linux/arm64`
    One(String),
    /// `[linux/amd64, linux/arm64]`
    Many(Vec<String>),
}

impl OneOrMany {
    fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// One pair as written (in the file, or on the command line), before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `HOST`, `HOST/PREFIX`, `HOST/REPO` or `HOST/REPO:TAG`.
    pub source: Option<String>,
    /// `HOST`, `HOST/PREFIX` or `HOST/REPO`.
    pub destination: Option<String>,
    /// Keep tags the whole of which match this regular expression.
    pub tags: Option<String>,
    /// Drop tags the whole of which match this regular expression.
    pub exclude: Option<String>,
    /// Keep versions in this range.
    pub semver: Option<String>,
    /// Keep the N newest.
    pub latest: Option<usize>,
    /// Platforms of indexes: `all`, or os/arch[/variant] values.
    pub platforms: Option<OneOrMany>,
    /// Copy referrers too.
    pub referrers: Option<bool>,
}

impl Config {
    /// Parse a config's text; `what` names it in errors (the file's path).
    pub fn parse(text: &str, what: &str) -> Result<Config> {
        let c: Config = serde_saphyr::from_str(text).map_err(|e| {
            let msg = e.to_string();
            let msg = msg.lines().next().unwrap_or("").trim().to_string();
            Error::invalid(format!("config {what}: {msg}"))
        })?;
        if c.sync.is_empty() {
            return Err(Error::invalid(format!(
                "config {what}: no pairs (expected a `sync:` list of source/destination pairs)"
            )));
        }
        if c.jobs == Some(0) {
            return Err(Error::invalid(format!(
                "config {what}: jobs 0 (expected at least 1)"
            )));
        }
        Ok(c)
    }

    /// Read and parse the config file at `path`.
    pub fn read(path: &Path) -> Result<Config> {
        let what = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid(format!("config {what}: {e}")))?;
        Config::parse(&text, &what)
    }
}

impl Spec {
    /// This spec, with what it does not set taken from `defaults`.
    pub fn over(self, defaults: &Spec) -> Spec {
        Spec {
            source: self.source.or_else(|| defaults.source.clone()),
            destination: self.destination.or_else(|| defaults.destination.clone()),
            tags: self.tags.or_else(|| defaults.tags.clone()),
            exclude: self.exclude.or_else(|| defaults.exclude.clone()),
            semver: self.semver.or_else(|| defaults.semver.clone()),
            latest: self.latest.or(defaults.latest),
            platforms: self.platforms.or_else(|| defaults.platforms.clone()),
            referrers: self.referrers.or(defaults.referrers),
        }
    }

    /// The checked pair.
    pub fn pair(&self) -> Result<Pair> {
        let source = self.source.as_deref().ok_or_else(|| {
            Error::invalid("sync: no source (expected SOURCE DEST, or a config with `source:`)")
        })?;
        let destination = self.destination.as_deref().ok_or_else(|| {
            Error::invalid(format!(
                "sync {source}: no destination (expected `destination:`)"
            ))
        })?;
        let source = Endpoint::parse(source)?;
        let destination = Endpoint::parse(destination)?;
        if destination.tag.is_some() && source.tag.is_none() {
            return Err(Error::invalid(format!(
                "sync destination {destination}: a tag names one image; the source {source} has many (name a tag on both sides, or none)"
            )));
        }
        let mut tags = TagFilter::all();
        if let Some(t) = &self.tags {
            tags = tags.tags(t)?;
        }
        if let Some(t) = &self.exclude {
            tags = tags.exclude(t)?;
        }
        if let Some(t) = &self.semver {
            tags = tags.semver(t)?;
        }
        if let Some(n) = self.latest {
            tags = tags.latest(n)?;
        }
        if source.tag.is_some() && !tags.is_all() {
            return Err(Error::invalid(format!(
                "sync source {source}: names one tag; tag filters (tags, exclude, semver, latest) choose among a repository's"
            )));
        }
        let platforms = match &self.platforms {
            Some(p) => Platforms::parse(&p.values())?,
            None => Platforms::Default,
        };
        Ok(Pair {
            source,
            destination,
            tags,
            platforms,
            referrers: self.referrers.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_with_defaults() {
        let text = r#"
jobs: 3
sync:
  - source: a.local/team
    destination: b.local/mirror
    tags: 'v1\..*'
    platforms: [linux/amd64, linux/arm64]
    referrers: true
  - source: a.local/tools/cli:stable
    destination: b.local/tools/cli
    platforms: all
"#;
        let c = Config::parse(text, "sync.yaml").unwrap();
        assert_eq!(c.jobs, Some(3));
        let defaults = Spec {
            latest: Some(2),
            ..Spec::default()
        };
        let p = c.sync[0].clone().over(&defaults).pair().unwrap();
        assert_eq!(p.source.path, "team");
        assert!(p.referrers);
        assert!(matches!(&p.platforms, Platforms::List(l) if l.len() == 2));
        // A one-tag source with a default `latest` is refused: filters choose among tags.
        let e = c.sync[1].clone().over(&defaults).pair().unwrap_err();
        assert!(e.to_string().contains("names one tag"), "{e}");
        let p = c.sync[1].clone().pair().unwrap();
        assert_eq!(p.platforms, Platforms::All);
        assert!(!p.referrers);
    }

    #[test]
    fn bad_configs_say_what_and_where() {
        for (text, want) in [
            (
                "sync:\n  - source: a.local/x\n    destination: b.local/y\n    colour: red\n",
                "colour",
            ),
            ("sync: []\n", "no pairs"),
            (
                "jobs: 0\nsync:\n  - source: a.local/x\n    destination: b.local\n",
                "jobs 0",
            ),
            ("sync: [\n", "sync.yaml"),
            (
                "sync:\n  - source: a.local/x\n    destination: b.local\n    latest: many\n",
                "sync.yaml",
            ),
        ] {
            let e = Config::parse(text, "sync.yaml").unwrap_err().to_string();
            assert!(
                e.contains(want) && e.starts_with("config sync.yaml: "),
                "{text}: {e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
        // A billion laughs: the parser's alias budget refuses it.
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("b{}", i - 1)
            };
            bomb.push_str(&format!(
                "b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        bomb.push_str("sync:\n  - source: a.local/x\n    destination: b.local\n");
        let e = Config::parse(&bomb, "bomb.yaml").unwrap_err().to_string();
        assert!(
            e.starts_with("config bomb.yaml: ") && !e.contains("no pairs"),
            "{e}"
        );
        let e = Spec {
            source: Some("a.local/x".into()),
            ..Spec::default()
        }
        .pair()
        .unwrap_err();
        assert!(e.to_string().contains("no destination"), "{e}");
        let e = Spec {
            source: Some("a.local/x".into()),
            destination: Some("b.local/y:v1".into()),
            ..Spec::default()
        }
        .pair()
        .unwrap_err();
        assert!(e.to_string().contains("a tag names one image"), "{e}");
    }
}
