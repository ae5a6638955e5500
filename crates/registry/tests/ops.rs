//! What an operator relies on, through the router without a socket, on the file system and
//! the object-store backends: health and readiness probes, read-only mode, Prometheus
//! metrics and the web page (the access log has a file of
//! its own, `access_log.rs`: tracing's per-thread subscribers need a process to themselves).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use hoist_image::Digest;
use hoist_registry::{Htpasswd, Registry};
use tower::ServiceExt;

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_string()
    }
}

async fn call_on(
    router: axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = router
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

async fn call(
    reg: &Registry,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    call_on(reg.router(), method, uri, headers, body).await
}

async fn push_blob(reg: &Registry, repo: &str, bytes: &[u8], auth: &[(&str, &str)]) -> Digest {
    let d = Digest::sha256(bytes);
    let r = call(
        reg,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        auth,
        bytes.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    d
}

async fn put_manifest(
    reg: &Registry,
    repo: &str,
    reference: &str,
    m: &serde_json::Value,
    auth: &[(&str, &str)],
) -> Digest {
    let raw = serde_json::to_vec(m).unwrap();
    let mt = m["mediaType"].as_str().unwrap().to_string();
    let mut headers = vec![("content-type", mt.as_str())];
    headers.extend_from_slice(auth);
    let r = call(
        reg,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &headers,
        raw.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    Digest::sha256(&raw)
}

/// An image pushed to `repo:tag`: a config with env, entrypoint and labels, and `layers`
/// layers. Returns (manifest digest, layer digests).
async fn push_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
    arch: &str,
    layers: usize,
    auth: &[(&str, &str)],
) -> (Digest, Vec<Digest>) {
    let mut descs = Vec::new();
    let mut digests = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let bytes = format!("layer {i} of {repo}:{tag} {arch}").into_bytes();
        let d = push_blob(reg, repo, &bytes, auth).await;
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": bytes.len()}));
        diff_ids.push(d.to_string());
        digests.push(d);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux", "created": "2025-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/usr/bin", "GREETING=hello world"], "Entrypoint": ["/bin/app", "--serve"],
                   "Labels": {"org.opencontainers.image.title": "<b>demo</b>"}, "ExposedPorts": {"8080/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = push_blob(reg, repo, &config, auth).await;
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": descs,
    });
    (put_manifest(reg, repo, tag, &m, auth).await, digests)
}

/// The storage backends every operator feature runs on: the file system, and the object
/// store (in memory, as the object backend's own tests run it). `open` makes a registry
/// over the same storage each time.
enum Backend {
    Fs(tempfile::TempDir),
    Object(std::sync::Arc<object_store::memory::InMemory>),
}

impl Backend {
    fn all() -> [Backend; 2] {
        [
            Backend::Fs(tempfile::tempdir().unwrap()),
            Backend::Object(std::sync::Arc::new(object_store::memory::InMemory::new())),
        ]
    }

    fn open(&self) -> Registry {
        match self {
            Backend::Fs(dir) => Registry::open(dir.path()).unwrap(),
            Backend::Object(store) => {
                Registry::with_storage(hoist_registry::ObjectStorage::new(store.clone(), "reg"))
            }
        }
    }
}

/// The object backend answers the probes too (the file system's failure cases are below).
#[tokio::test]
async fn health_and_readiness_on_the_object_backend() {
    let reg = Backend::Object(std::sync::Arc::new(object_store::memory::InMemory::new())).open();
    assert_eq!(
        call(&reg, "GET", "/healthz", &[], vec![]).await.status,
        StatusCode::OK
    );
    let r = call(&reg, "GET", "/readyz", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn health_and_readiness_answer_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let reg = Registry::open(dir.path())
        .unwrap()
        .with_auth(Htpasswd::parse(&format!("alice:{hash}")).unwrap());
    let r = call(&reg, "GET", "/healthz", &[], vec![]).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ok\n"));
    let r = call(&reg, "GET", "/readyz", &[], vec![]).await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ready\n"));
    // The API itself still wants credentials.
    assert_eq!(
        call(&reg, "GET", "/v2/", &[], vec![]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Storage that cannot take a write: not ready, and the answer names no server path.
    std::fs::remove_dir_all(dir.path().join("tmp")).unwrap();
    let r = call(&reg, "GET", "/readyz", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !r.text().contains(dir.path().to_str().unwrap()),
        "{}",
        r.text()
    );
    assert_eq!(
        call(&reg, "GET", "/healthz", &[], vec![]).await.status,
        StatusCode::OK
    );
}

/// The default probe (any backend): an upload session written, its size read back,
/// cancelled; nothing stays behind.
#[tokio::test]
async fn default_probe_leaves_nothing() {
    use hoist_registry::{ByteStream, Expired, ManifestPut, RepoName, Result, StoredManifest};
    struct Plain(hoist_registry::FsStorage);
    // Every method but `probe` forwards, so the trait's default probe runs.
    #[async_trait::async_trait]
    impl hoist_registry::Storage for Plain {
        async fn blob_size(&self, r: &RepoName, d: &Digest) -> Result<Option<u64>> {
            self.0.blob_size(r, d).await
        }
        async fn blob_read(
            &self,
            r: &RepoName,
            d: &Digest,
            range: Option<(u64, u64)>,
        ) -> Result<Option<hoist_registry::BlobRead>> {
            self.0.blob_read(r, d, range).await
        }
        async fn blob_mount(&self, f: &RepoName, t: &RepoName, d: &Digest) -> Result<bool> {
            self.0.blob_mount(f, t, d).await
        }
        async fn blob_delete(&self, r: &RepoName, d: &Digest) -> Result<()> {
            self.0.blob_delete(r, d).await
        }
        async fn upload_start(&self, r: &RepoName) -> Result<String> {
            self.0.upload_start(r).await
        }
        async fn upload_size(&self, r: &RepoName, id: &str) -> Result<u64> {
            self.0.upload_size(r, id).await
        }
        async fn upload_append(
            &self,
            r: &RepoName,
            id: &str,
            s: Option<u64>,
            b: ByteStream,
        ) -> Result<u64> {
            self.0.upload_append(r, id, s, b).await
        }
        async fn upload_commit(&self, r: &RepoName, id: &str, d: &Digest) -> Result<u64> {
            self.0.upload_commit(r, id, d).await
        }
        async fn upload_cancel(&self, r: &RepoName, id: &str) -> Result<()> {
            self.0.upload_cancel(r, id).await
        }
        async fn uploads_expire(&self, idle: std::time::Duration) -> Result<Expired> {
            self.0.uploads_expire(idle).await
        }
        async fn manifest_put(&self, r: &RepoName, p: ManifestPut) -> Result<()> {
            self.0.manifest_put(r, p).await
        }
        async fn tag_resolve(&self, r: &RepoName, t: &str) -> Result<Option<Digest>> {
            self.0.tag_resolve(r, t).await
        }
        async fn manifest_get(&self, r: &RepoName, d: &Digest) -> Result<Option<StoredManifest>> {
            self.0.manifest_get(r, d).await
        }
        async fn manifest_exists(&self, r: &RepoName, d: &Digest) -> Result<bool> {
            self.0.manifest_exists(r, d).await
        }
        async fn manifest_delete(&self, r: &RepoName, d: &Digest) -> Result<()> {
            self.0.manifest_delete(r, d).await
        }
        async fn tag_delete(&self, r: &RepoName, t: &str) -> Result<()> {
            self.0.tag_delete(r, t).await
        }
        async fn tags(&self, r: &RepoName) -> Result<Option<Vec<String>>> {
            self.0.tags(r).await
        }
        async fn repositories(&self) -> Result<Vec<String>> {
            self.0.repositories().await
        }
        async fn referrers(
            &self,
            r: &RepoName,
            s: &Digest,
        ) -> Result<Vec<hoist_image::Descriptor>> {
            self.0.referrers(r, s).await
        }
        async fn blobs(&self) -> Result<Vec<hoist_registry::BlobEntry>> {
            self.0.blobs().await
        }
        async fn manifests(&self, r: &RepoName) -> Result<Vec<hoist_registry::ManifestEntry>> {
            self.0.manifests(r).await
        }
        async fn blob_touch(&self, d: &Digest) -> Result<bool> {
            self.0.blob_touch(d).await
        }
        async fn manifest_touch(&self, r: &RepoName, d: &Digest) -> Result<bool> {
            self.0.manifest_touch(r, d).await
        }
        async fn blob_remove(&self, d: &Digest, c: std::time::SystemTime) -> Result<Option<u64>> {
            self.0.blob_remove(d, c).await
        }
        async fn manifest_remove(
            &self,
            r: &RepoName,
            d: &Digest,
            c: std::time::SystemTime,
        ) -> Result<bool> {
            self.0.manifest_remove(r, d, c).await
        }
    }
    use hoist_registry::Storage as _;
    let dir = tempfile::tempdir().unwrap();
    let s = Plain(hoist_registry::FsStorage::open(dir.path()).unwrap());
    s.probe().await.unwrap();
    s.probe().await.unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads"))
            .unwrap()
            .count(),
        0
    );
    assert!(s.repositories().await.unwrap().is_empty());
    // A storage whose uploads fail is not ready.
    std::fs::remove_dir_all(dir.path().join("uploads")).unwrap();
    std::fs::write(dir.path().join("uploads"), b"not a directory").unwrap();
    assert!(s.probe().await.is_err());
}

#[tokio::test]
async fn read_only_refuses_every_write_and_serves_reads() {
    for b in Backend::all() {
        let rw = b.open();
        let (md, layers) = push_image(&rw, "app", "v1", "amd64", 1, &[]).await;
        let ro = b.open().read_only(true);
        let d = Digest::sha256(b"new");
        for (method, uri) in [
            ("POST", "/v2/app/blobs/uploads/".to_string()),
            ("POST", format!("/v2/app/blobs/uploads/?digest={d}")),
            (
                "PATCH",
                "/v2/app/blobs/uploads/0123456789abcdef0123456789abcdef".to_string(),
            ),
            ("PUT", "/v2/app/manifests/v2".to_string()),
            ("DELETE", format!("/v2/app/manifests/{md}")),
            ("DELETE", "/v2/app/manifests/v1".to_string()),
            ("DELETE", format!("/v2/app/blobs/{}", layers[0])),
        ] {
            let r = call(&ro, method, &uri, &[], b"new".to_vec()).await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert_eq!(r.code(), "UNSUPPORTED", "{method} {uri}");
            assert!(r.text().contains("read-only"), "{}", r.text());
        }
        assert_eq!(
            call(&ro, "GET", "/v2/app/manifests/v1", &[], vec![])
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            call(
                &ro,
                "GET",
                &format!("/v2/app/blobs/{}", layers[0]),
                &[],
                vec![]
            )
            .await
            .status,
            StatusCode::OK
        );
        assert_eq!(
            call(&ro, "GET", "/v2/app/tags/list", &[], vec![])
                .await
                .status,
            StatusCode::OK
        );
        // Nothing changed: the same registry writable again still has exactly its tag.
        let r = call(&rw, "GET", "/v2/app/tags/list", &[], vec![]).await;
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["tags"],
            serde_json::json!(["v1"])
        );
        assert_eq!(
            call(&rw, "HEAD", &format!("/v2/app/blobs/{d}"), &[], vec![])
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
}

fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_bytes_and_latency() {
    for b in Backend::all() {
        let reg = b.open();
        let (_, layers) = push_image(&reg, "app", "v1", "amd64", 2, &[]).await;
        for _ in 0..3 {
            let r = call(&reg, "GET", "/v2/app/manifests/v1", &[], vec![]).await;
            assert_eq!(r.status, StatusCode::OK);
        }
        let r = call(
            &reg,
            "GET",
            &format!("/v2/app/blobs/{}", layers[0]),
            &[],
            vec![],
        )
        .await;
        let layer_len = r.body.len() as f64;
        call(&reg, "GET", "/v2/app/manifests/nope", &[], vec![]).await;
        let r = call(&reg, "GET", "/metrics", &[], vec![]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        let m = r.text();
        let manifests = "/v2/{name}/manifests/{reference}";
        assert_eq!(
            metric(
                &m,
                &format!(
                    "hoist_http_requests_total{{method=\"GET\",route=\"{manifests}\",status=\"200\"}}"
                )
            ),
            Some(3.0),
            "{m}"
        );
        assert_eq!(
            metric(
                &m,
                &format!(
                    "hoist_http_requests_total{{method=\"GET\",route=\"{manifests}\",status=\"404\"}}"
                )
            ),
            Some(1.0),
            "{m}"
        );
        assert_eq!(
            metric(
                &m,
                "hoist_http_requests_total{method=\"POST\",route=\"/v2/{name}/blobs/uploads/\",status=\"201\"}"
            ),
            Some(3.0),
            "{m}"
        );
        assert_eq!(
            metric(
                &m,
                "hoist_http_sent_bytes_total{route=\"/v2/{name}/blobs/{digest}\"}"
            ),
            Some(layer_len),
            "{m}"
        );
        assert!(
            metric(
                &m,
                "hoist_http_received_bytes_total{route=\"/v2/{name}/blobs/uploads/\"}"
            )
            .unwrap()
                > 100.0,
            "{m}"
        );
        assert_eq!(
            metric(
                &m,
                &format!(
                    "hoist_http_request_duration_seconds_count{{method=\"GET\",route=\"{manifests}\"}}"
                )
            ),
            Some(4.0),
            "{m}"
        );
        assert!(m.contains(&format!("hoist_http_request_duration_seconds_bucket{{method=\"GET\",route=\"{manifests}\",le=\"0.005\"}}")), "{m}");
        assert_eq!(metric(&m, "hoist_uploads_in_progress"), Some(0.0), "{m}");
        assert!(!m.contains("app"), "no repository names in labels: {m}");

        // With a separate metrics address the main router does not serve them.
        let quiet = b.open().metrics_endpoint(false);
        assert_eq!(
            call(&quiet, "GET", "/metrics", &[], vec![]).await.status,
            StatusCode::NOT_FOUND
        );
        let r = call_on(quiet.metrics_router(), "GET", "/metrics", &[], vec![]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.text()
                .contains("# TYPE hoist_http_requests_total counter"),
            "{}",
            r.text()
        );
    }
}

#[tokio::test]
async fn metrics_on_the_main_address_need_credentials() {
    for b in Backend::all() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let reg = b
            .open()
            .with_auth(Htpasswd::parse(&format!("alice:{hash}")).unwrap());
        assert_eq!(
            call(&reg, "GET", "/metrics", &[], vec![]).await.status,
            StatusCode::UNAUTHORIZED
        );
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:pw")
        );
        assert_eq!(
            call(
                &reg,
                "GET",
                "/metrics",
                &[("authorization", &basic)],
                vec![]
            )
            .await
            .status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn web_pages_show_repositories_tags_layers_and_referrers() {
    for b in Backend::all() {
        let reg = b.open();
        let (amd, layers) = push_image(&reg, "team/app", "v1", "amd64", 3, &[]).await;
        let (arm, _) = push_image(&reg, "team/app", "arm", "arm64", 1, &[]).await;
        let size_of = |d: &Digest, n: usize| serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d.to_string(), "size": n});
        let amd_len = call(
            &reg,
            "GET",
            &format!("/v2/team/app/manifests/{amd}"),
            &[],
            vec![],
        )
        .await
        .body
        .len();
        let arm_len = call(
            &reg,
            "GET",
            &format!("/v2/team/app/manifests/{arm}"),
            &[],
            vec![],
        )
        .await
        .body
        .len();
        let mut a = size_of(&amd, amd_len);
        a["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
        let mut b = size_of(&arm, arm_len);
        b["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64"});
        let index = put_manifest(&reg, "team/app", "multi", &serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [a, b]}), &[]).await;
        // A signature-like referrer of v1 with a hostile annotation.
        let empty = push_blob(&reg, "team/app", b"{}", &[]).await;
        let sig = put_manifest(&reg, "team/app", "sig", &serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [], "subject": size_of(&amd, amd_len),
        "annotations": {"note": "<script>alert(1)</script>"}}), &[]).await;
        push_image(&reg, "other", "latest", "amd64", 1, &[]).await;

        let home = call(&reg, "GET", "/", &[("host", "reg.example:5000")], vec![]).await;
        assert_eq!(home.status, StatusCode::OK);
        assert!(
            home.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            home.header("content-security-policy")
                .unwrap()
                .contains("default-src 'none'")
        );
        let h = home.text();
        assert!(
            h.contains("href=\"/ui/r/team/app\"") && h.contains("href=\"/ui/r/other\""),
            "{h}"
        );
        assert!(
            h.contains("<td class=\"num\">4</td>"),
            "team/app has 4 tags (v1, arm, multi, sig): {h}"
        );

        let repo = call(
            &reg,
            "GET",
            "/ui/r/team/app",
            &[("host", "reg.example:5000")],
            vec![],
        )
        .await;
        let t = repo.text();
        assert_eq!(repo.status, StatusCode::OK, "{t}");
        for want in [
            "v1",
            "arm",
            "multi",
            "linux/amd64",
            "linux/arm64",
            "reg.example:5000/team/app:v1",
            &amd.to_string()[..19],
        ] {
            assert!(t.contains(want), "{want} missing: {t}");
        }

        let page = call(&reg, "GET", &format!("/ui/r/team/app@{amd}"), &[], vec![]).await;
        let p = page.text();
        assert_eq!(page.status, StatusCode::OK, "{p}");
        for l in &layers {
            assert!(p.contains(&l.to_string()), "layer {l} missing: {p}");
        }
        for want in [
            "GREETING=hello world",
            "/bin/app --serve",
            "8080/tcp",
            "&lt;b&gt;demo&lt;/b&gt;",
            &sig.to_string(),
            "application/vnd.example.signature",
        ] {
            assert!(p.contains(want), "{want} missing: {p}");
        }
        let by_tag = call(&reg, "GET", "/ui/r/team/app:v1", &[], vec![]).await;
        assert_eq!(by_tag.status, StatusCode::OK);
        assert!(by_tag.text().contains(&layers[2].to_string()));

        let ix = call(&reg, "GET", &format!("/ui/r/team/app@{index}"), &[], vec![])
            .await
            .text();
        assert!(
            ix.contains(&format!("href=\"/ui/r/team/app@{arm}\"")) && ix.contains("linux/arm64"),
            "{ix}"
        );
        let sp = call(&reg, "GET", &format!("/ui/r/team/app@{sig}"), &[], vec![])
            .await
            .text();
        assert!(
            sp.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !sp.contains("<script>alert"),
            "{sp}"
        );

        for (uri, status) in [
            ("/ui/r/nope", StatusCode::NOT_FOUND),
            ("/ui/r/team/app:nope", StatusCode::NOT_FOUND),
            ("/ui/r/team/app@sha256:zz", StatusCode::BAD_REQUEST),
            ("/ui/r/BAD", StatusCode::BAD_REQUEST),
            ("/ui/elsewhere", StatusCode::NOT_FOUND),
        ] {
            let r = call(&reg, "GET", uri, &[], vec![]).await;
            assert_eq!(r.status, status, "{uri}");
            assert!(
                r.header("content-type").unwrap().starts_with("text/html"),
                "{uri}"
            );
        }
    }
}

#[tokio::test]
async fn web_pages_need_the_api_credentials() {
    for b in Backend::all() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let reg = b
            .open()
            .with_auth(Htpasswd::parse(&format!("alice:{hash}")).unwrap());
        for uri in ["/", "/ui/", "/ui/r/app"] {
            let r = call(&reg, "GET", uri, &[], vec![]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(
                r.header("www-authenticate").unwrap().starts_with("Basic"),
                "{uri}"
            );
        }
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:pw")
        );
        let auth = [("authorization", basic.as_str())];
        push_image(&reg, "app", "v1", "amd64", 1, &auth).await;
        let r = call(&reg, "GET", "/ui/r/app", &auth, vec![]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text().contains("v1"));
    }
}

/// `hoist_uploads_in_progress` counts a request while it streams an upload body, and no
/// longer once it is answered.
#[tokio::test]
async fn an_upload_streaming_its_body_is_counted_in_progress() {
    for b in Backend::all() {
        let reg = b.open();
        let r = call(&reg, "POST", "/v2/app/blobs/uploads/", &[], vec![]).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let location = r.header("location").unwrap().to_string();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        }));
        let req = Request::builder()
            .method("PATCH")
            .uri(&location)
            .header("content-type", "application/octet-stream")
            .body(body)
            .unwrap();
        let patch = tokio::spawn(reg.router().oneshot(req));
        tx.send(Ok(bytes::Bytes::from_static(b"first bytes")))
            .await
            .unwrap();
        let in_progress = |reg: Registry| async move {
            let m = call(&reg, "GET", "/metrics", &[], vec![]).await.text();
            metric(&m, "hoist_uploads_in_progress")
        };
        let mut seen = None;
        for _ in 0..200 {
            seen = in_progress(reg.clone()).await;
            if seen == Some(1.0) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(seen, Some(1.0), "the streaming PATCH is not counted");
        drop(tx);
        let resp = patch.await.unwrap().unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(in_progress(reg.clone()).await, Some(0.0));
    }
}
