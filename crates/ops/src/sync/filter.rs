//! Which tags of a repository a sync takes ([`TagFilter`]), in this order:
//!
//! 1. `tags`: a regular expression the whole tag must match (`v1\..*`, not `v1`);
//! 2. `exclude`: tags the whole of which match it are dropped;
//! 3. `semver`: a version range in Cargo's grammar (`>=1.2, <2`, `^3`, `~1.4`); only tags
//!    that read as versions are kept;
//! 4. `latest`: the N newest of what is left.
//!
//! A tag reads as a version when it is a SemVer version, with an optional leading `v`
//! and with one or two numbers standing for three (`3.19` is 3.19.0, `v2` is 2.0.0).
//! A suffix after `-` is a SemVer pre-release: `1.25-alpine` comes before `1.25`, and a
//! range matches it only when the range names a pre-release of the same version (pick
//! such variants with `tags`).
//!
//! "Newest" is version order for tags that are versions (SemVer precedence), and tags
//! that are not versions come before every version, ordered among themselves in natural
//! order (`build-9` before `build-10`: runs of digits compare as numbers, the rest as
//! text). So `latest: 3` over `1.9, 1.10, 2.0, latest, edge` keeps `1.10, 2.0` and the
//! newest of the others only when fewer than 3 versions exist. No registry call is
//! made to order tags (a tag's creation time would cost a config fetch per tag).

use std::cmp::Ordering;

use regex::Regex;
use semver::{Version, VersionReq};

use crate::error::{Error, Result};

/// Patterns longer than this are refused (a pattern is user input; the regex crate
/// matches in linear time, but compiling a huge one still costs memory).
const MAX_PATTERN: usize = 4096;

/// The tag filters of one sync pair; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    tags: Option<Regex>,
    exclude: Option<Regex>,
    semver: Option<VersionReq>,
    latest: Option<usize>,
}

fn anchored(option: &str, re: &str) -> Result<Regex> {
    if re.len() > MAX_PATTERN {
        return Err(Error::invalid(format!(
            "invalid {option}: a pattern of {} bytes (at most {MAX_PATTERN})",
            re.len()
        )));
    }
    Regex::new(&format!("^(?:{re})$")).map_err(|e| {
        let first = e.to_string();
        let first = first.lines().last().unwrap_or("").trim().to_string();
        Error::invalid(format!(
            "invalid {option} {}: expected a regular expression ({first})",
            hoist_image::quote(re)
        ))
    })
}

impl TagFilter {
    /// Every tag.
    pub fn all() -> TagFilter {
        TagFilter::default()
    }

    /// Keep tags the whole of which match `re`.
    pub fn tags(mut self, re: &str) -> Result<TagFilter> {
        self.tags = Some(anchored("--tags", re)?);
        Ok(self)
    }

    /// Drop tags the whole of which match `re`.
    pub fn exclude(mut self, re: &str) -> Result<TagFilter> {
        self.exclude = Some(anchored("--exclude", re)?);
        Ok(self)
    }

    /// Keep versions in `range` (Cargo's grammar: `>=1.2, <2`, `^3`, `~1.4`, `*`).
    pub fn semver(mut self, range: &str) -> Result<TagFilter> {
        let r = VersionReq::parse(range).map_err(|e| {
            Error::invalid(format!(
                "invalid --semver {}: expected a version range such as \">=1.2, <2\" ({e})",
                hoist_image::quote(range)
            ))
        })?;
        self.semver = Some(r);
        Ok(self)
    }

    /// Keep the `n` newest.
    pub fn latest(mut self, n: usize) -> Result<TagFilter> {
        if n == 0 {
            return Err(Error::invalid("invalid --latest 0: expected at least 1"));
        }
        self.latest = Some(n);
        Ok(self)
    }

    /// True when no filter is set.
    pub fn is_all(&self) -> bool {
        self.tags.is_none()
            && self.exclude.is_none()
            && self.semver.is_none()
            && self.latest.is_none()
    }

    /// The tags to take, oldest first (see [`newest_last`]).
    pub fn select(&self, tags: &[String]) -> Vec<String> {
        let mut kept: Vec<String> = tags
            .iter()
            .filter(|t| self.tags.as_ref().is_none_or(|re| re.is_match(t)))
            .filter(|t| self.exclude.as_ref().is_none_or(|re| !re.is_match(t)))
            .filter(|t| {
                self.semver
                    .as_ref()
                    .is_none_or(|r| version(t).is_some_and(|v| r.matches(&v)))
            })
            .cloned()
            .collect();
        kept.sort_by(|a, b| newest_last(a, b));
        kept.dedup();
        if let Some(n) = self.latest {
            let skip = kept.len().saturating_sub(n);
            kept.drain(..skip);
        }
        kept
    }
}

/// A tag read as a version (see the [module docs](self)), or `None`.
pub fn version(tag: &str) -> Option<Version> {
    let t = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    if let Ok(v) = Version::parse(t) {
        return Some(v);
    }
    let cut = t.find(['-', '+']).unwrap_or(t.len());
    let (core, rest) = t.split_at(cut);
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() >= 3 || !parts.iter().all(numeric) {
        return None;
    }
    let mut padded = parts.join(".");
    for _ in parts.len()..3 {
        padded.push_str(".0");
    }
    Version::parse(&format!("{padded}{rest}")).ok()
}

/// The order of "newest": versions by SemVer precedence after every tag that is not a
/// version; those in natural order. Ties (`1.2` and `1.2.0`) by the tag's text.
pub fn newest_last(a: &str, b: &str) -> Ordering {
    match (version(a), version(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => natural(a, b),
    }
}

/// Natural order: runs of digits compare as numbers, everything else as text.
fn natural(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let n = x.iter().take_while(|b| b.is_ascii_digit()).count();
                let m = y.iter().take_while(|b| b.is_ascii_digit()).count();
                let (p, q) = (&x[..n], &y[..m]);
                // Compare as numbers without parsing: strip leading zeros, then length, then digits.
                let strip = |s: &[u8]| -> usize { s.iter().take_while(|b| **b == b'0').count() };
                let (p2, q2) = (&p[strip(p)..], &q[strip(q)..]);
                let o = p2.len().cmp(&q2.len()).then_with(|| p2.cmp(q2));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[n..];
                y = &y[m..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn versions_table() {
        for (tag, want) in [
            ("1.2.3", Some("1.2.3")),
            ("v1.2.3", Some("1.2.3")),
            ("3.19", Some("3.19.0")),
            ("v2", Some("2.0.0")),
            ("1.25-alpine", Some("1.25.0-alpine")),
            ("1.2.3-rc.1+build.5", Some("1.2.3-rc.1+build.5")),
            ("latest", None),
            ("1.2.3.4", None),
            ("1..2", None),
            ("", None),
            ("v", None),
            ("sha256-abc", None),
        ] {
            assert_eq!(
                version(tag).map(|v| v.to_string()),
                want.map(str::to_string),
                "{tag}"
            );
        }
    }

    #[test]
    fn filters_in_order() {
        let all = tags(&[
            "1.9", "1.10", "2.0", "2.1-rc.1", "latest", "edge", "build-9", "build-10",
        ]);
        assert_eq!(TagFilter::all().select(&all).len(), all.len());
        // The whole tag must match.
        let f = TagFilter::all().tags(r"1\..*").unwrap();
        assert_eq!(f.select(&all), tags(&["1.9", "1.10"]));
        let f = TagFilter::all().tags("1").unwrap();
        assert!(f.select(&all).is_empty());
        let f = TagFilter::all().exclude(".*-rc.*|edge").unwrap();
        assert!(
            !f.select(&all)
                .iter()
                .any(|t| t.contains("rc") || t == "edge")
        );
        // Ranges keep versions only; a pre-release only when the range names one.
        let f = TagFilter::all().semver(">=1.10, <3").unwrap();
        assert_eq!(f.select(&all), tags(&["1.10", "2.0"]));
        let f = TagFilter::all().semver(">=2.1.0-rc.0").unwrap();
        assert_eq!(f.select(&all), tags(&["2.1-rc.1"]));
        // Newest: versions above the rest; the rest in natural order.
        let f = TagFilter::all().latest(2).unwrap();
        assert_eq!(
            f.select(&all),
            tags(&["2.1-rc.1", "2.0"])
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
        );
        let f = TagFilter::all()
            .exclude(r"\d.*")
            .unwrap()
            .latest(2)
            .unwrap();
        assert_eq!(f.select(&all), tags(&["edge", "latest"]));
        let f = TagFilter::all()
            .tags("build-.*")
            .unwrap()
            .latest(1)
            .unwrap();
        assert_eq!(f.select(&all), tags(&["build-10"]));
        // All four together, in order.
        let f = TagFilter::all()
            .tags(r"[0-9].*")
            .unwrap()
            .exclude(".*rc.*")
            .unwrap()
            .semver(">=1")
            .unwrap()
            .latest(2)
            .unwrap();
        assert_eq!(f.select(&all), tags(&["1.10", "2.0"]));
    }

    #[test]
    fn bad_filters_name_the_option() {
        let e = TagFilter::all().tags("(").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid --tags \"(\": expected a regular expression"),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        let e = TagFilter::all().semver("newest").unwrap_err().to_string();
        assert!(e.starts_with("invalid --semver \"newest\""), "{e}");
        let e = TagFilter::all().latest(0).unwrap_err().to_string();
        assert!(e.contains("--latest 0"), "{e}");
        let e = TagFilter::all()
            .exclude(&"a".repeat(5000))
            .unwrap_err()
            .to_string();
        assert!(e.contains("5000 bytes"), "{e}");
    }

    #[test]
    fn natural_order() {
        let mut v = tags(&["b10", "b9", "a", "b010", "b1x"]);
        v.sort_by(|a, b| natural(a, b));
        assert_eq!(v, tags(&["a", "b1x", "b9", "b010", "b10"]));
    }
}
