//! Redaction: what may be shown of a URL. User info is dropped and query values are
//! replaced by `REDACTED`, except for parameters known to carry no secret (digests,
//! repository names, pagination); distribution's `_state` and signed-URL signatures go.

use url::Url;

const SAFE_PARAMS: &[&str] = &["digest", "mount", "from", "n", "last", "service", "scope"];

/// A URL as it may appear in an error or a log line.
pub fn url(u: &Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if SAFE_PARAMS.contains(&k.as_ref()) {
                    v.into_owned()
                } else {
                    "REDACTED".to_string()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// Replace every occurrence of each secret in `s` (defence in depth for messages that
/// quote a peer's text).
pub fn scrub(s: &str, secrets: &[&str]) -> String {
    let mut out = s.to_string();
    for secret in secrets {
        if secret.len() >= 4 {
            out = out.replace(secret, "REDACTED");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (input, want) in [
            (
                "https://user:pw@reg.example/v2/a/blobs/uploads/uuid?_state=SECRET&digest=sha256:ab",
                "https://reg.example/v2/a/blobs/uploads/uuid?_state=REDACTED&digest=sha256%3Aab",
            ),
            (
                "https://s3.example/bucket/obj?X-Amz-Signature=abc&X-Amz-Credential=def",
                "https://s3.example/bucket/obj?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED",
            ),
            (
                "http://127.0.0.1:5000/v2/a/blobs/uploads/?mount=sha256:00&from=b",
                "http://127.0.0.1:5000/v2/a/blobs/uploads/?mount=sha256%3A00&from=b",
            ),
            ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/"),
        ] {
            assert_eq!(url(&Url::parse(input).unwrap()), want);
        }
        assert_eq!(
            scrub("token abcd1234 here", &["abcd1234"]),
            "token REDACTED here"
        );
    }
}
