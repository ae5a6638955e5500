//! The object-storage backend: S3 and compatible stores (SeaweedFS, MinIO, R2, ...) through
//! the `object_store` crate, so that several `hoist serve` processes over one bucket are
//! one registry. Nodes keep no state of their own that another node would need: every
//! request may reach any node.
//!
//! - **Blobs** are published at their content address with a create-only write
//!   (If-None-Match): the first writer wins, a second one of the same digest (same bytes)
//!   drops its copy. What is published is a small pointer naming the *segments* that hold
//!   the bytes, as they were uploaded: committing never copies a blob ([`blobs`]).
//! - **Upload sessions** live in the bucket ([`uploads`]): a state object with the segments
//!   written so far, the byte count and the serialized SHA-256 state, so whichever node
//!   gets the next chunk continues the digest without reading anything back. Every change
//!   is a compare-and-swap (If-Match); of two requests writing one session at once (on two
//!   nodes) one wins, the other is refused.
//! - **Manifests** are blobs too, their bytes inline in the pointer; a repository holds one
//!   through a revision object; tags are moved by compare-and-swap ([`manifests`]).
//! - **Caches** hold immutable facts only ([`cache`]).
//! - **Garbage collection** keeps last-touch times in the blob pointers and revisions, and
//!   removes with compare-and-swap, so it runs while any node serves ([`gc`]).
//!
//! Needs a store with conditional writes (If-None-Match: * and If-Match on PUT): S3 since
//! 2024, SeaweedFS, MinIO, R2. The key layout is in [`layout`].

mod blobs;
mod cache;
mod gc;
mod layout;
mod manifests;
mod uploads;

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hoist_image::{Descriptor, Digest};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion,
};

use crate::error::{Error, ErrorKind, Result};
use crate::names::RepoName;
use crate::storage::{
    BlobEntry, BlobRead, ByteStream, Expired, ManifestEntry, ManifestPut, Storage, StoredManifest,
};
use blobs::BlobPointer;
use cache::Cache;
use layout::Layout;

pub(crate) use uploads::MIN_SEGMENT;

/// Bytes of blob pointers a node remembers (a pointer is a few hundred bytes).
const POINTER_CACHE_BYTES: usize = 8 << 20;
/// Manifest bytes a node remembers.
const MANIFEST_CACHE_BYTES: usize = 64 << 20;
/// How long the store may keep a request waiting (to connect, for its answer, between two
/// pieces of a body) before the request is taken as stalled: `object_store`'s default
/// request timeout.
pub const DEFAULT_S3_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a connection to the store may take to open: `object_store`'s default.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A registry stored in an object store. Cheap to clone.
#[derive(Clone)]
pub struct ObjectStorage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("store", &self.inner.name)
            .finish()
    }
}

pub(crate) struct Inner {
    store: Arc<dyn ObjectStore>,
    /// The same store, for the bodies of blob reads: a client reading a blob sets their
    /// pace, so no timeout of its HTTP client runs while the body waits for the reader;
    /// [`blobs`] bounds only the waits on the store (`timeout`), and resumes a body the
    /// store broke off.
    reads: Arc<dyn ObjectStore>,
    /// How long a wait on the store may last (see [`DEFAULT_S3_TIMEOUT`]).
    timeout: Duration,
    multipart: Arc<dyn MultipartStore>,
    layout: Layout,
    /// What the store is, for log lines (`s3://bucket/prefix`, never credentials).
    name: String,
    pointers: Cache<Digest, BlobPointer>,
    manifests: Cache<Digest, Bytes>,
    /// Upload sessions a request of this node is writing or committing.
    busy: Mutex<HashSet<String>>,
    /// The repositories as last listed, and when (see [`gc`]).
    repos: Mutex<Option<(Instant, Vec<String>)>>,
}

/// How to reach an S3-compatible bucket. Unset fields come from the standard AWS
/// environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside it (several registries may share a bucket).
    pub prefix: String,
    /// The endpoint URL (`http://127.0.0.1:8333`); AWS itself when unset.
    pub endpoint: Option<String>,
    /// The region [default: us-east-1].
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Allow a plain-http endpoint that is not a loopback address (loopback always may).
    pub allow_http: bool,
    /// How long the store may keep a request waiting: to connect, for its answer, between
    /// two pieces of a body while hoist waits for them [default: [`DEFAULT_S3_TIMEOUT`]].
    /// A client reading a blob slowly is not the store keeping hoist waiting: its pauses
    /// do not count.
    pub timeout: Option<Duration>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("allow_http", &self.allow_http)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl S3Config {
    /// The bucket and prefix of `s3://BUCKET[/PREFIX]`.
    pub fn from_url(url: &str) -> Result<S3Config> {
        let bad = |why: &str| -> Error {
            ErrorKind::Config(format!("storage {url:?}: {why}, like s3://BUCKET[/PREFIX]")).into()
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'));
        if !bucket_ok {
            return Err(bad("the bucket name must be 3-63 of a-z, 0-9, '-', '.'"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|s| s == "." || s == ".." || (s.is_empty() && !prefix.is_empty()))
            || Path::parse(prefix).is_err()
        {
            return Err(bad("the prefix must be plain path segments"));
        }
        Ok(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            ..S3Config::default()
        })
    }
}

/// The HTTP client settings of an S3 store: the `AWS_*` variables `object_store` reads
/// (a proxy, certificates, ...), plain http when the endpoint is http, and no timeouts but
/// the connect timeout (each use adds its own, see [`ObjectStorage::s3`]).
fn client_options(endpoint: Option<&str>, timeout: Duration) -> ClientOptions {
    use object_store::ClientConfigKey;
    let mut o = ClientOptions::new();
    for (k, v) in std::env::vars() {
        if let Some(k) = k.to_ascii_lowercase().strip_prefix("aws_")
            && let Ok(key) = k.parse::<ClientConfigKey>()
        {
            o = o.with_config(key, v);
        }
    }
    o.with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
        .with_timeout_disabled()
        .with_read_timeout_disabled()
        .with_connect_timeout(timeout.min(CONNECT_TIMEOUT))
}

/// Whether an endpoint URL names a loopback host (plain http is fine there).
fn is_loopback(endpoint: &str) -> bool {
    let Ok(u) = url_host(endpoint) else {
        return false;
    };
    u == "localhost"
        || u.trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of `scheme://host[:port]/...`.
fn url_host(endpoint: &str) -> std::result::Result<&str, ()> {
    let rest = endpoint.split_once("://").ok_or(())?.1;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return host_port.split_once(']').map(|(h, _)| &h[1..]).ok_or(());
    }
    Ok(host_port.split(':').next().unwrap_or(host_port))
}

impl ObjectStorage {
    /// A registry in an S3-compatible bucket (path-style requests; payloads are not signed,
    /// TLS or the loopback carries them, so bytes are hashed once, for their digest).
    pub fn s3(config: &S3Config) -> Result<ObjectStorage> {
        use object_store::aws::AmazonS3Builder;
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_virtual_hosted_style_request(false)
            .with_unsigned_payload(true);
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok());
        if let Some(e) = &endpoint {
            if e.starts_with("http://") && !config.allow_http && !is_loopback(e) {
                return Err(ErrorKind::Config(format!(
                    "S3 endpoint {e}: plain http to a host that is not loopback; use https, \
                     or allow it explicitly (--s3-allow-http)"
                ))
                .into());
            }
            b = b.with_endpoint(e);
        }
        let region = config
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        b = b.with_region(region);
        // Credentials from the settings or the environment; never a guess at an instance
        // metadata service (a request to a link-local address from a machine without one).
        let env = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        let has_credentials = config.access_key_id.is_some()
            || env("AWS_ACCESS_KEY_ID")
            || env("AWS_WEB_IDENTITY_TOKEN_FILE")
            || env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            || env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        if !has_credentials {
            return Err(ErrorKind::Config(format!(
                "S3 bucket {}: no credentials: give --s3-access-key-id and \
                 --s3-secret-access-key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                config.bucket
            ))
            .into());
        }
        if let Some(k) = &config.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &config.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        if let Some(t) = &config.session_token {
            b = b.with_token(t);
        }
        let timeout = config.timeout.unwrap_or(DEFAULT_S3_TIMEOUT);
        let client = client_options(endpoint.as_deref(), timeout);
        let build = |options: ClientOptions| {
            b.clone().with_client_options(options).build().map_err(|e| {
                Error::from(ErrorKind::Config(format!(
                    "S3 bucket {}: {e}",
                    config.bucket
                )))
            })
        };
        // Every other request: reqwest's read timeout, from the start of the request until
        // its answer begins (sending a part included, as the whole-request timeout did),
        // then for each read of the answer's body.
        let store = build(client.clone().with_read_timeout(timeout))?;
        // Blob bodies: no timeout in the client at all (reqwest's read timeout counts a
        // reader's pause as the store's silence); blobs.rs times the waits on the store.
        let reads = build(client)?;
        let name = match config.prefix.as_str() {
            "" => format!("s3://{}", config.bucket),
            p => format!("s3://{}/{p}", config.bucket),
        };
        Ok(Self::with_name(
            Arc::new(store),
            Arc::new(reads),
            timeout,
            &config.prefix,
            name,
        ))
    }

    /// A registry in any object store that also has the multipart API (an S3 client,
    /// `object_store::memory::InMemory` for tests), under `prefix`.
    pub fn new<S: ObjectStore + MultipartStore>(store: Arc<S>, prefix: &str) -> ObjectStorage {
        let name = format!("{store}/{prefix}");
        Self::with_name(store.clone(), store, DEFAULT_S3_TIMEOUT, prefix, name)
    }

    fn with_name<S: ObjectStore + MultipartStore>(
        store: Arc<S>,
        reads: Arc<dyn ObjectStore>,
        timeout: Duration,
        prefix: &str,
        name: String,
    ) -> ObjectStorage {
        ObjectStorage {
            inner: Arc::new(Inner {
                store: store.clone(),
                reads,
                timeout,
                multipart: store,
                layout: Layout::new(prefix),
                name,
                pointers: Cache::new(POINTER_CACHE_BYTES, BlobPointer::weight),
                manifests: Cache::new(MANIFEST_CACHE_BYTES, |b| b.len()),
                busy: Mutex::new(HashSet::new()),
                repos: Mutex::new(None),
            }),
        }
    }

    /// What the store is (`s3://bucket/prefix`), for log lines.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Check that the store keeps the conditional writes this backend relies on, with a
    /// sentinel object: a second create-only PUT of one key (`If-None-Match: *`) is
    /// refused, and so is a PUT naming a version the key no longer has (`If-Match`). A
    /// store that ignored them would let two nodes both win a race (for an upload
    /// session's bytes, for a tag) without either noticing; `hoist serve` runs this at
    /// start and refuses such a store.
    pub async fn check_conditional_writes(&self) -> Result<()> {
        let key = self.inner.layout.probe(&random_hex());
        let res = self.inner.conditional_writes_at(&key).await;
        self.inner.delete_quietly(&key).await;
        res
    }
}

/// A store failure on `key` as the registry's error, in one line: object_store's message
/// repeats its chain of causes and the store's XML answer, which says no more than its code.
pub(crate) fn store_err(key: &Path, e: object_store::Error) -> Error {
    Error::io(key, io::Error::other(concise(&e.to_string())))
}

fn concise(message: &str) -> String {
    let code = message
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_string());
    let head = message.split('<').next().unwrap_or(message);
    // The last "Server returned ..." or "Error performing ..." part names what failed.
    let head = head
        .rsplit_once("Error performing ")
        .map_or(head, |(_, tail)| tail)
        .trim_end_matches([' ', ':']);
    match code {
        Some(c) => format!("{head} ({c})"),
        None => head.to_string(),
    }
}

/// A small object read whole, with the version a compare-and-swap of it names and its
/// last-modified time (ms since the epoch).
pub(crate) struct Versioned {
    pub(crate) bytes: Bytes,
    pub(crate) version: UpdateVersion,
    pub(crate) modified_ms: u64,
}

/// Read the small object at `key` whole; `None` when there is none.
pub(crate) async fn get_versioned(s: &Inner, key: &Path) -> Result<Option<Versioned>> {
    let r = match s.store.get(key).await {
        Ok(r) => r,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(store_err(key, e)),
    };
    let version = UpdateVersion {
        e_tag: r.meta.e_tag.clone(),
        version: r.meta.version.clone(),
    };
    let modified_ms = r.meta.last_modified.timestamp_millis().max(0) as u64;
    let bytes = r.bytes().await.map_err(|e| store_err(key, e))?;
    Ok(Some(Versioned {
        bytes,
        version,
        modified_ms,
    }))
}

/// Whether the store said the object is not there.
pub(crate) fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

/// A random id: 32 hex digits (128 bits) from the system's secure generator.
pub(crate) fn random_hex() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("the system random generator works");
    hex::encode(b)
}

/// The current time as milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    blobs::ms(SystemTime::now())
}

/// The current time as seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl Inner {
    /// The object at `key`, `None` when absent.
    async fn get_opt(&self, key: &Path) -> Result<Option<Bytes>> {
        match self.store.get(key).await {
            Ok(r) => r.bytes().await.map(Some).map_err(|e| store_err(key, e)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(store_err(key, e)),
        }
    }

    /// Whether an object is at `key`.
    async fn exists(&self, key: &Path) -> Result<bool> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(store_err(key, e)),
        }
    }

    /// Write `bytes` at `key`, replacing what is there.
    async fn put(&self, key: &Path, bytes: impl Into<PutPayload>) -> Result<()> {
        self.store
            .put(key, bytes.into())
            .await
            .map(drop)
            .map_err(|e| store_err(key, e))
    }

    /// Write `body` at `key` if it is still at `version`; `false` when another write got
    /// there first (or the object went away).
    async fn swap(&self, key: &Path, version: &UpdateVersion, body: Bytes) -> Result<bool> {
        let opts = PutMode::Update(version.clone()).into();
        match self.store.put_opts(key, body.into(), opts).await {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Ok(false),
            Err(e) => Err(store_err(key, e)),
        }
    }

    /// The error of a compare-and-swap that kept losing.
    fn contended(&self, key: &Path) -> Error {
        ErrorKind::Io {
            what: format!("{}/{key}", self.name),
            source: io::Error::other(format!(
                "kept changing under {} attempts to write it",
                blobs::CAS_TRIES
            )),
        }
        .into()
    }

    /// Remove `key`; absent is fine.
    async fn delete(&self, key: &Path) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(store_err(key, e)),
        }
    }

    /// Remove `key`, logging instead of failing: cleanup of what nothing refers to.
    async fn delete_quietly(&self, key: &Path) {
        if let Err(e) = self.delete(key).await {
            tracing::warn!(store = %self.name, error = %e, "cleanup failed; garbage collection removes it later");
        }
    }

    /// Mark session `id` as written by a request of this node (UploadBusy when it is).
    fn busy(self: &Arc<Self>, id: &str) -> Result<BusyGuard> {
        let mut set = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(id.to_string()) {
            return Err(ErrorKind::UploadBusy { id: id.to_string() }.into());
        }
        Ok(BusyGuard {
            inner: self.clone(),
            id: id.to_string(),
        })
    }

    async fn conditional_writes_at(&self, key: &Path) -> Result<()> {
        let unsupported = |what: &str| -> Error {
            ErrorKind::Config(format!(
                "object store {}: {what}; hoist needs conditional writes (PUT with \
                 If-None-Match: * and with If-Match, one winner each)",
                self.name
            ))
            .into()
        };
        let put = |body: &'static [u8], mode: PutMode| {
            self.store
                .put_opts(key, Bytes::from_static(body).into(), mode.into())
        };
        let first = put(b"1", PutMode::Create)
            .await
            .map_err(|e| store_err(key, e))?;
        match put(b"2", PutMode::Create).await {
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {}
            Ok(_) => {
                return Err(unsupported(
                    "a second create-only PUT (If-None-Match: *) of one key succeeded",
                ));
            }
            Err(e) => return Err(store_err(key, e)),
        }
        let stale = UpdateVersion::from(first);
        put(b"3", PutMode::Update(stale.clone()))
            .await
            .map_err(|e| store_err(key, e))?;
        match put(b"4", PutMode::Update(stale)).await {
            Err(object_store::Error::Precondition { .. }) => Ok(()),
            Ok(_) => Err(unsupported(
                "a PUT with an If-Match of a replaced version succeeded",
            )),
            Err(e) => Err(store_err(key, e)),
        }
    }

    async fn probe(&self) -> Result<()> {
        let nonce = random_hex();
        let key = self.layout.probe(&nonce);
        self.put(&key, Bytes::from(nonce.clone())).await?;
        let back = self.get_opt(&key).await;
        self.delete_quietly(&key).await;
        match back? {
            Some(b) if b == nonce.as_bytes() => Ok(()),
            _ => Err(ErrorKind::Corrupt {
                what: format!("{}/{key}", self.name),
                message: "read back other bytes than written".into(),
            }
            .into()),
        }
    }
}

/// The mark of a session being written by a request of this node; cleared on drop.
pub(crate) struct BusyGuard {
    inner: Arc<Inner>,
    id: String,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.inner
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// Run `f` as a task of its own, so that a request that goes away (its future dropped)
/// does not stop a storage step half-way: the step runs to its end, and what an upload
/// received before the client left is kept.
async fn detached<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(f)
        .await
        .unwrap_or_else(|e| Err(Error::io("storage task", io::Error::other(e))))
}

#[async_trait::async_trait]
impl Storage for ObjectStorage {
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        blobs::size(&self.inner, repo, digest).await
    }

    async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<Option<BlobRead>> {
        blobs::read(&self.inner, repo, digest, range).await
    }

    async fn blob_mount(&self, from: &RepoName, to: &RepoName, digest: &Digest) -> Result<bool> {
        blobs::mount(&self.inner, from, to, digest).await
    }

    async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        blobs::unlink(&self.inner, repo, digest).await
    }

    async fn upload_start(&self, repo: &RepoName) -> Result<String> {
        uploads::start(&self.inner, repo).await
    }

    async fn upload_size(&self, repo: &RepoName, id: &str) -> Result<u64> {
        uploads::size(&self.inner, repo, id).await
    }

    async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        let (inner, repo, id) = (self.inner.clone(), repo.clone(), id.to_string());
        detached(async move { uploads::append(&inner, &repo, &id, start, body).await }).await
    }

    async fn upload_commit(&self, repo: &RepoName, id: &str, digest: &Digest) -> Result<u64> {
        let (inner, repo, id, digest) = (
            self.inner.clone(),
            repo.clone(),
            id.to_string(),
            digest.clone(),
        );
        detached(async move { uploads::commit(&inner, &repo, &id, &digest).await }).await
    }

    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        uploads::cancel(&self.inner, repo, id).await
    }

    async fn uploads_expire(&self, idle: Duration) -> Result<Expired> {
        uploads::expire(&self.inner, idle).await
    }

    async fn manifest_put(&self, repo: &RepoName, put: ManifestPut) -> Result<()> {
        let (inner, repo) = (self.inner.clone(), repo.clone());
        detached(async move { manifests::put(&inner, &repo, &put).await }).await
    }

    async fn tag_resolve(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>> {
        manifests::tag_resolve(&self.inner, repo, tag).await
    }

    async fn manifest_get(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>> {
        manifests::get(&self.inner, repo, digest).await
    }

    async fn manifest_exists(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        manifests::exists(&self.inner, repo, digest).await
    }

    async fn manifest_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        manifests::delete(&self.inner, repo, digest).await
    }

    async fn tag_delete(&self, repo: &RepoName, tag: &str) -> Result<()> {
        manifests::tag_delete(&self.inner, repo, tag).await
    }

    async fn tags(&self, repo: &RepoName) -> Result<Option<Vec<String>>> {
        manifests::tags(&self.inner, repo).await
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        let repos = manifests::repositories(&self.inner).await?;
        gc::remember_repos(&self.inner, &repos);
        Ok(repos)
    }

    async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Descriptor>> {
        manifests::referrers(&self.inner, repo, subject).await
    }

    async fn probe(&self) -> Result<()> {
        self.inner.probe().await
    }

    fn chunk_min_length(&self) -> Option<u64> {
        Some(MIN_SEGMENT)
    }

    async fn blobs(&self) -> Result<Vec<BlobEntry>> {
        gc::blobs(&self.inner).await
    }

    async fn manifests(&self, repo: &RepoName) -> Result<Vec<ManifestEntry>> {
        gc::manifests(&self.inner, repo).await
    }

    async fn blob_touch(&self, digest: &Digest) -> Result<bool> {
        blobs::touch(&self.inner, digest).await
    }

    async fn manifest_touch(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        gc::manifest_touch(&self.inner, repo, digest).await
    }

    async fn blob_remove(&self, digest: &Digest, cutoff: SystemTime) -> Result<Option<u64>> {
        let (inner, digest) = (self.inner.clone(), digest.clone());
        detached(async move { gc::blob_remove(&inner, &digest, cutoff).await }).await
    }

    async fn manifest_remove(
        &self,
        repo: &RepoName,
        digest: &Digest,
        cutoff: SystemTime,
    ) -> Result<bool> {
        let (inner, repo, digest) = (self.inner.clone(), repo.clone(), digest.clone());
        detached(async move { gc::manifest_remove(&inner, &repo, &digest, cutoff).await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        let c = S3Config::from_url("s3://my-bucket/reg/one/").unwrap();
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str()),
            ("my-bucket", "reg/one")
        );
        let c = S3Config::from_url("s3://my-bucket").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("my-bucket", ""));
        for bad in [
            "my-bucket",
            "s3://",
            "s3://UPPER",
            "s3://b",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
            "gs://bucket",
        ] {
            let e = S3Config::from_url(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn store_errors_are_one_line() {
        let long = "The operation lacked the necessary privileges to complete for path k: Error performing PUT http://h/b/k in 4ms - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>...</Message></Error>: The operation lacked ...";
        assert_eq!(
            concise(long),
            "PUT http://h/b/k in 4ms - Server returned non-2xx status code: 403 Forbidden (SignatureDoesNotMatch)"
        );
        assert_eq!(
            concise("Object at location k not found"),
            "Object at location k not found"
        );
    }

    #[test]
    fn loopback_endpoints() {
        for (e, want) in [
            ("http://127.0.0.1:8333", true),
            ("http://localhost:8333/", true),
            ("http://[::1]:8333", true),
            ("http://user:pw@127.0.0.2", true),
            ("http://seaweed:8333", false),
            ("http://10.0.0.1", false),
            ("nonsense", false),
        ] {
            assert_eq!(is_loopback(e), want, "{e}");
        }
    }
}
