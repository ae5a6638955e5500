//! The HTTP side: routing `/v2/...` by hand (repository names contain `/`), one handler per
//! endpoint, request bodies streamed to the storage as they arrive, blob bodies streamed
//! back as the client reads them. Every storage outcome becomes an HTTP answer here
//! ([`error`]), and nowhere else.

mod body;
pub(crate) mod error;
mod location;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use hoist_image::{Descriptor, Digest, MAX_MANIFEST_SIZE, Manifest, MediaType, Parsed, quote};

use crate::auth::{Checked, Htpasswd};
use crate::error::{ErrorKind, Result};
use crate::fs::FsStorage;
use crate::metrics::Metrics;
use crate::names::{Reference, RepoName, parse_digest, validate_tag};
use crate::storage::{ManifestPut, Storage};
use error::{ApiError, ApiResult, Code, range_header};

/// How much of an oversized manifest body is read (and dropped) before answering 413.
const DRAIN_CAP: u64 = 64 << 20;
/// How long a request body may send nothing before its request fails (408), unless told
/// otherwise ([`Registry::body_timeout`]). A minute, as nginx's `client_body_timeout`: a
/// client that sends nothing for that long is gone or hostile; an upload's bytes until then
/// stay in its session.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

const API_VERSION: &str = "registry/2.0";
const REALM: &str = "Basic realm=\"hoist-registry\"";

/// The registry service: storage plus optional authentication, metrics and the web page.
/// Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    storage: Arc<dyn Storage>,
    auth: Option<Arc<Htpasswd>>,
    read_only: bool,
    metrics: Metrics,
    metrics_endpoint: bool,
    ui: Arc<crate::ui::Summaries>,
    body_timeout: Duration,
    signer: location::Signer,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("auth", &self.auth.is_some())
            .field("read_only", &self.read_only)
            .field("body_timeout", &self.body_timeout)
            .finish()
    }
}

impl Registry {
    /// A registry on the filesystem at `root` (created if needed), anonymous read-write,
    /// signing upload locations with the secret kept in the root ([`FsStorage::secret`]),
    /// so they stay valid across restarts.
    pub fn open(root: impl AsRef<Path>) -> Result<Registry> {
        let fs = FsStorage::open(root.as_ref())?;
        let secret = fs.secret()?;
        Ok(Self::with_storage(fs).secret(&secret))
    }

    /// A registry on any storage backend.
    pub fn with_storage(storage: impl Storage) -> Registry {
        Self::with_shared_storage(Arc::new(storage))
    }

    /// A registry on a storage backend shared with other users (garbage collection, tests).
    pub fn with_shared_storage(storage: Arc<dyn Storage>) -> Registry {
        Registry {
            storage,
            auth: None,
            read_only: false,
            metrics: Metrics::new(),
            metrics_endpoint: true,
            ui: Arc::default(),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            signer: location::Signer::random(),
        }
    }

    /// Sign upload locations with `secret` (every node over one storage needs the same),
    /// instead of a random secret of this process whose locations die with it. A location
    /// that another secret signed, or that names a session of another repository, is an
    /// unknown upload (404 BLOB_UPLOAD_UNKNOWN).
    pub fn secret(mut self, secret: &[u8]) -> Registry {
        self.signer = location::Signer::new(secret);
        self
    }

    /// Require basic auth against an htpasswd file of bcrypt hashes.
    pub fn htpasswd(self, path: &Path) -> Result<Registry> {
        let h = Htpasswd::load(path).map_err(ErrorKind::Config)?;
        Ok(self.with_auth(h))
    }

    /// Require basic auth against these users.
    pub fn with_auth(mut self, users: Htpasswd) -> Registry {
        self.auth = Some(Arc::new(users));
        self
    }

    /// Refuse every write (405 UNSUPPORTED, saying the registry is read-only), for maintenance.
    pub fn read_only(mut self, on: bool) -> Registry {
        self.read_only = on;
        self
    }

    /// Whether the main router serves `/metrics` (default yes, behind the same
    /// authentication as the API). Turn it off when [`Registry::metrics_router`] serves them
    /// on an address of their own.
    pub fn metrics_endpoint(mut self, on: bool) -> Registry {
        self.metrics_endpoint = on;
        self
    }

    /// Fail a request whose body sends nothing for `timeout` (408; what an upload received
    /// until then stays in its session).
    pub fn body_timeout(mut self, timeout: Duration) -> Registry {
        self.body_timeout = timeout;
        self
    }

    /// The storage it runs on.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// This registry's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn ui_summaries(&self) -> &Arc<crate::ui::Summaries> {
        &self.ui
    }

    /// The axum router: the API under `/v2/`, the web page at `/` and `/ui/`, `/metrics`,
    /// and `/healthz`, `/readyz` (those two without authentication).
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .fallback(dispatch)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                crate::access::layer,
            ))
            .with_state(self.clone())
    }

    /// A router serving `/metrics` only, without authentication, for a separate metrics
    /// address (`--metrics-addr`).
    pub fn metrics_router(&self) -> axum::Router {
        let m = self.metrics.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move { metrics_response(&m) }),
        )
    }
}

fn metrics_response(m: &Metrics) -> Response {
    let mut r = Response::new(Body::from(m.render()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn dispatch(State(reg): State<Registry>, req: Request) -> Response {
    match req.uri().path() {
        "/healthz" => return crate::health::healthz(),
        "/readyz" => return crate::health::readyz(&reg).await,
        _ => {}
    }
    let user = match authenticate(&reg, req.headers()).await {
        Ok(user) => user,
        Err(e) => return api_version(e.into_response()),
    };
    let path = req.uri().path();
    let mut resp = if path == "/metrics" && reg.metrics_endpoint {
        metrics_response(&reg.metrics)
    } else if crate::ui::is_page(path) {
        crate::ui::page(&reg, req).await
    } else {
        api_version(match handle(&reg, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        })
    };
    if let Some(u) = user {
        resp.extensions_mut().insert(crate::access::User(u));
    }
    resp
}

fn api_version(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static(API_VERSION),
    );
    resp
}

/// Check the request's credentials when the registry has users: the user's name, or an
/// UNAUTHORIZED error with the Basic challenge.
async fn authenticate(reg: &Registry, headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(auth) = &reg.auth else {
        return Ok(None);
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.check(value).await {
        Checked::User(u) => Ok(Some(u)),
        Checked::Denied => Err(ApiError::new(Code::Unauthorized, "authentication required")
            .with_header(header::WWW_AUTHENTICATE, REALM)),
        Checked::Busy => Err(ApiError::new(
            Code::TooManyRequests,
            "too many password checks waiting; try again in a moment",
        )
        .with_header(header::RETRY_AFTER, "1")),
    }
}

/// The template of the endpoint `path` names and its repository: bounded labels for the
/// access log and metrics.
pub(crate) fn route_template(path: &str) -> (&'static str, Option<String>) {
    match path {
        "/healthz" => return ("/healthz", None),
        "/readyz" => return ("/readyz", None),
        "/metrics" => return ("/metrics", None),
        _ => {}
    }
    if crate::ui::is_page(path) {
        return ("/ui", crate::ui::repo_of(path));
    }
    match route(path) {
        Some(Route::Base) => ("/v2/", None),
        Some(Route::Catalog) => ("/v2/_catalog", None),
        Some(Route::Tags(n)) => ("/v2/{name}/tags/list", Some(n)),
        Some(Route::Manifest(n, _)) => ("/v2/{name}/manifests/{reference}", Some(n)),
        Some(Route::Blob(n, _)) => ("/v2/{name}/blobs/{digest}", Some(n)),
        Some(Route::UploadStart(n)) => ("/v2/{name}/blobs/uploads/", Some(n)),
        Some(Route::Upload(n, _)) => ("/v2/{name}/blobs/uploads/{id}", Some(n)),
        Some(Route::Referrers(n, _)) => ("/v2/{name}/referrers/{digest}", Some(n)),
        None => ("other", None),
    }
}

/// Which endpoint a path names.
#[derive(Debug, PartialEq)]
enum Route {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Referrers(String, String),
}

/// The route of `path`; its last segment (reference, digest or session id) percent-decoded,
/// as distribution decodes it (`manifests/sha256%3A...`).
fn route(path: &str) -> Option<Route> {
    if path == "/v2" || path == "/v2/" {
        return Some(Route::Base);
    }
    let rest = path.strip_prefix("/v2/")?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |k: usize| segs[..n - k].join("/");
    let last = || decode(segs[n - 1]);
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Some(Route::Tags(name(2)));
    }
    if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        return Some(if segs[n - 1].is_empty() {
            Route::UploadStart(name(3))
        } else {
            Route::Upload(name(3), last())
        });
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Some(Route::UploadStart(name(2)));
    }
    if n >= 3 {
        match segs[n - 2] {
            "manifests" => return Some(Route::Manifest(name(2), last())),
            "blobs" => return Some(Route::Blob(name(2), last())),
            "referrers" => return Some(Route::Referrers(name(2), last())),
            _ => {}
        }
    }
    None
}

/// A path segment percent-decoded (as it is when that gives no UTF-8).
fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .map_or_else(|_| seg.to_string(), |s| s.into_owned())
}

/// Query parameters, percent-decoded, in order.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

async fn handle(reg: &Registry, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    let method = parts.method;
    let headers = parts.headers;
    let Some(r) = route(&path) else {
        return Err(ApiError::new(
            Code::Unsupported,
            format!("{path}: not an endpoint of the distribution API"),
        )
        .with_status(StatusCode::NOT_FOUND));
    };
    if reg.read_only && !matches!(method, Method::GET | Method::HEAD) {
        return Err(ApiError::new(
            Code::Unsupported,
            format!("the registry is read-only (maintenance): {method} {path} is refused"),
        ));
    }
    let not_allowed = || {
        Err(ApiError::new(
            Code::Unsupported,
            format!("{method} is not supported on {path}"),
        ))
    };
    match r {
        Route::Base => match method {
            Method::GET | Method::HEAD => Ok(json_response(StatusCode::OK, "{}".into())),
            _ => not_allowed(),
        },
        Route::Catalog => match method {
            Method::GET => catalog(reg, &query).await,
            _ => not_allowed(),
        },
        Route::Tags(name) => {
            let repo = RepoName::parse(&name)?;
            match method {
                Method::GET => tags_list(reg, repo, &query).await,
                _ => not_allowed(),
            }
        }
        Route::Manifest(name, reference) => {
            let repo = RepoName::parse(&name)?;
            let reference = Reference::parse(&reference)?;
            match method {
                Method::GET => manifest_get(reg, repo, reference, false).await,
                Method::HEAD => manifest_get(reg, repo, reference, true).await,
                Method::PUT => manifest_put(reg, repo, reference, &query, &headers, body).await,
                Method::DELETE => manifest_delete(reg, repo, reference).await,
                _ => not_allowed(),
            }
        }
        Route::Blob(name, digest) => {
            let repo = RepoName::parse(&name)?;
            let digest = parse_digest(&digest)?;
            match method {
                Method::GET => blob_get(reg, repo, digest, &headers, false).await,
                Method::HEAD => blob_get(reg, repo, digest, &headers, true).await,
                Method::DELETE => {
                    reg.storage.blob_delete(&repo, &digest).await?;
                    Ok(empty(StatusCode::ACCEPTED))
                }
                _ => not_allowed(),
            }
        }
        Route::UploadStart(name) => {
            let repo = RepoName::parse(&name)?;
            match method {
                Method::POST => upload_post(reg, repo, &query, body).await,
                _ => not_allowed(),
            }
        }
        Route::Upload(name, token) => {
            let repo = RepoName::parse(&name)?;
            let Some(id) = reg.signer.verify(&repo, &token).map(str::to_string) else {
                return Err(crate::Error::from(ErrorKind::UploadUnknown { id: token }).into());
            };
            match method {
                Method::GET => {
                    let size = reg.storage.upload_size(&repo, &id).await?;
                    Ok(upload_progress(
                        reg,
                        StatusCode::NO_CONTENT,
                        &repo,
                        &id,
                        size,
                    ))
                }
                Method::PATCH => {
                    let chunk = content_range(&headers)?;
                    let size = append(reg, &repo, &id, chunk, body).await?;
                    Ok(upload_progress(reg, StatusCode::ACCEPTED, &repo, &id, size))
                }
                Method::PUT => upload_put(reg, repo, id, &query, &headers, body).await,
                Method::DELETE => {
                    reg.storage.upload_cancel(&repo, &id).await?;
                    Ok(empty(StatusCode::NO_CONTENT))
                }
                _ => not_allowed(),
            }
        }
        Route::Referrers(name, digest) => {
            let repo = RepoName::parse(&name)?;
            let digest = parse_digest(&digest)?;
            match method {
                Method::GET => referrers(reg, repo, digest, &query).await,
                _ => not_allowed(),
            }
        }
    }
}

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn set(r: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// The answer that tells a client where its session is (a signed location) and how many
/// bytes it holds.
fn upload_progress(
    reg: &Registry,
    status: StatusCode,
    repo: &RepoName,
    id: &str,
    size: u64,
) -> Response {
    let token = reg.signer.token(repo, id);
    let mut r = empty(status);
    set(
        &mut r,
        "location",
        &format!("/v2/{repo}/blobs/uploads/{token}"),
    );
    set(&mut r, "range", &range_header(size));
    set(&mut r, "docker-upload-uuid", &token);
    if let Some(min) = reg.storage.chunk_min_length() {
        set(&mut r, "oci-chunk-min-length", &min.to_string());
    }
    r
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    let mut r = empty(StatusCode::CREATED);
    set(&mut r, "location", &format!("/v2/{repo}/blobs/{digest}"));
    set(&mut r, "docker-content-digest", &digest.to_string());
    r
}

/// Where a chunk starts and how long it is, from its `Content-Range: <start>-<end>`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    start: u64,
    len: u64,
}

/// The chunk a `Content-Range` header announces, if any.
fn content_range(headers: &HeaderMap) -> ApiResult<Option<Chunk>> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            Code::BlobUploadInvalid,
            format!(
                "Content-Range {}: expected <start>-<end>, like 0-1023",
                quote(v.as_bytes())
            ),
        )
    };
    let s = v.to_str().map_err(|_| bad())?;
    let s = s.strip_prefix("bytes ").unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.parse().map_err(|_| bad())?;
    let end: u64 = b.parse().map_err(|_| bad())?;
    // The range is inclusive: 0-(2^64-1) is one byte more than a u64 counts.
    let len = end
        .checked_sub(start)
        .and_then(|n| n.checked_add(1))
        .ok_or_else(bad)?;
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(cl) = content_length.filter(|&cl| cl != len) {
        return Err(ApiError::new(
            Code::BlobUploadInvalid,
            format!("Content-Range {s} is {len} bytes but Content-Length is {cl}"),
        ));
    }
    Ok(Some(Chunk { start, len }))
}

/// Stream `body` into the upload session (a chunk's body must be as long as its
/// Content-Range says); returns the session's new size.
async fn append(
    reg: &Registry,
    repo: &RepoName,
    id: &str,
    chunk: Option<Chunk>,
    body: Body,
) -> ApiResult<u64> {
    let (stream, rest) = body::stream(body, reg.body_timeout, chunk.map(|c| c.len));
    match reg
        .storage
        .upload_append(repo, id, chunk.map(|c| c.start), stream)
        .await
    {
        Ok(n) => Ok(n),
        Err(e) => {
            // A client still sending (the storage refused the chunk, or is full) gets to
            // read the answer.
            rest.drain(DRAIN_CAP).await;
            Err(e.into())
        }
    }
}

async fn upload_post(
    reg: &Registry,
    repo: RepoName,
    query: &Query,
    body: Body,
) -> ApiResult<Response> {
    if let Some(mount) = query.get("mount") {
        let digest = parse_digest(mount)?;
        // Only from a repository that sees the blob; without `from`, or when `from` does not
        // see it, a plain upload session (202), as the spec asks.
        if let Some(from) = query.get("from") {
            let from = RepoName::parse(from)?;
            if reg.storage.blob_mount(&from, &repo, &digest).await? {
                return Ok(blob_created(&repo, &digest));
            }
        }
    }
    let monolithic = match query.get("digest").filter(|_| query.get("mount").is_none()) {
        Some(d) => Some(parse_digest(d)?),
        None => None,
    };
    let id = reg.storage.upload_start(&repo).await?;
    if let Some(digest) = monolithic {
        // Single-POST monolithic upload.
        let res = async {
            append(reg, &repo, &id, None, body).await?;
            reg.storage.upload_commit(&repo, &id, &digest).await?;
            Ok::<_, ApiError>(digest)
        }
        .await;
        return match res {
            Ok(digest) => Ok(blob_created(&repo, &digest)),
            Err(e) => {
                let _ = reg.storage.upload_cancel(&repo, &id).await;
                Err(e)
            }
        };
    }
    Ok(upload_progress(reg, StatusCode::ACCEPTED, &repo, &id, 0))
}

async fn upload_put(
    reg: &Registry,
    repo: RepoName,
    id: String,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let Some(d) = query.get("digest") else {
        return Err(ApiError::new(
            Code::DigestInvalid,
            "PUT of an upload needs ?digest=<algorithm:hex>",
        ));
    };
    let digest = parse_digest(d)?;
    let chunk = content_range(headers)?;
    append(reg, &repo, &id, chunk, body).await?;
    reg.storage.upload_commit(&repo, &id, &digest).await?;
    Ok(blob_created(&repo, &digest))
}

/// Parse `Range: bytes=a-b | a- | -n` against `size`: (start, len).
fn byte_range(v: &HeaderValue, size: u64) -> ApiResult<(u64, u64)> {
    let unsatisfiable = |what: String| {
        ApiError::new(Code::Unsupported, what)
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .with_header(header::CONTENT_RANGE, &format!("bytes */{size}"))
    };
    let bad = || {
        unsatisfiable(format!(
            "Range {}: expected one range, bytes=START-END, bytes=START- or bytes=-N",
            quote(v.as_bytes())
        ))
    };
    let s = v.to_str().map_err(|_| bad())?;
    let spec = s.strip_prefix("bytes=").ok_or_else(bad)?.trim();
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let num = |x: &str| x.trim().parse::<u64>().map_err(|_| bad());
    let (start, end) = if a.trim().is_empty() {
        let n = num(b)?;
        if n == 0 {
            return Err(unsatisfiable(format!("Range {s}: empty suffix")));
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else if b.trim().is_empty() {
        (num(a)?, size.saturating_sub(1))
    } else {
        let (a, b) = (num(a)?, num(b)?);
        if b < a {
            return Err(bad());
        }
        (a, b.min(size.saturating_sub(1)))
    };
    if start >= size {
        return Err(unsatisfiable(format!(
            "Range {s}: starts at or past the blob's end ({size} bytes)"
        )));
    }
    Ok((start, end - start + 1))
}

async fn blob_get(
    reg: &Registry,
    repo: RepoName,
    digest: Digest,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response> {
    let unknown = |repo: &RepoName, digest: &Digest| -> ApiError {
        crate::Error::from(ErrorKind::BlobUnknown {
            repo: repo.to_string(),
            digest: digest.clone(),
        })
        .into()
    };
    // A whole-blob GET opens the blob at once (one storage lookup; the size comes with
    // it); a HEAD or a ranged GET needs the size first.
    let (size, whole) = if head || headers.contains_key(header::RANGE) {
        let Some(size) = reg.storage.blob_size(&repo, &digest).await? else {
            return Err(unknown(&repo, &digest));
        };
        (size, None)
    } else {
        let Some(blob) = reg.storage.blob_read(&repo, &digest, None).await? else {
            return Err(unknown(&repo, &digest));
        };
        (blob.size, Some(blob.body))
    };
    let range = headers
        .get(header::RANGE)
        .map(|v| byte_range(v, size))
        .transpose()?;
    let (status, len) = match range {
        Some((_, len)) => (StatusCode::PARTIAL_CONTENT, len),
        None => (StatusCode::OK, size),
    };
    let body = if head {
        Body::empty()
    } else if let Some(body) = whole {
        Body::from_stream(body)
    } else {
        let Some(blob) = reg.storage.blob_read(&repo, &digest, range).await? else {
            return Err(unknown(&repo, &digest));
        };
        Body::from_stream(blob.body)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    set(&mut resp, "content-length", &len.to_string());
    set(&mut resp, "content-type", "application/octet-stream");
    set(&mut resp, "docker-content-digest", &digest.to_string());
    set(&mut resp, "accept-ranges", "bytes");
    if let Some((start, len)) = range {
        set(
            &mut resp,
            "content-range",
            &format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    Ok(resp)
}

async fn resolve(reg: &Registry, repo: &RepoName, reference: &Reference) -> ApiResult<Digest> {
    match reference {
        Reference::Digest(d) => Ok(d.clone()),
        Reference::Tag(t) => reg.storage.tag_resolve(repo, t).await?.ok_or_else(|| {
            ApiError::new(
                Code::ManifestUnknown,
                format!("tag {} is not known to {repo}", quote(t)),
            )
        }),
    }
}

async fn manifest_get(
    reg: &Registry,
    repo: RepoName,
    reference: Reference,
    head: bool,
) -> ApiResult<Response> {
    let digest = resolve(reg, &repo, &reference).await?;
    let Some(m) = reg.storage.manifest_get(&repo, &digest).await? else {
        return Err(ApiError::new(
            Code::ManifestUnknown,
            format!("manifest {reference} is not known to {repo}"),
        ));
    };
    let len = m.raw.len();
    let mut resp = Response::new(if head {
        Body::empty()
    } else {
        Body::from(m.raw)
    });
    set(&mut resp, "content-type", &m.media_type);
    set(&mut resp, "content-length", &len.to_string());
    set(&mut resp, "docker-content-digest", &m.digest.to_string());
    Ok(resp)
}

async fn manifest_put(
    reg: &Registry,
    repo: RepoName,
    reference: Reference,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let too_large = |n: String| {
        ApiError::new(
            Code::SizeInvalid,
            format!("manifest of {n} bytes is over the {MAX_MANIFEST_SIZE} byte limit"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let raw = match read_capped(body, MAX_MANIFEST_SIZE, content_length, reg.body_timeout).await? {
        Some(raw) => raw,
        None => {
            return Err(too_large(
                content_length.map_or("more than that".into(), |n| n.to_string()),
            ));
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string());
    let ct = content_type.as_deref().map(MediaType::from);
    let manifest = Manifest::from_raw(raw.clone(), ct.as_ref())
        .map_err(|e| ApiError::new(Code::ManifestInvalid, e.to_string()))?;
    let media_type = match &ct {
        Some(ct) if ct.is_manifest() || ct.is_index() => ct.as_str().to_string(),
        _ => manifest.media_type().as_str().to_string(),
    };
    let digest = match &reference {
        Reference::Digest(d) => {
            let actual = Digest::of(d.algorithm(), &raw);
            if &actual != d {
                return Err(ApiError::new(
                    Code::DigestInvalid,
                    format!("manifest pushed as {d} has digest {actual}"),
                ));
            }
            actual
        }
        Reference::Tag(_) => manifest.digest().clone(),
    };
    let mut tags: Vec<String> = Vec::new();
    if let Reference::Tag(t) = &reference {
        tags.push(t.clone());
    }
    for t in query.all("tag") {
        validate_tag(t)?;
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    // Everything it references must be there.
    let subject = check_references(&*reg.storage, &repo, manifest.parsed()).await?;
    let referrer = subject.map(|subject| {
        let mut d = Descriptor::new(
            MediaType::from(media_type.as_str()),
            digest.clone(),
            raw.len() as u64,
        );
        let (artifact_type, annotations) = match manifest.parsed() {
            Parsed::Image(m) => (
                m.artifact_type
                    .clone()
                    .or_else(|| Some(m.config.media_type.as_str().to_string())),
                m.annotations.clone(),
            ),
            Parsed::Index(m) => (m.artifact_type.clone(), m.annotations.clone()),
        };
        d.artifact_type = artifact_type;
        d.annotations = annotations;
        (subject, d)
    });
    let subject = referrer.as_ref().map(|(s, _)| s.clone());
    reg.storage
        .manifest_put(
            &repo,
            ManifestPut {
                digest: digest.clone(),
                media_type,
                raw,
                referrer,
                tags: tags.clone(),
            },
        )
        .await?;
    let mut resp = empty(StatusCode::CREATED);
    set(
        &mut resp,
        "location",
        &format!("/v2/{repo}/manifests/{digest}"),
    );
    set(&mut resp, "docker-content-digest", &digest.to_string());
    if let Some(subject) = subject {
        set(&mut resp, "oci-subject", &subject.to_string());
    }
    // OCI-Tag: one per tag a `?tag=` PUT applied (distribution-spec v1.1).
    if query.get("tag").is_some() {
        for t in &tags {
            if let Ok(v) = HeaderValue::from_str(t) {
                resp.headers_mut().append("oci-tag", v);
            }
        }
    }
    Ok(resp)
}

/// Read a body of at most `max` bytes: `None` when it is larger. The excess is read and
/// dropped up to [`DRAIN_CAP`] so the client, still sending, gets to read the error
/// (a connection closed mid-upload shows as a reset, not as a 413).
async fn read_capped(
    body: Body,
    max: usize,
    content_length: Option<u64>,
    idle: Duration,
) -> ApiResult<Option<Bytes>> {
    let (mut stream, _) = body::stream(body, idle, None);
    let mut buf =
        bytes::BytesMut::with_capacity(content_length.map_or(8192, |n| n.min(max as u64) as usize));
    let mut seen: u64 = 0;
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                Code::ManifestInvalid,
                format!("reading the manifest body: {e}"),
            )
        })?;
        seen += frame.len() as u64;
        if seen > DRAIN_CAP {
            break;
        }
        if seen <= max as u64 {
            buf.extend_from_slice(&frame);
        }
    }
    Ok((seen <= max as u64).then(|| buf.freeze()))
}

/// Check a manifest's references; returns its subject's digest, if any.
async fn check_references(
    s: &dyn Storage,
    repo: &RepoName,
    parsed: &Parsed,
) -> ApiResult<Option<Digest>> {
    match parsed {
        Parsed::Image(m) => {
            for desc in std::iter::once(&m.config).chain(&m.layers) {
                if !desc.urls.is_empty() {
                    continue; // foreign / non-distributable layer, fetched from its URLs
                }
                match s.blob_size(repo, &desc.digest).await? {
                    None => {
                        return Err(ApiError::new(
                            Code::ManifestBlobUnknown,
                            format!(
                                "manifest references blob {} which {repo} does not have",
                                desc.digest
                            ),
                        ));
                    }
                    Some(size) if size != desc.size => {
                        return Err(ApiError::new(
                            Code::ManifestInvalid,
                            format!(
                                "manifest says blob {} has {} bytes, it has {size}",
                                desc.digest, desc.size
                            ),
                        ));
                    }
                    Some(_) => {}
                }
                // In use from now on: a garbage collection running now keeps it, or has
                // removed it already (then the manifest is refused).
                if !s.blob_touch(&desc.digest).await? {
                    return Err(ApiError::new(
                        Code::ManifestBlobUnknown,
                        format!(
                            "manifest references blob {} which garbage collection just removed",
                            desc.digest
                        ),
                    ));
                }
            }
            Ok(m.subject.as_ref().map(|d| d.digest.clone()))
        }
        Parsed::Index(m) => {
            for child in &m.manifests {
                // A touch, so a collection removing untagged manifests keeps the children.
                if !s.manifest_touch(repo, &child.digest).await? {
                    return Err(ApiError::new(
                        Code::ManifestBlobUnknown,
                        format!(
                            "index references manifest {} which {repo} does not have",
                            child.digest
                        ),
                    ));
                }
            }
            Ok(m.subject.as_ref().map(|d| d.digest.clone()))
        }
    }
}

async fn manifest_delete(
    reg: &Registry,
    repo: RepoName,
    reference: Reference,
) -> ApiResult<Response> {
    match reference {
        Reference::Tag(t) => reg.storage.tag_delete(&repo, &t).await?,
        Reference::Digest(d) => reg.storage.manifest_delete(&repo, &d).await?,
    }
    Ok(empty(StatusCode::ACCEPTED))
}

/// `n` and `last` pagination over a sorted list: the page and, when more follow, the Link.
fn paginate(
    items: Vec<String>,
    query: &Query,
    path: &str,
) -> ApiResult<(Vec<String>, Option<String>)> {
    let n = match query.get("n") {
        None => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(
                Code::Unsupported,
                format!("n={}: expected a non-negative number", quote(v)),
            )
            .with_status(StatusCode::BAD_REQUEST)
        })?),
    };
    let last = query.get("last");
    let mut rest: Vec<String> = match last {
        Some(l) => items.into_iter().filter(|t| t.as_str() > l).collect(),
        None => items,
    };
    let Some(n) = n else {
        return Ok((rest, None));
    };
    let more = rest.len() > n;
    rest.truncate(n);
    let link = match rest.last() {
        Some(l) if more => {
            let last: String = form_urlencoded::byte_serialize(l.as_bytes()).collect();
            Some(format!("<{path}?n={n}&last={last}>; rel=\"next\""))
        }
        _ => None,
    };
    Ok((rest, link))
}

async fn catalog(reg: &Registry, query: &Query) -> ApiResult<Response> {
    let repos = reg.storage.repositories().await?;
    let (page, link) = paginate(repos, query, "/v2/_catalog")?;
    let body = serde_json::json!({ "repositories": page }).to_string();
    let mut resp = json_response(StatusCode::OK, body);
    if let Some(l) = link {
        set(&mut resp, "link", &l);
    }
    Ok(resp)
}

async fn tags_list(reg: &Registry, repo: RepoName, query: &Query) -> ApiResult<Response> {
    let Some(tags) = reg.storage.tags(&repo).await? else {
        return Err(ApiError::new(
            Code::NameUnknown,
            format!("repository {repo} is not known"),
        ));
    };
    let (page, link) = paginate(tags, query, &format!("/v2/{repo}/tags/list"))?;
    let body = serde_json::json!({ "name": repo.as_str(), "tags": page }).to_string();
    let mut resp = json_response(StatusCode::OK, body);
    if let Some(l) = link {
        set(&mut resp, "link", &l);
    }
    Ok(resp)
}

async fn referrers(
    reg: &Registry,
    repo: RepoName,
    subject: Digest,
    query: &Query,
) -> ApiResult<Response> {
    let mut list = reg.storage.referrers(&repo, &subject).await?;
    let filter = query.get("artifactType");
    if let Some(f) = filter {
        list.retain(|d| d.artifact_type.as_deref() == Some(f));
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciIndex.as_str(),
        "manifests": list,
    })
    .to_string();
    let mut resp = Response::new(Body::from(body));
    set(&mut resp, "content-type", MediaType::OciIndex.as_str());
    if filter.is_some() {
        set(&mut resp, "oci-filters-applied", "artifactType");
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let table: &[(&str, Option<Route>)] = &[
            ("/v2/", Some(Route::Base)),
            ("/v2", Some(Route::Base)),
            ("/v2/_catalog", Some(Route::Catalog)),
            ("/v2/a/b/tags/list", Some(Route::Tags("a/b".into()))),
            (
                "/v2/a/manifests/latest",
                Some(Route::Manifest("a".into(), "latest".into())),
            ),
            (
                "/v2/a/blobs/manifests/x",
                Some(Route::Manifest("a/blobs".into(), "x".into())),
            ),
            ("/v2/a/blobs/uploads/", Some(Route::UploadStart("a".into()))),
            ("/v2/a/blobs/uploads", Some(Route::UploadStart("a".into()))),
            (
                "/v2/a/b/blobs/uploads/xyz",
                Some(Route::Upload("a/b".into(), "xyz".into())),
            ),
            (
                "/v2/a/blobs/sha256:00",
                Some(Route::Blob("a".into(), "sha256:00".into())),
            ),
            (
                "/v2/a/referrers/sha256:00",
                Some(Route::Referrers("a".into(), "sha256:00".into())),
            ),
            ("/v2/a/other/x", None),
            ("/v1/a/manifests/x", None),
            ("/", None),
        ];
        for (path, want) in table {
            assert_eq!(&route(path), want, "{path}");
        }
    }

    #[test]
    fn ranges() {
        let v = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(byte_range(&v("bytes=0-9"), 100).unwrap(), (0, 10));
        assert_eq!(byte_range(&v("bytes=90-"), 100).unwrap(), (90, 10));
        assert_eq!(byte_range(&v("bytes=-5"), 100).unwrap(), (95, 5));
        assert_eq!(byte_range(&v("bytes=50-500"), 100).unwrap(), (50, 50));
        for bad in [
            "bytes=100-",
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=-0",
            "bytes=",
        ] {
            let e = byte_range(&v(bad), 100).unwrap_err();
            assert_eq!(e.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{bad}");
        }
    }
}
