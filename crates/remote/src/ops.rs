//! Registry operations for the inspect and manage verbs: tags and catalog (paginated
//! with `Link`), tag and manifest deletion, referrers.

use hoist_image::{Digest, Manifest};
use reqwest::Method;
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repository;
use crate::transport::{Body, Client, pull_scope, push_scope};

/// Entries asked for per page (`n=`). 1000 is the largest ECR accepts.
pub const PAGE_SIZE: usize = 1000;
/// Pages followed at most (a registry whose `Link` loops must not keep hoist forever).
const MAX_PAGES: usize = 10_000;
/// A page of tags or repositories is JSON read whole, capped.
const MAX_PAGE_BYTES: usize = 16 << 20;

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(v: &str) -> Option<&str> {
    v.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

async fn paginate(
    client: &Client,
    repo: &Repository,
    scopes: &[String],
    first: Url,
    field: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut url = first;
    for _ in 0..MAX_PAGES {
        let r = client
            .send(repo, scopes, Method::GET, url.clone(), &[], Body::Empty)
            .await?
            .expect(&[200])
            .await?;
        let next = r.header("link").and_then(next_link).map(str::to_string);
        let what = r.what().to_string();
        let body = r.bytes(MAX_PAGE_BYTES).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::invalid_response(&what, format!("not JSON: {e}")))?;
        match v.get(field) {
            Some(serde_json::Value::Array(a)) => {
                for t in a {
                    if let Some(s) = t.as_str() {
                        out.push(s.to_string());
                    }
                }
            }
            Some(serde_json::Value::Null) | None => {}
            Some(_) => {
                return Err(Error::invalid_response(
                    &what,
                    format!("{field:?} is not a list"),
                ));
            }
        }
        match next {
            Some(n) => {
                url = url
                    .join(&n)
                    .map_err(|_| Error::invalid_response(&what, "unparseable Link header"))?;
            }
            None => return Ok(out),
        }
    }
    Err(Error::invalid_response(
        "pagination",
        format!("more than {MAX_PAGES} pages"),
    ))
}

/// Every tag of a repository (`GET /v2/<name>/tags/list`, all pages).
pub async fn list_tags(client: &Client, repo: &Repository) -> Result<Vec<String>> {
    let mut url = client.url(repo, "tags/list")?;
    url.query_pairs_mut()
        .append_pair("n", &PAGE_SIZE.to_string());
    paginate(client, repo, &pull_scope(repo), url, "tags").await
}

/// True when the registry says the repository does not exist: `GET /v2/<name>/tags/list?n=1`
/// answered 404 `NAME_UNKNOWN` (distribution's answer for a repository without a tag
/// directory). Asked with the push scope a copy into it needs anyway (no other token).
/// Any other answer is `false`; a failure to ask is an error.
pub(crate) async fn repository_unknown(client: &Client, repo: &Repository) -> Result<bool> {
    let mut url = client.url(repo, "tags/list")?;
    url.query_pairs_mut().append_pair("n", "1");
    let r = client
        .send(repo, &push_scope(repo), Method::GET, url, &[], Body::Empty)
        .await?;
    if r.status() != 404 {
        return Ok(false);
    }
    Ok(r.into_error().await.has_code("NAME_UNKNOWN"))
}

/// Every repository of a registry (`GET /v2/_catalog`, all pages).
pub async fn catalog(client: &Client, registry: &str) -> Result<Vec<String>> {
    let base = Url::parse(&client.base_url(registry)?)
        .map_err(|e| Error::invalid_input(format!("registry {registry:?}"), e.to_string()))?;
    let mut url = base
        .join("v2/_catalog")
        .map_err(|e| Error::invalid_input(format!("registry {registry:?}"), e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("n", &PAGE_SIZE.to_string());
    // Scopes are per repository; the catalog asks for registry:catalog:*.
    let any = Repository::new(registry, "catalog")?;
    paginate(
        client,
        &any,
        &["registry:catalog:*".to_string()],
        url,
        "repositories",
    )
    .await
}

/// Delete a manifest by digest (`DELETE /v2/<name>/manifests/<digest>`): every tag that
/// points to it goes with it. A registry with deletes disabled answers
/// [`Error::is_unsupported`].
pub async fn delete_manifest(client: &Client, repo: &Repository, digest: &Digest) -> Result<()> {
    delete(client, repo, &digest.to_string())
        .await
        .map_err(|e| match answer_unsupported(&e) {
            Some(answer) => Error::new(ErrorKind::Unsupported {
                what: format!("deleting {repo}@{digest}"),
                reason: format!("the registry does not allow deleting manifests ({answer})"),
            }),
            None => e,
        })
}

/// Delete a tag only (`DELETE /v2/<name>/manifests/<tag>`, the spec's tag deletion, as
/// `crane delete` does): the manifest and its other tags stay. A registry that deletes
/// manifests only (distribution 2.x answers 400 `DIGEST_INVALID`, reading the tag as a
/// digest; others 405 `UNSUPPORTED`) gives [`Error::is_unsupported`]: hoist never falls
/// back to deleting the digest, which would remove every tag of the manifest.
pub async fn delete_tag(client: &Client, repo: &Repository, tag: &str) -> Result<()> {
    hoist_image::validate_tag(tag)?;
    delete(client, repo, tag).await.map_err(|e| {
        let answer = answer_unsupported(&e).or_else(|| {
            (e.status() == Some(400) && e.has_code("DIGEST_INVALID"))
                .then(|| "it answered 400 DIGEST_INVALID: it took the tag for a digest".into())
        });
        match answer {
            Some(answer) => Error::new(ErrorKind::Unsupported {
                what: format!("deleting tag {repo}:{tag}"),
                reason: format!("the registry does not support deleting a tag ({answer})"),
            }),
            None => e,
        }
    })
}

/// `it answered 405 UNSUPPORTED` for a registry that does not support a request.
fn answer_unsupported(e: &Error) -> Option<String> {
    let status = e.status()?;
    (status == 405 || e.has_code("UNSUPPORTED")).then(|| {
        let code = if e.has_code("UNSUPPORTED") {
            " UNSUPPORTED"
        } else {
            ""
        };
        format!("it answered {status}{code}")
    })
}

async fn delete(client: &Client, repo: &Repository, reference: &str) -> Result<()> {
    let url = client.url(repo, &format!("manifests/{reference}"))?;
    client
        .send(
            repo,
            &push_scope(repo),
            Method::DELETE,
            url,
            &[],
            Body::Empty,
        )
        .await?
        .expect(&[200, 202])
        .await?;
    Ok(())
}

/// The referrers index of a manifest (`GET /v2/<name>/referrers/<digest>`), optionally
/// filtered by artifact type. A registry without the API answers 404: an error.
pub async fn referrers(
    client: &Client,
    repo: &Repository,
    digest: &Digest,
    artifact_type: Option<&str>,
) -> Result<Manifest> {
    let mut url = client.url(repo, &format!("referrers/{digest}"))?;
    if let Some(t) = artifact_type {
        url.query_pairs_mut().append_pair("artifactType", t);
    }
    let r = client
        .send(
            repo,
            &pull_scope(repo),
            Method::GET,
            url,
            &[(
                "accept",
                "application/vnd.oci.image.index.v1+json".to_string(),
            )],
            Body::Empty,
        )
        .await?
        .expect(&[200])
        .await?;
    let raw = r.bytes(hoist_image::MAX_MANIFEST_SIZE).await?;
    Ok(Manifest::from_raw(
        raw,
        Some(&hoist_image::MediaType::from(
            "application/vnd.oci.image.index.v1+json",
        )),
    )?)
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn link_headers() {
        for (h, want) in [
            (
                r#"</v2/a/tags/list?n=2&last=b>; rel="next""#,
                Some("/v2/a/tags/list?n=2&last=b"),
            ),
            (
                r#"<https://x/v2/_catalog?last=z>;rel="next""#,
                Some("https://x/v2/_catalog?last=z"),
            ),
            (r#"</prev>; rel="prev""#, None),
            ("garbage", None),
        ] {
            assert_eq!(next_link(h), want, "{h}");
        }
    }
}
