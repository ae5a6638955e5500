//! Manifest operations: `HEAD` for a digest, `GET` verified against the digest asked for
//! and the one the registry reports, `PUT` checked against the digest the registry stored.

use hoist_image::{Digest, Manifest, MediaType};
use reqwest::Method;

use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::transport::{Body, Client, MANIFEST_ACCEPT, pull_scope, push_scope};

impl Client {
    /// `HEAD` a manifest by tag or digest: its digest, when it exists.
    pub async fn manifest_digest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<Digest>> {
        let url = self.url(repo, &format!("manifests/{reference}"))?;
        let r = self
            .send(
                repo,
                &pull_scope(repo),
                Method::HEAD,
                url,
                &[("accept", MANIFEST_ACCEPT.to_string())],
                Body::Empty,
            )
            .await?;
        match r.status() {
            200 => {
                let d = r
                    .header("docker-content-digest")
                    .and_then(|d| Digest::parse(d).ok());
                match d {
                    Some(d) => Ok(Some(d)),
                    None => Err(Error::invalid_response(
                        r.what(),
                        "no valid Docker-Content-Digest header",
                    )),
                }
            }
            404 => Ok(None),
            _ => Err(r.into_error().await),
        }
    }

    /// `GET` a manifest by tag or digest (verified when asked by digest).
    pub async fn get_manifest(&self, repo: &Repository, reference: &str) -> Result<Manifest> {
        let url = self.url(repo, &format!("manifests/{reference}"))?;
        let r = self
            .send(
                repo,
                &pull_scope(repo),
                Method::GET,
                url,
                &[("accept", MANIFEST_ACCEPT.to_string())],
                Body::Empty,
            )
            .await?
            .expect(&[200])
            .await?;
        let what = r.what().to_string();
        let ct = r
            .header("content-type")
            .map(|c| MediaType::from(c.split(';').next().unwrap_or(c).trim()));
        let header_digest = r.header("docker-content-digest").map(str::to_string);
        let raw = r.bytes(hoist_image::MAX_MANIFEST_SIZE).await?;
        let m = Manifest::from_raw(raw, ct.as_ref())?;
        if let Ok(want) = Digest::parse(reference)
            && &want != m.digest()
        {
            return Err(Error::new(ErrorKind::Image(hoist_image::Error::new(
                hoist_image::ErrorKind::DigestMismatch {
                    expected: want,
                    actual: m.digest().clone(),
                    bytes_read: m.raw().len() as u64,
                },
            ))));
        }
        if let Some(h) = header_digest
            && Digest::parse(&h).is_ok_and(|h| &h != m.digest())
        {
            return Err(Error::invalid_response(
                &what,
                "Docker-Content-Digest does not match the body",
            ));
        }
        Ok(m)
    }

    /// `PUT` a manifest under a tag or its digest; checks the digest the registry reports.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        m: &Manifest,
    ) -> Result<Digest> {
        Ok(self.put_manifest_answer(repo, reference, m).await?.0)
    }

    /// [`Client::put_manifest`], also telling whether the registry answered with
    /// `OCI-Subject` (it indexed the manifest's subject: it has the referrers API).
    pub(crate) async fn put_manifest_answer(
        &self,
        repo: &Repository,
        reference: &str,
        m: &Manifest,
    ) -> Result<(Digest, bool)> {
        let url = self.url(repo, &format!("manifests/{reference}"))?;
        let r = self
            .send(
                repo,
                &push_scope(repo),
                Method::PUT,
                url,
                &[("content-type", m.media_type().as_str().to_string())],
                Body::Bytes(m.raw().clone()),
            )
            .await?
            .expect(&[200, 201, 202])
            .await?;
        if let Some(d) = r.header("docker-content-digest")
            && let Ok(d) = Digest::parse(d)
            && &d != m.digest()
        {
            return Err(Error::invalid_response(
                r.what(),
                format!("registry stored digest {d}, expected {}", m.digest()),
            ));
        }
        Ok((m.digest().clone(), r.header("oci-subject").is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoist_testkit::stub::{Reply, Stub};

    const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

    fn manifest() -> Manifest {
        let raw = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":2}},"layers":[]}}"#,
            "4".repeat(64)
        );
        Manifest::from_raw(raw.into_bytes(), None).unwrap()
    }

    /// A registry holding `m` at tag `v1` and under its digest; `lie` makes it report
    /// another digest in `Docker-Content-Digest`.
    fn registry(m: &Manifest, lie: bool) -> Stub {
        let (raw, digest) = (m.raw().to_vec(), m.digest().to_string());
        let reported = if lie {
            format!("sha256:{}", "9".repeat(64))
        } else {
            digest.clone()
        };
        Stub::start(move |req| {
            let at = |r: &str| req.route() == format!("/v2/a/manifests/{r}");
            match req.method.as_str() {
                "GET" if req.route() == "/v2/" => Reply::status(200),
                "GET" | "HEAD" if at("v1") || at(&digest) => {
                    let r = Reply::status(200)
                        .header("content-type", OCI)
                        .header("docker-content-digest", reported.clone());
                    if req.method == "GET" {
                        r.body(raw.clone())
                    } else {
                        r.header("content-length", raw.len().to_string())
                    }
                }
                "PUT" => Reply::status(201).header("docker-content-digest", reported.clone()),
                _ => Reply::status(404).json(&serde_json::json!(
                    {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
                )),
            }
        })
    }

    #[tokio::test]
    async fn get_head_and_put() {
        let m = manifest();
        let stub = registry(&m, false);
        let c = Client::new().unwrap();
        let repo = Repository::new(stub.host(), "a").unwrap();
        assert_eq!(
            c.manifest_digest(&repo, "v1").await.unwrap().as_ref(),
            Some(m.digest())
        );
        assert_eq!(c.manifest_digest(&repo, "nope").await.unwrap(), None);
        let got = c.get_manifest(&repo, "v1").await.unwrap();
        assert_eq!(got.raw(), m.raw());
        let by_digest = c
            .get_manifest(&repo, &m.digest().to_string())
            .await
            .unwrap();
        assert_eq!(by_digest.digest(), m.digest());
        let e = c.get_manifest(&repo, "nope").await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(&c.put_manifest(&repo, "v2", &m).await.unwrap(), m.digest());
        let put = stub
            .requests()
            .into_iter()
            .find(|r| r.method == "PUT")
            .unwrap();
        assert_eq!(put.header("content-type"), Some(OCI));
        assert_eq!(put.body, m.raw().to_vec());
        // Every GET and HEAD asks for every manifest type hoist reads.
        for r in stub.requests().iter().filter(|r| r.route() != "/v2/") {
            if r.method != "PUT" {
                assert_eq!(r.header("accept"), Some(MANIFEST_ACCEPT), "{r:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_registry_reporting_another_digest_is_refused() {
        let m = manifest();
        let stub = registry(&m, true);
        let c = Client::new().unwrap();
        let repo = Repository::new(stub.host(), "a").unwrap();
        let e = c.get_manifest(&repo, "v1").await.unwrap_err();
        assert!(e.to_string().contains("does not match the body"), "{e}");
        let e = c.put_manifest(&repo, "v1", &m).await.unwrap_err();
        assert!(e.to_string().contains("registry stored digest"), "{e}");
        // Asked by a digest the body does not hash to: a digest mismatch.
        let other = format!("sha256:{}", "5".repeat(64));
        let stub = Stub::start({
            let raw = m.raw().to_vec();
            move |req| match req.route() {
                "/v2/" => Reply::status(200),
                _ => Reply::status(200)
                    .header("content-type", OCI)
                    .body(raw.clone()),
            }
        });
        let repo = Repository::new(stub.host(), "a").unwrap();
        let e = c.get_manifest(&repo, &other).await.unwrap_err();
        assert!(e.to_string().contains(&other), "{e}");
    }
}
