//! The web page: a small, server-rendered view of the registry's contents.
//!
//! ```text
//! /  (or /ui/)                     repositories: tag count, total size, newest image
//! /ui/r/<repo>                     its tags: digest, platforms, size, age, pull reference
//! /ui/r/<repo>:<tag>               an image or index by tag
//! /ui/r/<repo>@<digest>            ... or by digest: layers, config, children, referrers
//! ```
//! Pages are HTML rendered by [`view`] (maud templates, escaped by default) from what the
//! [`Storage`] trait answers, behind the same authentication as the API. Nothing needs
//! JavaScript; one inline script adds copy-to-clipboard buttons.
//!
//! What a manifest is (its platforms, size, config's creation time, the blobs it
//! references) never changes for a digest, so it is worked out once and kept in
//! [`Summaries`], a bounded map shared by every page.

mod view;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use hoist_image::{ConfigFile, Digest, MAX_CONFIG_SIZE, Manifest, MediaType, Parsed};

use crate::names::{Reference, RepoName, parse_digest};
use crate::server::Registry;
use crate::server::error::{ApiError as Error, ApiResult as Result, Code};
use crate::storage::Storage;

/// Repositories on one page of the list.
const REPOS_PER_PAGE: usize = 100;
/// Manifest summaries kept (then the map starts over); a summary is a few hundred bytes.
const MAX_SUMMARIES: usize = 4096;
/// How deep indexes of indexes are followed.
const MAX_DEPTH: usize = 3;

/// Whether `path` is one of the web page's.
pub(crate) fn is_page(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// The repository a page is about, for the access log.
pub(crate) fn repo_of(path: &str) -> Option<String> {
    match parse(path) {
        Some(Page::Repo(r) | Page::Manifest(r, _)) => Some(r),
        _ => None,
    }
}

/// Which page a path names.
#[derive(Debug, PartialEq)]
enum Page {
    Home,
    Repo(String),
    Manifest(String, String),
}

fn parse(path: &str) -> Option<Page> {
    if path == "/" || path == "/ui" || path == "/ui/" {
        return Some(Page::Home);
    }
    let rest = path.strip_prefix("/ui/r/")?.trim_end_matches('/');
    if rest.is_empty() {
        return None;
    }
    if let Some((repo, digest)) = rest.split_once('@') {
        return Some(Page::Manifest(repo.into(), digest.into()));
    }
    match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => Some(Page::Manifest(repo.into(), tag.into())),
        _ => Some(Page::Repo(rest.into())),
    }
}

/// Serve a page.
pub(crate) async fn page(reg: &Registry, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let host = pull_host(req.headers().get(header::HOST));
    let ctx = Ctx {
        s: &**reg.storage(),
        summaries: reg.ui_summaries(),
    };
    let (status, markup) = match render(&ctx, &path, &query, &host).await {
        Ok(m) => (StatusCode::OK, m),
        Err(e) => {
            let status = e.status();
            if status.is_server_error() {
                tracing::warn!(error = %e, "web page");
            }
            let message = if status.is_server_error() {
                "The storage failed to answer; the registry's log says why.".to_string()
            } else {
                e.message().to_string()
            };
            (status, view::error(status, &message))
        }
    };
    html(status, markup.into_string())
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(&view::content_security_policy()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// The registry's name in pull references: the request's Host, when it looks like one.
fn pull_host(v: Option<&HeaderValue>) -> String {
    v.and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("REGISTRY")
        .to_string()
}

/// What a page is rendered from.
struct Ctx<'a> {
    s: &'a dyn Storage,
    summaries: &'a Summaries,
}

async fn render(ctx: &Ctx<'_>, path: &str, query: &str, host: &str) -> Result<maud::Markup> {
    let not_found = || {
        Error::new(Code::NameUnknown, format!("{path}: no such page"))
            .with_status(StatusCode::NOT_FOUND)
    };
    match parse(path).ok_or_else(not_found)? {
        Page::Home => {
            let last = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "last")
                .map(|(_, v)| v.into_owned());
            let all = ctx.s.repositories().await?;
            let mut rest: Vec<String> = match &last {
                Some(l) => all.into_iter().filter(|r| r > l).collect(),
                None => all,
            };
            let more = rest.len() > REPOS_PER_PAGE;
            rest.truncate(REPOS_PER_PAGE);
            let mut rows = Vec::new();
            for name in rest {
                let Ok(repo) = RepoName::parse(&name) else {
                    continue;
                };
                rows.push(repo_row(ctx, &repo).await?);
            }
            let next = more.then(|| rows.last().map(|r| r.name.clone())).flatten();
            Ok(view::home(host, &rows, next.as_deref()))
        }
        Page::Repo(name) => {
            let repo = RepoName::parse(&name)?;
            let Some(tags) = ctx.s.tags(&repo).await? else {
                return Err(Error::new(
                    Code::NameUnknown,
                    format!("repository {repo} is not known"),
                )
                .with_status(StatusCode::NOT_FOUND));
            };
            let mut rows = Vec::new();
            for tag in tags {
                let Some(digest) = ctx.s.tag_resolve(&repo, &tag).await? else {
                    continue;
                };
                let summary = ctx.summary(&repo, &digest, 0).await?;
                rows.push(TagRow {
                    tag,
                    digest,
                    summary,
                });
            }
            Ok(view::repo(host, &repo, &rows))
        }
        Page::Manifest(name, reference) => {
            let repo = RepoName::parse(&name)?;
            let (tag, digest) = match Reference::parse(&reference)? {
                Reference::Digest(_) => (None, parse_digest(&reference)?),
                Reference::Tag(t) => {
                    let d = ctx.s.tag_resolve(&repo, &t).await?.ok_or_else(|| {
                        Error::new(
                            Code::ManifestUnknown,
                            format!("tag {t:?} is not known to {repo}"),
                        )
                    })?;
                    (Some(t), d)
                }
            };
            let detail = ctx.detail(&repo, &digest).await?;
            Ok(view::manifest(host, &repo, tag.as_deref(), &detail))
        }
    }
}

/// A line of the repository list.
pub(crate) struct RepoRow {
    pub(crate) name: String,
    pub(crate) tags: usize,
    /// Bytes of every blob the tagged manifests reference, each counted once.
    pub(crate) size: u64,
    /// The newest image's creation time (RFC 3339), when any says.
    pub(crate) newest: Option<String>,
}

async fn repo_row(ctx: &Ctx<'_>, repo: &RepoName) -> Result<RepoRow> {
    let tags = ctx.s.tags(repo).await?.unwrap_or_default();
    let mut seen = HashSet::new();
    let mut size = 0;
    let mut newest: Option<String> = None;
    for tag in &tags {
        let Some(d) = ctx.s.tag_resolve(repo, tag).await? else {
            continue;
        };
        let sum = ctx.summary(repo, &d, 0).await?;
        for (b, n) in &sum.blobs {
            if seen.insert(b.clone()) {
                size += n;
            }
        }
        newest = newest.max(sum.created.clone());
    }
    Ok(RepoRow {
        name: repo.to_string(),
        tags: tags.len(),
        size,
        newest,
    })
}

/// A line of a repository's tag list.
pub(crate) struct TagRow {
    pub(crate) tag: String,
    pub(crate) digest: Digest,
    pub(crate) summary: Arc<Summary>,
}

/// The facts about a manifest that its digest fixes.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    /// Whether it is an index (else an image manifest).
    pub(crate) index: bool,
    /// The media type it was pushed with.
    pub(crate) media_type: String,
    /// Its artifact type, when it is an artifact.
    pub(crate) artifact_type: Option<String>,
    /// `os/arch[/variant]` of each image (one for an image).
    pub(crate) platforms: Vec<String>,
    /// The (newest) config's `created`, RFC 3339.
    pub(crate) created: Option<String>,
    /// Every blob it references, itself and children included, once each, with sizes.
    pub(crate) blobs: Vec<(Digest, u64)>,
    /// The sum of `blobs`' sizes.
    pub(crate) size: u64,
}

/// Manifest summaries by digest, shared by every page of a registry.
#[derive(Debug, Default)]
pub(crate) struct Summaries(Mutex<HashMap<Digest, Arc<Summary>>>);

/// Everything a manifest's page shows.
pub(crate) struct Detail {
    pub(crate) digest: Digest,
    pub(crate) summary: Arc<Summary>,
    pub(crate) parsed: Parsed,
    /// The image's config, when it is an image config (not an artifact's).
    pub(crate) config: Option<ConfigFile>,
    /// An index's children: descriptor and whether the repository has it.
    pub(crate) children: Vec<(hoist_image::Descriptor, bool)>,
    pub(crate) referrers: Vec<hoist_image::Descriptor>,
}

impl Ctx<'_> {
    async fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Manifest> {
        let m = self.s.manifest_get(repo, digest).await?.ok_or_else(|| {
            Error::new(
                Code::ManifestUnknown,
                format!("manifest {digest} is not known to {repo}"),
            )
        })?;
        Manifest::from_raw(m.raw, Some(&MediaType::from(m.media_type.as_str()))).map_err(|e| {
            Error::new(
                Code::ManifestInvalid,
                format!("stored manifest {digest}: {e}"),
            )
        })
    }

    /// The config of an image manifest, read verified and capped; `None` for artifacts
    /// and configs the repository lacks.
    async fn config(
        &self,
        repo: &RepoName,
        m: &hoist_image::ImageManifest,
    ) -> Result<Option<ConfigFile>> {
        let desc = &m.config;
        if !desc.media_type.is_config() || desc.size > MAX_CONFIG_SIZE as u64 {
            return Ok(None);
        }
        let Some(blob) = self.s.blob_read(repo, &desc.digest, None).await? else {
            return Ok(None);
        };
        let bad =
            |what: String| Error::new(Code::Unknown, format!("config {}: {what}", desc.digest));
        let mut raw = Vec::new();
        let mut body = blob.body;
        while let Some(chunk) = body.next().await {
            raw.extend_from_slice(&chunk.map_err(|e| bad(e.to_string()))?);
            if raw.len() as u64 > desc.size {
                return Err(bad(format!(
                    "more than the {} bytes its descriptor says",
                    desc.size
                )));
            }
        }
        let actual = Digest::of(desc.digest.algorithm(), &raw);
        if raw.len() as u64 != desc.size || actual != desc.digest {
            return Err(bad(format!("{} bytes of digest {actual} read", raw.len())));
        }
        Ok(serde_json::from_slice(&raw).ok())
    }

    /// Boxed: an index's summary is made of its children's.
    fn summary<'s>(
        &'s self,
        repo: &'s RepoName,
        digest: &'s Digest,
        depth: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<Summary>>> + Send + 's>> {
        Box::pin(self.summary_of(repo, digest, depth))
    }

    async fn summary_of(
        &self,
        repo: &RepoName,
        digest: &Digest,
        depth: usize,
    ) -> Result<Arc<Summary>> {
        if let Some(s) = self.summaries.get(digest) {
            return Ok(s);
        }
        let m = self.manifest(repo, digest).await?;
        let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
        blobs.insert(digest.clone(), m.raw().len() as u64);
        let mut sum = Summary {
            media_type: m.media_type().as_str().to_string(),
            ..Summary::default()
        };
        match m.parsed() {
            Parsed::Image(im) => {
                sum.artifact_type = im.artifact_type.clone().or_else(|| {
                    (!im.config.media_type.is_config())
                        .then(|| im.config.media_type.as_str().to_string())
                });
                for d in std::iter::once(&im.config).chain(&im.layers) {
                    blobs.insert(d.digest.clone(), d.size);
                }
                if let Some(c) = self.config(repo, im).await? {
                    sum.platforms.push(c.platform().to_string());
                    sum.created = c
                        .rest
                        .get("created")
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                }
            }
            Parsed::Index(ix) => {
                sum.index = true;
                sum.artifact_type = ix.artifact_type.clone();
                for child in &ix.manifests {
                    if let Some(p) = &child.platform {
                        sum.platforms.push(p.to_string());
                    }
                    blobs.insert(child.digest.clone(), child.size);
                    if depth >= MAX_DEPTH || !self.s.manifest_exists(repo, &child.digest).await? {
                        continue;
                    }
                    let c = self.summary(repo, &child.digest, depth + 1).await?;
                    for (d, n) in &c.blobs {
                        blobs.insert(d.clone(), *n);
                    }
                    if child.platform.is_none() {
                        sum.platforms.extend(c.platforms.iter().cloned());
                    }
                    sum.created = sum.created.max(c.created.clone());
                }
            }
        }
        sum.size = blobs.values().sum();
        sum.blobs = blobs.into_iter().collect();
        let sum = Arc::new(sum);
        self.summaries.put(digest.clone(), sum.clone());
        Ok(sum)
    }

    async fn detail(&self, repo: &RepoName, digest: &Digest) -> Result<Detail> {
        let m = self.manifest(repo, digest).await?;
        let summary = self.summary(repo, digest, 0).await?;
        let config = match m.parsed() {
            Parsed::Image(im) => self.config(repo, im).await?,
            Parsed::Index(_) => None,
        };
        let mut children = Vec::new();
        if let Parsed::Index(ix) = m.parsed() {
            for c in &ix.manifests {
                children.push((c.clone(), self.s.manifest_exists(repo, &c.digest).await?));
            }
        }
        let referrers = self.s.referrers(repo, digest).await?;
        Ok(Detail {
            digest: digest.clone(),
            summary,
            parsed: m.parsed().clone(),
            config,
            children,
            referrers,
        })
    }
}

impl Summaries {
    fn get(&self, d: &Digest) -> Option<Arc<Summary>> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(d)
            .cloned()
    }

    fn put(&self, d: Digest, s: Arc<Summary>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SUMMARIES {
            map.clear();
        }
        map.insert(d, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let table: &[(&str, Option<Page>)] = &[
            ("/", Some(Page::Home)),
            ("/ui", Some(Page::Home)),
            ("/ui/", Some(Page::Home)),
            ("/ui/r/a/b", Some(Page::Repo("a/b".into()))),
            ("/ui/r/a/b/", Some(Page::Repo("a/b".into()))),
            (
                "/ui/r/a/b:v1",
                Some(Page::Manifest("a/b".into(), "v1".into())),
            ),
            (
                "/ui/r/a@sha256:00",
                Some(Page::Manifest("a".into(), "sha256:00".into())),
            ),
            ("/ui/r/", None),
            ("/ui/other", None),
        ];
        for (path, want) in table {
            assert_eq!(&parse(path), want, "{path}");
        }
        assert!(!is_page("/v2/"));
        assert!(!is_page("/uix"));
    }

    #[test]
    fn pull_host_is_a_host_or_a_placeholder() {
        let h = |s: &str| pull_host(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(h("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(h("[::1]:5000"), "[::1]:5000");
        assert_eq!(h("evil\"><script>"), "REGISTRY");
        assert_eq!(pull_host(None), "REGISTRY");
    }
}
