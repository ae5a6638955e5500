//! Router-level tests without a socket: tables of requests and the status/headers wanted,
//! bad input of every kind (spec errors, no panic, nothing stored), and restart behaviour.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hoist_image::{Algorithm, Digest};
use hoist_registry::Registry;
use tower::ServiceExt;

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        v["errors"][0]["code"].as_str().unwrap_or("").to_string()
    }
}

async fn call(
    reg: &Registry,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = reg
        .router()
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

async fn push_blob(reg: &Registry, repo: &str, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let r = call(
        reg,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        bytes.to_vec(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    d
}

fn image_manifest(config: &Digest, config_len: usize, layers: &[(Digest, usize)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": config_len},
        "layers": layers.iter().map(|(d, n)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d.to_string(), "size": n})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Every regular file under the storage's visible areas (blobs/ and repos/), plus uploads.
/// The files the registry stores under `root` (its location-signing secret aside).
fn stored_files(root: &Path) -> Vec<String> {
    fn walk(p: &Path, root: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.retain(|f| f != "secret");
    out.sort();
    out
}

#[tokio::test]
async fn table_of_calls() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let blob = b"hello blob".to_vec();
    let bd = push_blob(&reg, "t/repo", &blob).await;
    let config = br#"{"os":"linux"}"#.to_vec();
    let cd = push_blob(&reg, "t/repo", &config).await;
    push_blob(&reg, "t/zz", b"a second repository").await;
    let m = image_manifest(&cd, config.len(), &[(bd.clone(), blob.len())]);
    let md = Digest::sha256(&m);
    let r = call(
        &reg,
        "PUT",
        "/v2/t/repo/manifests/latest",
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        m.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(md.to_string().as_str())
    );
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/t/repo/manifests/{md}").as_str())
    );

    struct Case {
        desc: &'static str,
        method: &'static str,
        uri: String,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        want_status: StatusCode,
        want_headers: Vec<(&'static str, String)>,
        want_code: &'static str,
    }
    let case = |desc, method, uri: String, want_status| Case {
        desc,
        method,
        uri,
        headers: vec![],
        body: vec![],
        want_status,
        want_headers: vec![],
        want_code: "",
    };
    let unknown = Digest::sha256(b"unknown");
    let cases = vec![
        Case {
            want_headers: vec![("docker-distribution-api-version", "registry/2.0".into())],
            ..case("ping", "GET", "/v2/".into(), StatusCode::OK)
        },
        Case {
            want_headers: vec![
                ("content-length", blob.len().to_string()),
                ("docker-content-digest", bd.to_string()),
            ],
            ..case(
                "head blob",
                "HEAD",
                format!("/v2/t/repo/blobs/{bd}"),
                StatusCode::OK,
            )
        },
        Case {
            headers: vec![("range", "bytes=6-".into())],
            want_headers: vec![("content-range", format!("bytes 6-9/{}", blob.len()))],
            ..case(
                "range",
                "GET",
                format!("/v2/t/repo/blobs/{bd}"),
                StatusCode::PARTIAL_CONTENT,
            )
        },
        Case {
            headers: vec![("range", "bytes=10-".into())],
            want_headers: vec![("content-range", "bytes */10".into())],
            ..case(
                "range past end",
                "GET",
                format!("/v2/t/repo/blobs/{bd}"),
                StatusCode::RANGE_NOT_SATISFIABLE,
            )
        },
        Case {
            headers: vec![("range", "bytes=zz".into())],
            ..case(
                "malformed range",
                "GET",
                format!("/v2/t/repo/blobs/{bd}"),
                StatusCode::RANGE_NOT_SATISFIABLE,
            )
        },
        Case {
            want_code: "BLOB_UNKNOWN",
            ..case(
                "blob of another repo",
                "GET",
                format!("/v2/t/other/blobs/{bd}"),
                StatusCode::NOT_FOUND,
            )
        },
        Case {
            want_code: "BLOB_UNKNOWN",
            ..case(
                "unknown blob",
                "GET",
                format!("/v2/t/repo/blobs/{unknown}"),
                StatusCode::NOT_FOUND,
            )
        },
        Case {
            want_headers: vec![
                (
                    "content-type",
                    "application/vnd.oci.image.manifest.v1+json".into(),
                ),
                ("docker-content-digest", md.to_string()),
                ("content-length", m.len().to_string()),
            ],
            ..case(
                "head manifest",
                "HEAD",
                "/v2/t/repo/manifests/latest".into(),
                StatusCode::OK,
            )
        },
        Case {
            want_code: "MANIFEST_UNKNOWN",
            ..case(
                "unknown tag",
                "GET",
                "/v2/t/repo/manifests/nope".into(),
                StatusCode::NOT_FOUND,
            )
        },
        Case {
            want_code: "NAME_UNKNOWN",
            ..case(
                "tags of unknown repo",
                "GET",
                "/v2/t/none/tags/list".into(),
                StatusCode::NOT_FOUND,
            )
        },
        Case {
            want_code: "NAME_INVALID",
            ..case(
                "upper-case name",
                "GET",
                "/v2/T/repo/tags/list".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_code: "NAME_INVALID",
            ..case(
                "dot-dot name",
                "GET",
                format!("/v2/t/../../etc/blobs/{bd}"),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_code: "NAME_INVALID",
            ..case(
                "encoded dot-dot",
                "POST",
                "/v2/t/%2e%2e/blobs/uploads/".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_code: "NAME_INVALID",
            ..case(
                "storage folder name",
                "POST",
                "/v2/t/_blobs/blobs/uploads/".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_code: "DIGEST_INVALID",
            ..case(
                "short digest",
                "GET",
                "/v2/t/repo/blobs/sha256:abc".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_code: "DIGEST_INVALID",
            ..case(
                "unknown algorithm",
                "GET",
                "/v2/t/repo/blobs/md5:d41d8cd98f00b204e9800998ecf8427e".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_code: "DIGEST_INVALID",
            ..case(
                "path in digest",
                "GET",
                "/v2/t/repo/blobs/sha256:..%2f..%2fetc".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_code: "BLOB_UPLOAD_UNKNOWN",
            ..case(
                "unknown upload",
                "GET",
                "/v2/t/repo/blobs/uploads/0123456789abcdef0123456789abcdef".into(),
                StatusCode::NOT_FOUND,
            )
        },
        Case {
            want_code: "BLOB_UPLOAD_UNKNOWN",
            ..case(
                "path trick upload id",
                "PATCH",
                "/v2/t/repo/blobs/uploads/..".into(),
                StatusCode::NOT_FOUND,
            )
        },
        Case {
            want_code: "UNSUPPORTED",
            ..case(
                "unknown endpoint",
                "GET",
                "/v2/t/repo/nothing/x".into(),
                StatusCode::NOT_FOUND,
            )
        },
        Case {
            want_code: "UNSUPPORTED",
            ..case(
                "wrong method",
                "PATCH",
                "/v2/t/repo/manifests/latest".into(),
                StatusCode::METHOD_NOT_ALLOWED,
            )
        },
        Case {
            want_code: "UNSUPPORTED",
            ..case(
                "bad n",
                "GET",
                "/v2/t/repo/tags/list?n=x".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_code: "MANIFEST_INVALID",
            ..case(
                "bad tag",
                "GET",
                "/v2/t/repo/manifests/-bad".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_headers: vec![(
                "link",
                "</v2/_catalog?n=1&last=t%2Frepo>; rel=\"next\"".into(),
            )],
            ..case(
                "catalog is paginated",
                "GET",
                "/v2/_catalog?n=1".into(),
                StatusCode::OK,
            )
        },
        Case {
            headers: vec![(
                "content-type",
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            body: b"[1,2".to_vec(),
            want_code: "MANIFEST_INVALID",
            ..case(
                "truncated JSON manifest",
                "PUT",
                "/v2/t/repo/manifests/x".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            headers: vec![(
                "content-type",
                "application/vnd.example.unknown+json".into(),
            )],
            body: br#"{"schemaVersion":2,"mediaType":"application/vnd.example.unknown+json"}"#
                .to_vec(),
            want_code: "MANIFEST_INVALID",
            ..case(
                "unknown manifest type",
                "PUT",
                "/v2/t/repo/manifests/x".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            headers: vec![(
                "content-type",
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            body: m.clone(),
            want_code: "DIGEST_INVALID",
            ..case(
                "manifest digest mismatch",
                "PUT",
                format!("/v2/t/repo/manifests/{unknown}"),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            headers: vec![(
                "content-type",
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            body: m.clone(),
            want_code: "MANIFEST_INVALID",
            ..case(
                "bad ?tag=",
                "PUT",
                "/v2/t/repo/manifests/ok?tag=../x".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            headers: vec![(
                "content-type",
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            body: m.clone(),
            want_code: "MANIFEST_BLOB_UNKNOWN",
            ..case(
                "manifest into a repo without its blobs",
                "PUT",
                "/v2/t/other/manifests/latest".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            body: vec![0u8; 16],
            want_code: "DIGEST_INVALID",
            ..case(
                "single POST, bad digest",
                "POST",
                "/v2/t/repo/blobs/uploads/?digest=sha256:1234".into(),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            body: vec![0u8; 16],
            want_code: "DIGEST_INVALID",
            ..case(
                "single POST, wrong digest",
                "POST",
                format!("/v2/t/repo/blobs/uploads/?digest={unknown}"),
                StatusCode::BAD_REQUEST,
            )
        },
        Case {
            want_code: "NAME_INVALID",
            ..case(
                "mount from an invalid name",
                "POST",
                format!("/v2/t/repo/blobs/uploads/?mount={bd}&from=../x"),
                StatusCode::BAD_REQUEST,
            )
        },
    ];
    let before = stored_files(dir.path());
    for c in &cases {
        let headers: Vec<(&str, &str)> = c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = call(&reg, c.method, &c.uri, &headers, c.body.clone()).await;
        assert_eq!(
            r.status,
            c.want_status,
            "{}: {}",
            c.desc,
            String::from_utf8_lossy(&r.body)
        );
        for (k, v) in &c.want_headers {
            assert_eq!(r.header(k), Some(v.as_str()), "{}: header {k}", c.desc);
        }
        if !c.want_code.is_empty() {
            assert_eq!(r.code(), c.want_code, "{}", c.desc);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert!(
                !v["errors"][0]["message"].as_str().unwrap_or("").is_empty(),
                "{}: message",
                c.desc
            );
        }
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0"),
            "{}",
            c.desc
        );
    }
    // None of the requests above stored anything (GETs, HEADs and rejected writes).
    assert_eq!(
        stored_files(dir.path()),
        before,
        "bad requests left files behind"
    );
}

#[tokio::test]
async fn oversized_manifest_is_413_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let before = stored_files(dir.path());
    let big = vec![b' '; hoist_image::MAX_MANIFEST_SIZE + 1];
    let r = call(
        &reg,
        "PUT",
        "/v2/a/manifests/big",
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        big,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "SIZE_INVALID");
    assert_eq!(stored_files(dir.path()), before);
}

#[tokio::test]
async fn digest_mismatch_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let r = call(&reg, "POST", "/v2/a/blobs/uploads/", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let loc = r.header("location").unwrap().to_string();
    let r = call(&reg, "PATCH", &loc, &[], vec![7u8; 100_000]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), Some("0-99999"));
    let wrong = Digest::sha256(b"x");
    let r = call(&reg, "PUT", &format!("{loc}?digest={wrong}"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "DIGEST_INVALID");
    let files = stored_files(dir.path());
    assert!(files.is_empty(), "left behind: {files:?}");
    // The session is gone too.
    let r = call(&reg, "GET", &loc, &[], vec![]).await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn blobs_are_stored_once_and_seen_per_repository() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let d = push_blob(&reg, "one", b"shared content").await;
    push_blob(&reg, "two", b"shared content").await;
    let blobs: Vec<_> = stored_files(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("blobs/"))
        .collect();
    assert_eq!(
        blobs,
        [format!("blobs/sha256/{}/{}", &d.hex()[..2], d.hex())]
    );
    // Deleting from one repository leaves the other's view alone.
    let r = call(&reg, "DELETE", &format!("/v2/one/blobs/{d}"), &[], vec![]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        call(&reg, "HEAD", &format!("/v2/one/blobs/{d}"), &[], vec![])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&reg, "HEAD", &format!("/v2/two/blobs/{d}"), &[], vec![])
            .await
            .status,
        StatusCode::OK
    );
    // A third repository sees it only after a mount.
    assert_eq!(
        call(&reg, "HEAD", &format!("/v2/three/blobs/{d}"), &[], vec![])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = call(
        &reg,
        "POST",
        &format!("/v2/three/blobs/uploads/?mount={d}&from=one"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "not visible in 'one' any more: an upload instead"
    );
    let r = call(
        &reg,
        "POST",
        &format!("/v2/three/blobs/uploads/?mount={d}&from=two"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        call(&reg, "HEAD", &format!("/v2/three/blobs/{d}"), &[], vec![])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn chunked_upload_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d = Digest::of(Algorithm::Sha512, &data);
    let loc = {
        let reg = Registry::open(dir.path()).unwrap();
        let r = call(&reg, "POST", "/v2/a/b/blobs/uploads/", &[], vec![]).await;
        let loc = r.header("location").unwrap().to_string();
        let r = call(
            &reg,
            "PATCH",
            &loc,
            &[("content-range", "0-99999")],
            data[..100_000].to_vec(),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        loc
    };
    // A new Registry on the same root: the hash state is gone, the data is not.
    let reg = Registry::open(dir.path()).unwrap();
    let r = call(&reg, "GET", &loc, &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), Some("0-99999"));
    let r = call(
        &reg,
        "PATCH",
        &loc,
        &[("content-range", "100000-199999")],
        data[100_000..200_000].to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = call(
        &reg,
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("content-range", "200000-299999")],
        data[200_000..].to_vec(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = call(&reg, "GET", &format!("/v2/a/b/blobs/{d}"), &[], vec![]).await;
    assert_eq!(r.body, data);
}

#[tokio::test]
async fn referrers_follow_manifest_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let cd = push_blob(&reg, "r", b"{}").await;
    let subject = image_manifest(&cd, 2, &[]);
    let sd = Digest::sha256(&subject);
    let ct = [("content-type", "application/vnd.oci.image.manifest.v1+json")];
    assert_eq!(
        call(
            &reg,
            "PUT",
            &format!("/v2/r/manifests/{sd}"),
            &ct,
            subject.clone()
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let art = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd.to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sd.to_string(), "size": subject.len()},
    }))
    .unwrap();
    let ad = Digest::sha256(&art);
    let r = call(&reg, "PUT", &format!("/v2/r/manifests/{ad}"), &ct, art).await;
    assert_eq!(r.header("oci-subject"), Some(sd.to_string().as_str()));
    let list = |b: &[u8]| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let r = call(&reg, "GET", &format!("/v2/r/referrers/{sd}"), &[], vec![]).await;
    assert_eq!(list(&r.body), [ad.to_string()]);
    let r = call(
        &reg,
        "GET",
        &format!("/v2/r/referrers/{sd}?artifactType=application/x-other"),
        &[],
        vec![],
    )
    .await;
    assert!(list(&r.body).is_empty());
    assert_eq!(r.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(
        call(
            &reg,
            "DELETE",
            &format!("/v2/r/manifests/{ad}"),
            &[],
            vec![]
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    let r = call(&reg, "GET", &format!("/v2/r/referrers/{sd}"), &[], vec![]).await;
    assert!(list(&r.body).is_empty());
}

#[tokio::test]
async fn basic_auth_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("htpasswd");
    std::fs::write(&pw, format!("alice:{}\n", bcrypt::hash("pw", 4).unwrap())).unwrap();
    let reg = Registry::open(dir.path().join("root"))
        .unwrap()
        .htpasswd(&pw)
        .unwrap();
    let r = call(&reg, "GET", "/v2/", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "UNAUTHORIZED");
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .starts_with("Basic realm=")
    );
    // "alice:pw" and "alice:nope"
    let r = call(
        &reg,
        "GET",
        "/v2/",
        &[("authorization", "Basic YWxpY2U6cHc=")],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &reg,
        "GET",
        "/v2/",
        &[("authorization", "Basic YWxpY2U6bm9wZQ==")],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn upload_locations_are_signed() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let r = call(&reg, "POST", "/v2/a/blobs/uploads/", &[], vec![]).await;
    let loc = r.header("location").unwrap().to_string();
    let token = loc.rsplit('/').next().unwrap().to_string();
    let (id, mac) = token.rsplit_once('.').expect("id.mac");
    assert_eq!(
        call(&reg, "GET", &loc, &[], vec![]).await.status,
        StatusCode::NO_CONTENT
    );
    let mut other_mac = mac.to_string();
    other_mac.replace_range(..1, if mac.starts_with('A') { "B" } else { "A" });
    for forged in [
        // The session of repository a, asked through repository b.
        format!("/v2/b/blobs/uploads/{token}"),
        // The bare id, as another registry would hand out.
        format!("/v2/a/blobs/uploads/{id}"),
        format!("/v2/a/blobs/uploads/{id}.{other_mac}"),
    ] {
        let r = call(&reg, "PATCH", &forged, &[], b"x".to_vec()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{forged}");
        assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN", "{forged}");
    }
    // The session took nothing from them.
    let r = call(&reg, "GET", &loc, &[], vec![]).await;
    assert_eq!(r.header("range"), Some("0-0"));
    // A registry reopened on the same root (a restart) keeps accepting it.
    let again = Registry::open(dir.path()).unwrap();
    assert_eq!(
        call(&again, "GET", &loc, &[], vec![]).await.status,
        StatusCode::NO_CONTENT
    );
}

/// The Basic scheme is matched in any case (RFC 7617: `basic`, `BASIC`), through the router.
#[tokio::test]
async fn basic_auth_scheme_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("htpasswd");
    std::fs::write(&pw, format!("alice:{}\n", bcrypt::hash("pw", 4).unwrap())).unwrap();
    let reg = Registry::open(dir.path().join("root"))
        .unwrap()
        .htpasswd(&pw)
        .unwrap();
    // "alice:pw" and "alice:nope"
    for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
        let good = format!("{scheme} YWxpY2U6cHc=");
        let r = call(&reg, "GET", "/v2/", &[("authorization", &good)], vec![]).await;
        assert_eq!(r.status, StatusCode::OK, "{good}");
        let bad = format!("{scheme} YWxpY2U6bm9wZQ==");
        let r = call(&reg, "GET", "/v2/", &[("authorization", &bad)], vec![]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(r.code(), "UNAUTHORIZED");
    }
    let r = call(
        &reg,
        "GET",
        "/v2/",
        &[("authorization", "Basicx YWxpY2U6cHc=")],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "another scheme");
}

/// A digest reference with its `:` percent-encoded (`sha256%3A...`, as some clients send
/// it) names the same manifest or blob: the path segment is decoded, as distribution does.
#[tokio::test]
async fn percent_encoded_digest_references_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let config = br#"{"os":"linux"}"#.to_vec();
    let cd = push_blob(&reg, "enc/app", &config).await;
    let m = image_manifest(&cd, config.len(), &[]);
    let md = Digest::sha256(&m);
    let escaped = |d: &Digest, colon: &str| format!("{}{colon}{}", d.algorithm().as_str(), d.hex());
    let oci = [("content-type", "application/vnd.oci.image.manifest.v1+json")];
    // PUT by an escaped digest: stored under the digest itself.
    let r = call(
        &reg,
        "PUT",
        &format!("/v2/enc/app/manifests/{}", escaped(&md, "%3A")),
        &oci,
        m.clone(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.header("location"),
        Some(format!("/v2/enc/app/manifests/{md}").as_str())
    );
    for colon in ["%3A", "%3a", ":"] {
        let r = call(
            &reg,
            "GET",
            &format!("/v2/enc/app/manifests/{}", escaped(&md, colon)),
            &[],
            vec![],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "manifests/sha256{colon}");
        assert_eq!(r.body, m);
        assert_eq!(
            r.header("docker-content-digest"),
            Some(md.to_string().as_str())
        );
        let r = call(
            &reg,
            "HEAD",
            &format!("/v2/enc/app/blobs/{}", escaped(&cd, colon)),
            &[],
            vec![],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "blobs/sha256{colon}");
        assert_eq!(
            r.header("docker-content-digest"),
            Some(cd.to_string().as_str())
        );
    }
    // A digest PUT whose escaped digest does not match the body is refused.
    let other = Digest::sha256(b"other");
    let r = call(
        &reg,
        "PUT",
        &format!("/v2/enc/app/manifests/{}", escaped(&other, "%3A")),
        &oci,
        m.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "DIGEST_INVALID");
    // A tag is not a digest however it is escaped: `%3A` in a tag is not a valid tag.
    let r = call(&reg, "GET", "/v2/enc/app/manifests/v1%3Ax", &[], vec![]).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

/// A chunk's `Content-Range` is checked against the body actually received: a body
/// shorter or longer than the range fails (400) and the session then holds only bytes
/// that were sent within the range, which its `Range` reports; a range whose length does
/// not fit in 64 bits, or that disagrees with `Content-Length`, is refused before anything
/// is written. The upload can go on from what the session reports.
#[tokio::test]
async fn chunk_content_range_end_is_checked_against_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 13 % 251) as u8).collect();
    let d = Digest::sha256(&data);
    let r = call(&reg, "POST", "/v2/cr/app/blobs/uploads/", &[], vec![]).await;
    let loc = r.header("location").unwrap().to_string();
    let status = |reg: &Registry, loc: &str| {
        let (reg, loc) = (reg.clone(), loc.to_string());
        async move {
            let r = call(&reg, "GET", &loc, &[], vec![]).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
            r.header("range").unwrap().to_string()
        }
    };

    // Announced 0-99, sent 50 bytes: refused; the 50 bytes sent are what the session holds.
    let r = call(
        &reg,
        "PATCH",
        &loc,
        &[("content-range", "0-99")],
        data[..50].to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "shorter body");
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    assert_eq!(status(&reg, &loc).await, "0-49");

    // Announced 50-59, sent 40 bytes: refused; only the ten announced bytes are kept.
    let r = call(
        &reg,
        "PATCH",
        &loc,
        &[("content-range", "50-59")],
        data[50..90].to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "longer body");
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    assert_eq!(status(&reg, &loc).await, "0-59");

    // Ranges refused before a byte is written.
    for (range, length) in [
        ("0-18446744073709551615", None),
        ("60-69", Some("5")),
        ("69-60", None),
        ("60-", None),
    ] {
        let mut headers = vec![("content-range", range)];
        if let Some(l) = length {
            headers.push(("content-length", l));
        }
        let body = data[60..70].to_vec();
        let r = call(&reg, "PATCH", &loc, &headers, body).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::RANGE_NOT_SATISFIABLE,
            "Content-Range {range}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.code(), "BLOB_UPLOAD_INVALID", "{range}");
        assert_eq!(status(&reg, &loc).await, "0-59", "{range}");
    }

    // The upload goes on from what the session reports, and commits to the right digest.
    let r = call(
        &reg,
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("content-range", "60-999")],
        data[60..].to_vec(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = call(&reg, "GET", &format!("/v2/cr/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!(r.body, data);
}

/// A cross-repository mount links a blob only from a repository that holds it: without
/// `from`, from a repository without the blob, or of a digest that is another
/// repository's manifest, the answer is a plain upload session (202, as the spec asks),
/// nothing is linked, and the session works. On both storage backends.
#[tokio::test]
async fn mount_without_a_source_holding_the_blob_opens_an_upload() {
    let dir = tempfile::tempdir().unwrap();
    mount_falls_back_to_an_upload(Registry::open(dir.path()).unwrap()).await;
    let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    let object = hoist_registry::ObjectStorage::new(store, "reg");
    mount_falls_back_to_an_upload(Registry::with_storage(object)).await;
}

async fn mount_falls_back_to_an_upload(reg: Registry) {
    let secret = b"a layer of another team".to_vec();
    let sd = push_blob(&reg, "team/secret", &secret).await;
    let config = br#"{"os":"linux"}"#.to_vec();
    let cd = push_blob(&reg, "team/secret", &config).await;
    let m = image_manifest(&cd, config.len(), &[(sd.clone(), secret.len())]);
    let md = Digest::sha256(&m);
    let r = call(
        &reg,
        "PUT",
        "/v2/team/secret/manifests/v1",
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        m.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    push_blob(&reg, "team/empty", b"something else").await;

    let attempts = [
        format!("mount={sd}"),
        format!("mount={md}"),
        format!("mount={sd}&from=team/empty"),
        format!("mount={md}&from=team/secret"),
        format!("mount={md}"),
        format!("mount={sd}&from=team/never-created"),
    ];
    for q in &attempts {
        let r = call(
            &reg,
            "POST",
            &format!("/v2/mine/app/blobs/uploads/?{q}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::ACCEPTED,
            "{q}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let loc = r.header("location").unwrap().to_string();
        assert!(loc.starts_with("/v2/mine/app/blobs/uploads/"), "{q}: {loc}");
        for d in [&sd, &md] {
            for what in ["blobs", "manifests"] {
                let r = call(
                    &reg,
                    "HEAD",
                    &format!("/v2/mine/app/{what}/{d}"),
                    &[],
                    vec![],
                )
                .await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{q}: {what}/{d} linked");
            }
        }
        let r = call(&reg, "DELETE", &loc, &[], vec![]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{q}: cancel");
    }
    // The session a failed mount opens is a normal upload: pushing the bytes works.
    let r = call(
        &reg,
        "POST",
        &format!("/v2/mine/app/blobs/uploads/?mount={sd}"),
        &[],
        vec![],
    )
    .await;
    let loc = r.header("location").unwrap().to_string();
    let r = call(
        &reg,
        "PUT",
        &format!("{loc}?digest={sd}"),
        &[],
        secret.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(
        &reg,
        "GET",
        &format!("/v2/mine/app/blobs/{sd}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.body, secret);
    // And a mount from a repository that holds the blob still links it.
    let r = call(
        &reg,
        "POST",
        &format!("/v2/mine/other/blobs/uploads/?mount={cd}&from=team/secret"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

/// A manifest PUT with `?tag=` answers one `OCI-Tag` header per tag it applied
/// (distribution-spec v1.1), and each tag resolves to the manifest; a PUT without `?tag=`
/// sends none; an invalid tag refuses the whole PUT and applies none.
#[tokio::test]
async fn manifest_put_with_tag_query_answers_oci_tag_per_tag() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    let config = br#"{"os":"linux"}"#.to_vec();
    let cd = push_blob(&reg, "tags/app", &config).await;
    let m = image_manifest(&cd, config.len(), &[]);
    let md = Digest::sha256(&m);
    let oci = [("content-type", "application/vnd.oci.image.manifest.v1+json")];
    let r = call(
        &reg,
        "PUT",
        &format!("/v2/tags/app/manifests/{md}?tag=v1&tag=v1.2&tag=latest&tag=v1"),
        &oci,
        m.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let got: Vec<&str> = r
        .headers
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(got, ["v1", "v1.2", "latest"]);
    for t in ["v1", "v1.2", "latest"] {
        let r = call(
            &reg,
            "HEAD",
            &format!("/v2/tags/app/manifests/{t}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{t}");
        assert_eq!(
            r.header("docker-content-digest"),
            Some(md.to_string().as_str())
        );
    }
    // Without ?tag=: no OCI-Tag.
    for reference in [md.to_string(), "plain".to_string()] {
        let r = call(
            &reg,
            "PUT",
            &format!("/v2/tags/app/manifests/{reference}"),
            &oci,
            m.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert!(r.header("oci-tag").is_none(), "{reference}");
    }
    // An invalid tag: nothing applied.
    let r = call(
        &reg,
        "PUT",
        &format!("/v2/tags/app/manifests/{md}?tag=good&tag=-bad"),
        &oci,
        m.clone(),
    )
    .await;
    assert_eq!(r.status.as_u16() / 100, 4, "{}", r.status);
    assert!(r.header("oci-tag").is_none());
    let r = call(&reg, "HEAD", "/v2/tags/app/manifests/good", &[], vec![]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
