//! A conformance harness for OCI distribution-spec v1.1 registries, mirroring the test list
//! of the OCI conformance suite (which needs Go ≥ 1.20, not available here): push (post-put,
//! post-only, patch-stream, patch-chunked, cancel, mounts), manifests by digest and tag,
//! pulls with ranges, tag and catalog pagination, referrers, manifest errors, deletes, and
//! sha512. It takes a registry URL, so it runs against hoist and against the distribution
//! registry alike; [`KNOWN_DIFFERENCES`] lists, with a reason each, where distribution falls short.
//!
//! Every check uses its own repository under a fresh namespace, so checks are independent
//! and a run leaves earlier runs' data alone.

use std::time::Duration;

use hoist_image::{Algorithm, Digest};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// The checks, in the order they run.
pub const CHECKS: &[&str] = &[
    "ping",
    "push-blob-post-put",
    "push-blob-post-only",
    "push-blob-patch-stream",
    "push-blob-patch-chunked",
    "push-blob-chunk-out-of-order",
    "push-blob-upload-status",
    "push-blob-post-cancel",
    "push-blob-digest-mismatch",
    "mount",
    "mount-anonymous",
    "mount-missing-blob",
    "push-manifest-by-digest",
    "push-manifest-by-tag",
    "push-manifest-tag-query",
    "push-index",
    "head-pull-blob",
    "pull-blob-range",
    "head-pull-manifest",
    "pull-escaped-digest",
    "manifest-unknown",
    "tag-list-pagination",
    "empty-tag-list",
    "catalog-pagination",
    "referrers",
    "referrers-artifact-type-filter",
    "referrers-empty",
    "manifest-invalid-json",
    "manifest-blob-unknown",
    "manifest-digest-mismatch",
    "manifest-too-large",
    "index-child-unknown",
    "delete-tag",
    "delete-manifest",
    "delete-blob",
    "sha512-blob",
    "sha512-manifest",
    "invalid-name",
    "invalid-digest",
];

/// Checks the distribution registry (Debian's `docker-registry`, 2.8) fails, with the reason.
/// The conformance test asserts each of these really fails there, so the list stays honest.
pub const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "push-blob-post-only",
        "distribution 2.8 ignores ?digest= on POST and opens a session (202): a monolithic push costs two requests there",
    ),
    (
        "push-blob-chunk-out-of-order",
        "distribution 2.8 accepts a PATCH whose Content-Range does not start at the bytes received (202, not 416)",
    ),
    (
        "push-manifest-tag-query",
        "`?tag=` on manifest PUT is from the spec's main branch (after v1.1); distribution 2.8 ignores it (no tags, no OCI-Tag)",
    ),
    (
        "tag-list-pagination",
        "distribution 2.8 lists tags in filesystem order, not the lexical order the spec asks for",
    ),
    (
        "referrers",
        "the referrers API is OCI v1.1; distribution 2.8 predates it (no OCI-Subject, 404 on /referrers/)",
    ),
    (
        "referrers-artifact-type-filter",
        "no referrers API in distribution 2.8",
    ),
    ("referrers-empty", "no referrers API in distribution 2.8"),
    (
        "manifest-too-large",
        "distribution 2.8 answers an oversized manifest with 400 MANIFEST_INVALID, not 413",
    ),
    (
        "delete-tag",
        "distribution 2.8 cannot DELETE a manifest by tag (it parses the tag as a digest: 400 DIGEST_INVALID); v1.1 allows it",
    ),
    (
        "sha512-manifest",
        "distribution 2.8 computes manifest digests with sha256 only (400 DIGEST_INVALID for a sha512 reference)",
    ),
    (
        "invalid-name",
        "distribution 2.8's router does not match an invalid name: a bare 404 page, no NAME_INVALID envelope",
    ),
];

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// What a client accepts for manifests (distribution answers 404 to a GET without it).
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// One check's outcome.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The check's name (one of [`CHECKS`]).
    pub name: &'static str,
    /// `Err(reason)` when it failed.
    pub result: Result<(), String>,
}

/// Run every check against the registry at `url` (`http://host:port`), optionally with
/// basic-auth credentials.
pub async fn run(url: &str, credentials: Option<(&str, &str)>) -> Vec<Outcome> {
    let ns = format!(
        "conformance/r{}",
        &Digest::sha256(
            format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes()
        )
        .hex()[..10]
    );
    let ctx = Ctx {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client"),
        base: url.trim_end_matches('/').to_string(),
        ns,
        creds: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
    };
    let mut out = Vec::new();
    for &name in CHECKS {
        let result = run_one(&ctx, name).await;
        out.push(Outcome { name, result });
    }
    out
}

/// A failed check: the reason.
type Check = Result<(), String>;

async fn run_one(c: &Ctx, name: &'static str) -> Check {
    let repo = format!("{}/{name}", c.ns);
    let r = repo.as_str();
    match name {
        "ping" => ping(c).await,
        "push-blob-post-put" => push_post_put(c, r).await,
        "push-blob-post-only" => push_post_only(c, r).await,
        "push-blob-patch-stream" => push_patch_stream(c, r).await,
        "push-blob-patch-chunked" => push_patch_chunked(c, r).await,
        "push-blob-chunk-out-of-order" => chunk_out_of_order(c, r).await,
        "push-blob-upload-status" => upload_status(c, r).await,
        "push-blob-post-cancel" => post_cancel(c, r).await,
        "push-blob-digest-mismatch" => digest_mismatch(c, r).await,
        "mount" => mount(c, r).await,
        "mount-anonymous" => mount_anonymous(c, r).await,
        "mount-missing-blob" => mount_missing(c, r).await,
        "push-manifest-by-digest" => manifest_by_digest(c, r).await,
        "push-manifest-by-tag" => manifest_by_tag(c, r).await,
        "push-manifest-tag-query" => manifest_tag_query(c, r).await,
        "push-index" => push_index(c, r).await,
        "head-pull-blob" => head_pull_blob(c, r).await,
        "pull-blob-range" => pull_blob_range(c, r).await,
        "head-pull-manifest" => head_pull_manifest(c, r).await,
        "pull-escaped-digest" => pull_escaped_digest(c, r).await,
        "manifest-unknown" => manifest_unknown(c, r).await,
        "tag-list-pagination" => tag_list(c, r).await,
        "empty-tag-list" => empty_tag_list(c, r).await,
        "catalog-pagination" => catalog(c, r).await,
        "referrers" => referrers(c, r, false).await,
        "referrers-artifact-type-filter" => referrers(c, r, true).await,
        "referrers-empty" => referrers_empty(c, r).await,
        "manifest-invalid-json" => manifest_invalid_json(c, r).await,
        "manifest-blob-unknown" => manifest_blob_unknown(c, r).await,
        "manifest-digest-mismatch" => manifest_digest_mismatch(c, r).await,
        "manifest-too-large" => manifest_too_large(c, r).await,
        "index-child-unknown" => index_child_unknown(c, r).await,
        "delete-tag" => delete_tag(c, r).await,
        "delete-manifest" => delete_manifest(c, r).await,
        "delete-blob" => delete_blob(c, r).await,
        "sha512-blob" => sha512_blob(c, r).await,
        "sha512-manifest" => sha512_manifest(c, r).await,
        "invalid-name" => invalid_name(c).await,
        "invalid-digest" => invalid_digest(c, r).await,
        other => Err(format!("no such check {other}")),
    }
}

struct Ctx {
    client: reqwest::Client,
    base: String,
    ns: String,
    creds: Option<(String, String)>,
}

/// Deterministic incompressible-looking bytes.
fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn seed_of(s: &str) -> u64 {
    let d = Digest::sha256(s.as_bytes());
    u64::from_str_radix(&d.hex()[..16], 16).unwrap_or(1)
}

impl Ctx {
    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let b = self.client.request(method, self.url(path));
        match &self.creds {
            Some((u, p)) => b.basic_auth(u, Some(p)),
            None => b,
        }
    }

    async fn send(&self, b: reqwest::RequestBuilder) -> Result<Response, String> {
        b.send().await.map_err(|e| format!("request failed: {e}"))
    }

    /// POST to start an upload; returns the Location.
    async fn start_upload(&self, repo: &str) -> Result<String, String> {
        let r = self
            .send(self.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/")))
            .await?;
        let r = expect(r, StatusCode::ACCEPTED, "POST upload").await?;
        location(&r)
    }

    /// Push a blob with POST + PUT; returns its sha256 digest.
    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Result<Digest, String> {
        let d = Digest::sha256(bytes);
        let loc = self.start_upload(repo).await?;
        let r = self
            .send(
                self.req(Method::PUT, &with_query(&loc, &format!("digest={d}")))
                    .header("content-type", "application/octet-stream")
                    .body(bytes.to_vec()),
            )
            .await?;
        expect(r, StatusCode::CREATED, "PUT upload").await?;
        Ok(d)
    }

    /// Push a config and `n` small layers; returns the image manifest (JSON bytes).
    async fn push_image(&self, repo: &str, n: usize, salt: &str) -> Result<Vec<u8>, String> {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"salt":"{salt}"}}"#
        );
        let cd = self.push_blob(repo, config.as_bytes()).await?;
        let mut layers = Vec::new();
        for i in 0..n {
            let bytes = data(seed_of(&format!("{repo}{salt}{i}")), 4096 + i * 100);
            let d = self.push_blob(repo, &bytes).await?;
            layers.push(
                json!({"mediaType": OCI_LAYER, "digest": d.to_string(), "size": bytes.len()}),
            );
        }
        let m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
            "layers": layers,
        });
        Ok(serde_json::to_vec(&m).expect("json"))
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<Response, String> {
        self.send(
            self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
                .header("content-type", media_type)
                .body(body.to_vec()),
        )
        .await
    }

    async fn head(&self, path: &str) -> Result<Response, String> {
        self.send(self.req(Method::HEAD, path).header("accept", ACCEPT))
            .await
    }

    async fn get(&self, path: &str) -> Result<Response, String> {
        self.send(self.req(Method::GET, path).header("accept", ACCEPT))
            .await
    }
}

fn with_query(loc: &str, q: &str) -> String {
    if loc.contains('?') {
        format!("{loc}&{q}")
    } else {
        format!("{loc}?{q}")
    }
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn location(r: &Response) -> Result<String, String> {
    header(r, "location").ok_or_else(|| "no Location header".to_string())
}

/// Check the status; on a mismatch the error names the step and quotes the body.
async fn expect(r: Response, want: StatusCode, step: &str) -> Result<Response, String> {
    if r.status() == want {
        return Ok(r);
    }
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    Err(format!(
        "{step}: status {status}, want {want}: {}",
        body.chars().take(300).collect::<String>()
    ))
}

/// Check the status and the spec error code in the body.
async fn expect_error(r: Response, want: StatusCode, code: &str, step: &str) -> Result<(), String> {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    if status != want {
        return Err(format!(
            "{step}: status {status}, want {want}: {}",
            body.chars().take(300).collect::<String>()
        ));
    }
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| format!("{step}: error body is not JSON ({e}): {body}"))?;
    let codes: Vec<&str> = v["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["code"].as_str()).collect())
        .unwrap_or_default();
    if !codes.contains(&code) {
        return Err(format!("{step}: error codes {codes:?}, want {code}"));
    }
    Ok(())
}

async fn json_body(r: Response) -> Result<Value, String> {
    let bytes = r.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("body is not JSON: {e}"))
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Check {
    if cond { Ok(()) } else { Err(what()) }
}

async fn ping(c: &Ctx) -> Check {
    let r = c.get("/v2/").await?;
    let r = expect(r, StatusCode::OK, "GET /v2/").await?;
    ensure(
        header(&r, "docker-distribution-api-version").as_deref() == Some("registry/2.0"),
        || "no Docker-Distribution-API-Version: registry/2.0".into(),
    )
}

async fn blob_is(c: &Ctx, repo: &str, d: &Digest, bytes: &[u8]) -> Check {
    let r = c.get(&format!("/v2/{repo}/blobs/{d}")).await?;
    let r = expect(r, StatusCode::OK, "GET blob").await?;
    let got = r.bytes().await.map_err(|e| e.to_string())?;
    ensure(got.as_ref() == bytes, || {
        format!(
            "GET blob: {} bytes differ from the {} pushed",
            got.len(),
            bytes.len()
        )
    })
}

async fn push_post_put(c: &Ctx, repo: &str) -> Check {
    let bytes = data(1, 100_000);
    let d = Digest::sha256(&bytes);
    let loc = c.start_upload(repo).await?;
    let r = c
        .send(
            c.req(Method::PUT, &with_query(&loc, &format!("digest={d}")))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await?;
    let r = expect(r, StatusCode::CREATED, "PUT upload").await?;
    location(&r)?;
    ensure(
        header(&r, "docker-content-digest").as_deref() == Some(&d.to_string()),
        || "PUT upload: Docker-Content-Digest missing or wrong".into(),
    )?;
    blob_is(c, repo, &d, &bytes).await
}

async fn push_post_only(c: &Ctx, repo: &str) -> Check {
    let bytes = data(2, 50_000);
    let d = Digest::sha256(&bytes);
    let r = c
        .send(
            c.req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes.clone()),
        )
        .await?;
    let r = expect(r, StatusCode::CREATED, "POST ?digest=").await?;
    location(&r)?;
    blob_is(c, repo, &d, &bytes).await
}

async fn push_patch_stream(c: &Ctx, repo: &str) -> Check {
    let bytes = data(3, 300_000);
    let d = Digest::sha256(&bytes);
    let loc = c.start_upload(repo).await?;
    let r = c
        .send(
            c.req(Method::PATCH, &loc)
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await?;
    let r = expect(r, StatusCode::ACCEPTED, "PATCH").await?;
    let want_range = format!("0-{}", bytes.len() - 1);
    ensure(header(&r, "range").as_deref() == Some(&want_range), || {
        format!("PATCH: Range {:?}, want {want_range}", header(&r, "range"))
    })?;
    let loc = location(&r)?;
    let r = c
        .send(c.req(Method::PUT, &with_query(&loc, &format!("digest={d}"))))
        .await?;
    expect(r, StatusCode::CREATED, "PUT").await?;
    blob_is(c, repo, &d, &bytes).await
}

async fn push_patch_chunked(c: &Ctx, repo: &str) -> Check {
    let bytes = data(4, 250_000);
    let d = Digest::sha256(&bytes);
    let mut loc = c.start_upload(repo).await?;
    let chunks = [
        &bytes[..100_000],
        &bytes[100_000..200_000],
        &bytes[200_000..],
    ];
    let mut off = 0usize;
    for (i, ch) in chunks.iter().enumerate() {
        let r = c
            .send(
                c.req(Method::PATCH, &loc)
                    .header("content-type", "application/octet-stream")
                    .header("content-range", format!("{off}-{}", off + ch.len() - 1))
                    .header("content-length", ch.len())
                    .body(ch.to_vec()),
            )
            .await?;
        let r = expect(r, StatusCode::ACCEPTED, &format!("PATCH chunk {i}")).await?;
        off += ch.len();
        let want = format!("0-{}", off - 1);
        ensure(header(&r, "range").as_deref() == Some(&want), || {
            format!(
                "PATCH chunk {i}: Range {:?}, want {want}",
                header(&r, "range")
            )
        })?;
        loc = location(&r)?;
    }
    let r = c
        .send(c.req(Method::PUT, &with_query(&loc, &format!("digest={d}"))))
        .await?;
    expect(r, StatusCode::CREATED, "PUT").await?;
    blob_is(c, repo, &d, &bytes).await
}

async fn chunk_out_of_order(c: &Ctx, repo: &str) -> Check {
    let bytes = data(5, 20_000);
    let loc = c.start_upload(repo).await?;
    let r = c
        .send(
            c.req(Method::PATCH, &loc)
                .header("content-type", "application/octet-stream")
                .header("content-range", "0-9999")
                .header("content-length", 10_000)
                .body(bytes[..10_000].to_vec()),
        )
        .await?;
    let r = expect(r, StatusCode::ACCEPTED, "PATCH chunk 0").await?;
    let loc = location(&r)?;
    // Skip ahead: 416.
    let r = c
        .send(
            c.req(Method::PATCH, &loc)
                .header("content-type", "application/octet-stream")
                .header("content-range", "15000-19999")
                .header("content-length", 5_000)
                .body(bytes[15_000..].to_vec()),
        )
        .await?;
    expect(r, StatusCode::RANGE_NOT_SATISFIABLE, "PATCH out of order").await?;
    // The session is still usable: status says 10000 bytes.
    let r = c.get(&loc).await?;
    let r = expect(r, StatusCode::NO_CONTENT, "GET upload status").await?;
    ensure(header(&r, "range").as_deref() == Some("0-9999"), || {
        format!(
            "status after 416: Range {:?}, want 0-9999",
            header(&r, "range")
        )
    })
}

async fn upload_status(c: &Ctx, repo: &str) -> Check {
    let bytes = data(6, 12_345);
    let d = Digest::sha256(&bytes);
    let loc = c.start_upload(repo).await?;
    let r = c
        .send(
            c.req(Method::PATCH, &loc)
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await?;
    let r = expect(r, StatusCode::ACCEPTED, "PATCH").await?;
    let loc = location(&r)?;
    let r = c.get(&loc).await?;
    let r = expect(r, StatusCode::NO_CONTENT, "GET upload status").await?;
    ensure(header(&r, "range").as_deref() == Some("0-12344"), || {
        format!(
            "GET upload status: Range {:?}, want 0-12344",
            header(&r, "range")
        )
    })?;
    location(&r)?;
    let r = c
        .send(c.req(Method::PUT, &with_query(&loc, &format!("digest={d}"))))
        .await?;
    expect(r, StatusCode::CREATED, "PUT").await?;
    Ok(())
}

async fn post_cancel(c: &Ctx, repo: &str) -> Check {
    let loc = c.start_upload(repo).await?;
    let r = c.send(c.req(Method::DELETE, &loc)).await?;
    expect(r, StatusCode::NO_CONTENT, "DELETE upload").await?;
    let r = c.get(&loc).await?;
    expect_error(
        r,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
        "GET cancelled upload",
    )
    .await
}

async fn digest_mismatch(c: &Ctx, repo: &str) -> Check {
    let bytes = data(7, 10_000);
    let wrong = Digest::sha256(b"something else");
    let loc = c.start_upload(repo).await?;
    let r = c
        .send(
            c.req(Method::PUT, &with_query(&loc, &format!("digest={wrong}")))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
        "PUT wrong digest",
    )
    .await?;
    for d in [wrong, Digest::sha256(&bytes)] {
        let r = c.head(&format!("/v2/{repo}/blobs/{d}")).await?;
        expect(r, StatusCode::NOT_FOUND, "HEAD after a mismatch").await?;
    }
    Ok(())
}

async fn mount(c: &Ctx, repo: &str) -> Check {
    let from = format!("{repo}/from");
    let bytes = data(8, 20_000);
    let d = c.push_blob(&from, &bytes).await?;
    let r = c
        .send(c.req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}"),
        ))
        .await?;
    let r = expect(r, StatusCode::CREATED, "POST ?mount=&from=").await?;
    ensure(
        location(&r)?.contains(&format!("/v2/{repo}/blobs/{d}")),
        || "mount: Location is not the blob's URL".into(),
    )?;
    blob_is(c, repo, &d, &bytes).await
}

async fn mount_anonymous(c: &Ctx, repo: &str) -> Check {
    let from = format!("{repo}/from");
    let bytes = data(9, 20_000);
    let d = c.push_blob(&from, &bytes).await?;
    let r = c
        .send(c.req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?mount={d}"),
        ))
        .await?;
    // The spec lets a registry without automatic content discovery answer 202 (an upload).
    match r.status() {
        StatusCode::CREATED => blob_is(c, repo, &d, &bytes).await,
        StatusCode::ACCEPTED => {
            let loc = location(&r)?;
            let r = c.send(c.req(Method::DELETE, &loc)).await?;
            expect(r, StatusCode::NO_CONTENT, "cancel the upload").await?;
            Ok(())
        }
        s => Err(format!(
            "POST ?mount= without from: status {s}, want 201 or 202"
        )),
    }
}

async fn mount_missing(c: &Ctx, repo: &str) -> Check {
    let from = format!("{repo}/from");
    c.push_blob(&from, b"something").await?;
    let d = Digest::sha256(b"never pushed anywhere");
    let r = c
        .send(c.req(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?mount={d}&from={from}"),
        ))
        .await?;
    let r = expect(r, StatusCode::ACCEPTED, "POST ?mount= of a missing blob").await?;
    let loc = location(&r)?;
    // It is a usable upload session.
    let bytes = b"never pushed anywhere";
    let r = c
        .send(
            c.req(Method::PUT, &with_query(&loc, &format!("digest={d}")))
                .header("content-type", "application/octet-stream")
                .body(bytes.to_vec()),
        )
        .await?;
    expect(
        r,
        StatusCode::CREATED,
        "PUT to the session a failed mount opened",
    )
    .await?;
    Ok(())
}

async fn manifest_by_digest(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 2, "by-digest").await?;
    let d = Digest::sha256(&m);
    let r = c
        .put_manifest(repo, &d.to_string(), OCI_MANIFEST, &m)
        .await?;
    let r = expect(r, StatusCode::CREATED, "PUT manifest by digest").await?;
    location(&r)?;
    ensure(
        header(&r, "docker-content-digest").as_deref() == Some(&d.to_string()),
        || "PUT manifest: Docker-Content-Digest missing or wrong".into(),
    )?;
    let r = c.get(&format!("/v2/{repo}/manifests/{d}")).await?;
    let r = expect(r, StatusCode::OK, "GET manifest").await?;
    let got = r.bytes().await.map_err(|e| e.to_string())?;
    ensure(got.as_ref() == m.as_slice(), || {
        "GET manifest: bytes differ".into()
    })
}

async fn manifest_by_tag(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "by-tag").await?;
    let d = Digest::sha256(&m);
    let r = c.put_manifest(repo, "v1", OCI_MANIFEST, &m).await?;
    let r = expect(r, StatusCode::CREATED, "PUT manifest by tag").await?;
    ensure(
        header(&r, "docker-content-digest").as_deref() == Some(&d.to_string()),
        || "PUT manifest by tag: Docker-Content-Digest missing or wrong".into(),
    )?;
    let r = c.get(&format!("/v2/{repo}/manifests/v1")).await?;
    let r = expect(r, StatusCode::OK, "GET manifest by tag").await?;
    let got = r.bytes().await.map_err(|e| e.to_string())?;
    ensure(got.as_ref() == m.as_slice(), || {
        "GET by tag: bytes differ".into()
    })
}

async fn manifest_tag_query(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "tag-query").await?;
    let d = Digest::sha256(&m);
    let r = c
        .put_manifest(repo, &format!("{d}?tag=t1&tag=t2"), OCI_MANIFEST, &m)
        .await?;
    let r = expect(r, StatusCode::CREATED, "PUT manifest ?tag=t1&tag=t2").await?;
    // One OCI-Tag header per tag applied (read as HTTP allows repeated headers: also as one
    // comma-separated value; a tag has no comma).
    let mut applied: Vec<String> = r
        .headers()
        .get_all("oci-tag")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .collect();
    applied.sort();
    ensure(applied == ["t1", "t2"], || {
        format!("PUT manifest ?tag=t1&tag=t2: OCI-Tag headers {applied:?}, want t1 and t2")
    })?;
    for t in ["t1", "t2"] {
        let r = c.head(&format!("/v2/{repo}/manifests/{t}")).await?;
        let r = expect(r, StatusCode::OK, &format!("HEAD tag {t}")).await?;
        ensure(
            header(&r, "docker-content-digest").as_deref() == Some(&d.to_string()),
            || format!("tag {t} points elsewhere"),
        )?;
    }
    Ok(())
}

async fn push_index(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "index-child").await?;
    let md = Digest::sha256(&m);
    let r = c
        .put_manifest(repo, &md.to_string(), OCI_MANIFEST, &m)
        .await?;
    expect(r, StatusCode::CREATED, "PUT child").await?;
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": md.to_string(), "size": m.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    }))
    .expect("json");
    let r = c.put_manifest(repo, "multi", OCI_INDEX, &idx).await?;
    expect(r, StatusCode::CREATED, "PUT index").await?;
    let r = c.get(&format!("/v2/{repo}/manifests/multi")).await?;
    let r = expect(r, StatusCode::OK, "GET index").await?;
    ensure(
        header(&r, "content-type").as_deref() == Some(OCI_INDEX),
        || format!("GET index: Content-Type {:?}", header(&r, "content-type")),
    )
}

async fn head_pull_blob(c: &Ctx, repo: &str) -> Check {
    let bytes = data(10, 70_000);
    let d = c.push_blob(repo, &bytes).await?;
    let r = c.head(&format!("/v2/{repo}/blobs/{d}")).await?;
    let r = expect(r, StatusCode::OK, "HEAD blob").await?;
    ensure(
        header(&r, "content-length").as_deref() == Some(&bytes.len().to_string()),
        || {
            format!(
                "HEAD blob: Content-Length {:?}",
                header(&r, "content-length")
            )
        },
    )?;
    ensure(
        header(&r, "docker-content-digest").as_deref() == Some(&d.to_string()),
        || "HEAD blob: Docker-Content-Digest missing or wrong".into(),
    )?;
    blob_is(c, repo, &d, &bytes).await?;
    let unknown = Digest::sha256(b"unknown blob");
    let r = c.head(&format!("/v2/{repo}/blobs/{unknown}")).await?;
    expect(r, StatusCode::NOT_FOUND, "HEAD unknown blob").await?;
    let r = c.get(&format!("/v2/{repo}/blobs/{unknown}")).await?;
    expect_error(r, StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "GET unknown blob").await
}

async fn pull_blob_range(c: &Ctx, repo: &str) -> Check {
    let bytes = data(11, 10_000);
    let d = c.push_blob(repo, &bytes).await?;
    for (range, start, end) in [("bytes=100-199", 100, 199), ("bytes=9990-", 9990, 9999)] {
        let r = c
            .send(
                c.req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
                    .header("range", range),
            )
            .await?;
        let r = expect(r, StatusCode::PARTIAL_CONTENT, &format!("GET {range}")).await?;
        let want_cr = format!("bytes {start}-{end}/{}", bytes.len());
        ensure(
            header(&r, "content-range").as_deref() == Some(&want_cr),
            || {
                format!(
                    "GET {range}: Content-Range {:?}, want {want_cr}",
                    header(&r, "content-range")
                )
            },
        )?;
        let got = r.bytes().await.map_err(|e| e.to_string())?;
        ensure(got.as_ref() == &bytes[start..=end], || {
            format!("GET {range}: wrong bytes")
        })?;
    }
    let r = c
        .send(
            c.req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
                .header("range", "bytes=20000-"),
        )
        .await?;
    expect(
        r,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "GET a range past the end",
    )
    .await?;
    Ok(())
}

async fn head_pull_manifest(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "head-pull").await?;
    let d = Digest::sha256(&m);
    let r = c.put_manifest(repo, "latest", OCI_MANIFEST, &m).await?;
    expect(r, StatusCode::CREATED, "PUT manifest").await?;
    for reference in ["latest".to_string(), d.to_string()] {
        let r = c.head(&format!("/v2/{repo}/manifests/{reference}")).await?;
        let r = expect(r, StatusCode::OK, &format!("HEAD manifest {reference}")).await?;
        ensure(
            header(&r, "docker-content-digest").as_deref() == Some(&d.to_string()),
            || format!("HEAD {reference}: Docker-Content-Digest missing or wrong"),
        )?;
        ensure(
            header(&r, "content-length").as_deref() == Some(&m.len().to_string()),
            || {
                format!(
                    "HEAD {reference}: Content-Length {:?}",
                    header(&r, "content-length")
                )
            },
        )?;
        let r = c
            .send(
                c.req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
                    .header("accept", OCI_MANIFEST),
            )
            .await?;
        let r = expect(r, StatusCode::OK, &format!("GET manifest {reference}")).await?;
        ensure(
            header(&r, "content-type").as_deref() == Some(OCI_MANIFEST),
            || {
                format!(
                    "GET {reference}: Content-Type {:?}",
                    header(&r, "content-type")
                )
            },
        )?;
        let got = r.bytes().await.map_err(|e| e.to_string())?;
        ensure(got.as_ref() == m.as_slice(), || {
            format!("GET {reference}: bytes differ")
        })?;
    }
    Ok(())
}

/// A digest reference with its `:` percent-encoded (`sha256%3A<hex>`) names the same
/// manifest and blob: the path segment is decoded.
async fn pull_escaped_digest(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "escaped").await?;
    let d = Digest::sha256(&m);
    let r = c.put_manifest(repo, "latest", OCI_MANIFEST, &m).await?;
    expect(r, StatusCode::CREATED, "PUT manifest").await?;
    let escaped = format!("{}%3A{}", d.algorithm().as_str(), d.hex());
    let r = c.get(&format!("/v2/{repo}/manifests/{escaped}")).await?;
    let r = expect(r, StatusCode::OK, &format!("GET manifests/{escaped}")).await?;
    ensure(
        header(&r, "docker-content-digest").as_deref() == Some(&d.to_string()),
        || format!("GET manifests/{escaped}: Docker-Content-Digest missing or wrong"),
    )?;
    let got = r.bytes().await.map_err(|e| e.to_string())?;
    ensure(got.as_ref() == m.as_slice(), || {
        format!("GET manifests/{escaped}: bytes differ")
    })?;
    let bytes = data(21, 3000);
    let bd = c.push_blob(repo, &bytes).await?;
    let escaped = format!("{}%3A{}", bd.algorithm().as_str(), bd.hex());
    let r = c.get(&format!("/v2/{repo}/blobs/{escaped}")).await?;
    let r = expect(r, StatusCode::OK, &format!("GET blobs/{escaped}")).await?;
    let got = r.bytes().await.map_err(|e| e.to_string())?;
    ensure(got.as_ref() == bytes.as_slice(), || {
        format!("GET blobs/{escaped}: bytes differ")
    })
}

async fn manifest_unknown(c: &Ctx, repo: &str) -> Check {
    c.push_blob(repo, b"so the repository exists").await?;
    let r = c.get(&format!("/v2/{repo}/manifests/nosuchtag")).await?;
    expect_error(
        r,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        "GET unknown tag",
    )
    .await?;
    let d = Digest::sha256(b"no such manifest");
    let r = c.get(&format!("/v2/{repo}/manifests/{d}")).await?;
    expect_error(
        r,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        "GET unknown digest",
    )
    .await
}

async fn tags_page(c: &Ctx, path: &str) -> Result<(Vec<String>, Option<String>), String> {
    let r = c.get(path).await?;
    let r = expect(r, StatusCode::OK, &format!("GET {path}")).await?;
    let link = header(&r, "link");
    let v: Value = json_body(r).await.map_err(|e| format!("GET {path}: {e}"))?;
    let tags = v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((tags, link))
}

async fn tag_list(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "tags").await?;
    let want = ["a1", "b2", "c3", "d4", "e5"];
    for t in want.iter().rev() {
        let r = c.put_manifest(repo, t, OCI_MANIFEST, &m).await?;
        expect(r, StatusCode::CREATED, &format!("PUT tag {t}")).await?;
    }
    let (all, _) = tags_page(c, &format!("/v2/{repo}/tags/list")).await?;
    ensure(all == want, || {
        format!("tags {all:?}, want {want:?} (sorted)")
    })?;
    let (p1, link) = tags_page(c, &format!("/v2/{repo}/tags/list?n=2")).await?;
    ensure(p1 == ["a1", "b2"], || format!("n=2: {p1:?}"))?;
    let link = link.ok_or("n=2: no Link header")?;
    let next = link
        .split(['<', '>'])
        .nth(1)
        .ok_or_else(|| format!("Link {link:?} has no <url>"))?
        .to_string();
    let (p2, _) = tags_page(c, &next).await?;
    ensure(p2 == ["c3", "d4"], || format!("next page {p2:?}"))?;
    let (p3, link3) = tags_page(c, &format!("/v2/{repo}/tags/list?n=2&last=d4")).await?;
    ensure(p3 == ["e5"], || format!("last=d4: {p3:?}"))?;
    ensure(link3.is_none(), || "last page has a Link header".into())
}

async fn empty_tag_list(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "empty-tags").await?;
    let d = Digest::sha256(&m);
    let r = c
        .put_manifest(repo, &d.to_string(), OCI_MANIFEST, &m)
        .await?;
    expect(r, StatusCode::CREATED, "PUT manifest by digest").await?;
    let r = c.get(&format!("/v2/{repo}/tags/list")).await?;
    // A repository without tags: an empty list, or (distribution) NAME_UNKNOWN.
    match r.status() {
        StatusCode::OK => {
            let v: Value = json_body(r).await?;
            let empty = v["tags"].is_null() || v["tags"].as_array().is_some_and(|a| a.is_empty());
            ensure(empty, || format!("tags {:?}, want none", v["tags"]))
        }
        StatusCode::NOT_FOUND => Ok(()),
        s => Err(format!("GET tags of an untagged repository: status {s}")),
    }
}

async fn catalog(c: &Ctx, repo: &str) -> Check {
    for sub in ["x", "y", "z"] {
        c.push_blob(&format!("{repo}/{sub}"), sub.as_bytes())
            .await?;
    }
    let r = c.get("/v2/_catalog").await?;
    let r = expect(r, StatusCode::OK, "GET _catalog").await?;
    let v: Value = json_body(r).await?;
    let repos: Vec<String> = v["repositories"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for sub in ["x", "y", "z"] {
        let name = format!("{repo}/{sub}");
        ensure(repos.contains(&name), || format!("_catalog lacks {name}"))?;
    }
    let first = format!("{repo}/x");
    let r = c.get(&format!("/v2/_catalog?n=1&last={first}")).await?;
    let r = expect(r, StatusCode::OK, "GET _catalog?n=1&last=").await?;
    let link = header(&r, "link");
    let v: Value = json_body(r).await?;
    let page: Vec<&str> = v["repositories"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_default();
    ensure(page == [format!("{repo}/y")], || {
        format!("n=1&last={first}: {page:?}")
    })?;
    ensure(link.is_some(), || "n=1: no Link header".into())
}

async fn push_artifact(
    c: &Ctx,
    repo: &str,
    subject: &Digest,
    subject_size: usize,
    artifact_type: &str,
) -> Result<(Digest, Response), String> {
    let empty = c.push_blob(repo, b"{}").await?;
    let layer = data(seed_of(artifact_type), 1000);
    let ld = c.push_blob(repo, &layer).await?;
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": ld.to_string(), "size": layer.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": subject_size},
        "annotations": {"org.example.kind": artifact_type},
    }))
    .expect("json");
    let d = Digest::sha256(&m);
    let r = c
        .put_manifest(repo, &d.to_string(), OCI_MANIFEST, &m)
        .await?;
    Ok((d, r))
}

async fn referrers(c: &Ctx, repo: &str, filter: bool) -> Check {
    let m = c.push_image(repo, 1, "subject").await?;
    let sd = Digest::sha256(&m);
    let r = c
        .put_manifest(repo, &sd.to_string(), OCI_MANIFEST, &m)
        .await?;
    expect(r, StatusCode::CREATED, "PUT subject").await?;
    let mut pushed = Vec::new();
    for at in [
        "application/vnd.example.sbom",
        "application/vnd.example.signature",
    ] {
        let (d, r) = push_artifact(c, repo, &sd, m.len(), at).await?;
        let r = expect(r, StatusCode::CREATED, "PUT artifact with subject").await?;
        ensure(
            header(&r, "oci-subject").as_deref() == Some(&sd.to_string()),
            || {
                format!(
                    "PUT artifact: OCI-Subject {:?}, want {sd}",
                    header(&r, "oci-subject")
                )
            },
        )?;
        pushed.push((d, at));
    }
    let path = if filter {
        format!("/v2/{repo}/referrers/{sd}?artifactType=application/vnd.example.sbom")
    } else {
        format!("/v2/{repo}/referrers/{sd}")
    };
    let r = c.get(&path).await?;
    let r = expect(r, StatusCode::OK, "GET referrers").await?;
    ensure(
        header(&r, "content-type").as_deref() == Some(OCI_INDEX),
        || format!("referrers: Content-Type {:?}", header(&r, "content-type")),
    )?;
    if filter {
        ensure(
            header(&r, "oci-filters-applied").as_deref() == Some("artifactType"),
            || "referrers: no OCI-Filters-Applied: artifactType".into(),
        )?;
    }
    let v: Value = json_body(r).await?;
    let got: Vec<(String, String)> = v["manifests"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| {
                    (
                        d["digest"].as_str().unwrap_or("").to_string(),
                        d["artifactType"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut want: Vec<(String, String)> = pushed
        .iter()
        .filter(|(_, at)| !filter || *at == "application/vnd.example.sbom")
        .map(|(d, at)| (d.to_string(), at.to_string()))
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    ensure(got_sorted == want, || {
        format!("referrers {got:?}, want {want:?}")
    })
}

async fn referrers_empty(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "lonely").await?;
    let sd = Digest::sha256(&m);
    let r = c
        .put_manifest(repo, &sd.to_string(), OCI_MANIFEST, &m)
        .await?;
    expect(r, StatusCode::CREATED, "PUT manifest").await?;
    let r = c.get(&format!("/v2/{repo}/referrers/{sd}")).await?;
    let r = expect(r, StatusCode::OK, "GET referrers").await?;
    let v: Value = json_body(r).await?;
    ensure(
        v["schemaVersion"] == 2 && v["manifests"].as_array().is_some_and(|a| a.is_empty()),
        || format!("referrers of a manifest without any: {v}"),
    )
}

async fn manifest_invalid_json(c: &Ctx, repo: &str) -> Check {
    let r = c
        .put_manifest(repo, "bad", OCI_MANIFEST, b"{not json")
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
        "PUT invalid JSON",
    )
    .await?;
    let r = c.get(&format!("/v2/{repo}/manifests/bad")).await?;
    expect(r, StatusCode::NOT_FOUND, "GET after a rejected PUT").await?;
    Ok(())
}

async fn manifest_blob_unknown(c: &Ctx, repo: &str) -> Check {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let cd = c.push_blob(repo, config).await?;
    let missing = Digest::sha256(b"a layer never pushed");
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": missing.to_string(), "size": 20}],
    }))
    .expect("json");
    let r = c.put_manifest(repo, "missing", OCI_MANIFEST, &m).await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "MANIFEST_BLOB_UNKNOWN",
        "PUT with a missing layer",
    )
    .await
}

async fn manifest_digest_mismatch(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "mismatch").await?;
    let wrong = Digest::sha256(b"not the manifest");
    let r = c
        .put_manifest(repo, &wrong.to_string(), OCI_MANIFEST, &m)
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
        "PUT by a wrong digest",
    )
    .await?;
    let r = c.head(&format!("/v2/{repo}/manifests/{wrong}")).await?;
    expect(r, StatusCode::NOT_FOUND, "HEAD after a rejected PUT").await?;
    Ok(())
}

async fn manifest_too_large(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "large").await?;
    let mut v: Value = serde_json::from_slice(&m).expect("json");
    v["annotations"] = json!({"padding": "x".repeat(4 << 20)});
    let big = serde_json::to_vec(&v).expect("json");
    let r = c.put_manifest(repo, "big", OCI_MANIFEST, &big).await?;
    expect(
        r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PUT a manifest over 4 MiB",
    )
    .await?;
    Ok(())
}

async fn index_child_unknown(c: &Ctx, repo: &str) -> Check {
    let missing = Digest::sha256(b"no such child manifest");
    let idx = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing.to_string(), "size": 100}],
    }))
    .expect("json");
    let r = c.put_manifest(repo, "idx", OCI_INDEX, &idx).await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "MANIFEST_BLOB_UNKNOWN",
        "PUT index with a missing child",
    )
    .await
}

async fn delete_tag(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "del-tag").await?;
    let d = Digest::sha256(&m);
    for t in ["keep", "drop"] {
        let r = c.put_manifest(repo, t, OCI_MANIFEST, &m).await?;
        expect(r, StatusCode::CREATED, &format!("PUT tag {t}")).await?;
    }
    let r = c
        .send(c.req(Method::DELETE, &format!("/v2/{repo}/manifests/drop")))
        .await?;
    expect(r, StatusCode::ACCEPTED, "DELETE tag").await?;
    let r = c.get(&format!("/v2/{repo}/manifests/drop")).await?;
    expect(r, StatusCode::NOT_FOUND, "GET deleted tag").await?;
    let r = c.head(&format!("/v2/{repo}/manifests/{d}")).await?;
    expect(
        r,
        StatusCode::OK,
        "HEAD the manifest by digest after its tag went",
    )
    .await?;
    let r = c.head(&format!("/v2/{repo}/manifests/keep")).await?;
    expect(r, StatusCode::OK, "HEAD the other tag").await?;
    Ok(())
}

async fn delete_manifest(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "del-manifest").await?;
    let d = Digest::sha256(&m);
    let r = c.put_manifest(repo, "gone", OCI_MANIFEST, &m).await?;
    expect(r, StatusCode::CREATED, "PUT manifest").await?;
    let r = c
        .send(c.req(Method::DELETE, &format!("/v2/{repo}/manifests/{d}")))
        .await?;
    expect(r, StatusCode::ACCEPTED, "DELETE manifest").await?;
    let r = c.get(&format!("/v2/{repo}/manifests/{d}")).await?;
    expect(r, StatusCode::NOT_FOUND, "GET deleted manifest").await?;
    let r = c.get(&format!("/v2/{repo}/manifests/gone")).await?;
    expect(
        r,
        StatusCode::NOT_FOUND,
        "GET the tag of a deleted manifest",
    )
    .await?;
    let r = c
        .send(c.req(Method::DELETE, &format!("/v2/{repo}/manifests/{d}")))
        .await?;
    expect_error(
        r,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        "DELETE it again",
    )
    .await
}

async fn delete_blob(c: &Ctx, repo: &str) -> Check {
    let bytes = data(12, 5000);
    let d = c.push_blob(repo, &bytes).await?;
    let r = c
        .send(c.req(Method::DELETE, &format!("/v2/{repo}/blobs/{d}")))
        .await?;
    expect(r, StatusCode::ACCEPTED, "DELETE blob").await?;
    let r = c.head(&format!("/v2/{repo}/blobs/{d}")).await?;
    expect(r, StatusCode::NOT_FOUND, "HEAD deleted blob").await?;
    Ok(())
}

async fn sha512_blob(c: &Ctx, repo: &str) -> Check {
    let bytes = data(13, 30_000);
    let d = Digest::of(Algorithm::Sha512, &bytes);
    let loc = c.start_upload(repo).await?;
    let r = c
        .send(
            c.req(Method::PUT, &with_query(&loc, &format!("digest={d}")))
                .header("content-type", "application/octet-stream")
                .body(bytes.clone()),
        )
        .await?;
    expect(r, StatusCode::CREATED, "PUT sha512 blob").await?;
    let r = c.head(&format!("/v2/{repo}/blobs/{d}")).await?;
    expect(r, StatusCode::OK, "HEAD sha512 blob").await?;
    blob_is(c, repo, &d, &bytes).await
}

async fn sha512_manifest(c: &Ctx, repo: &str) -> Check {
    let m = c.push_image(repo, 1, "sha512").await?;
    let d = Digest::of(Algorithm::Sha512, &m);
    let r = c
        .put_manifest(repo, &d.to_string(), OCI_MANIFEST, &m)
        .await?;
    let r = expect(r, StatusCode::CREATED, "PUT manifest by sha512").await?;
    ensure(
        header(&r, "docker-content-digest").as_deref() == Some(&d.to_string()),
        || "PUT by sha512: Docker-Content-Digest missing or wrong".into(),
    )?;
    let r = c.get(&format!("/v2/{repo}/manifests/{d}")).await?;
    let r = expect(r, StatusCode::OK, "GET manifest by sha512").await?;
    let got = r.bytes().await.map_err(|e| e.to_string())?;
    ensure(got.as_ref() == m.as_slice(), || {
        "GET by sha512: bytes differ".into()
    })
}

async fn invalid_name(c: &Ctx) -> Check {
    let r = c
        .send(c.req(Method::POST, "/v2/Bad..Name/blobs/uploads/"))
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "NAME_INVALID",
        "POST to an invalid name",
    )
    .await
}

async fn invalid_digest(c: &Ctx, repo: &str) -> Check {
    c.push_blob(repo, b"so the repository exists").await?;
    let loc = c.start_upload(repo).await?;
    let r = c
        .send(
            c.req(Method::PUT, &with_query(&loc, "digest=sha256:nothex"))
                .header("content-type", "application/octet-stream")
                .body(b"abc".to_vec()),
        )
        .await?;
    expect_error(
        r,
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
        "PUT ?digest=sha256:nothex",
    )
    .await
}
