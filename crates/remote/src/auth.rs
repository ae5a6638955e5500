//! Authentication, the way registries ask for it: a ping (`GET /v2/`) learns the
//! challenge once per registry; Basic sends the keychain's credentials with every
//! request; Bearer gets a token from the challenge's realm per scope set (with the
//! password, or an identity token through the OAuth2 refresh grant), caches it until just
//! before it expires, and forgets it on a 401 (a token that died in the middle of a long
//! push). No credential or token appears in an error.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hoist_image::quote;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::Deserialize;
use url::Url;

use crate::challenge::{self, Challenge, Scheme};
use crate::credential::Credential;
use crate::error::{Error, MAX_ERROR_BODY, Result, decode_errors, is_retryable_status};
use crate::redact;
use crate::repo::Repository;
use crate::transport::{
    Client, FALLBACK_DELAY, RegistryState, Response, pull_scope, read_capped, retry_after,
    transport_error,
};

/// Tokens are refreshed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(5);
/// A token without `expires_in` lives this long (the docker token spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct AuthState {
    /// `None` until pinged.
    challenge: Option<Option<Challenge>>,
    /// Bearer tokens by scope set.
    tokens: HashMap<String, Token>,
}

#[derive(Clone)]
struct Token {
    value: String,
    expires: Instant,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(REDACTED)")
    }
}

impl Client {
    async fn credential(&self, st: &RegistryState) -> Result<Credential> {
        let keychain = self.inner.keychain.clone();
        let registry = st.registry.clone();
        st.credential
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || keychain.resolve(&registry))
                    .await
                    .map_err(|e| Error::auth(&st.registry, format!("credential lookup: {e}")))?
            })
            .await
            .cloned()
    }

    /// `GET /v2/`: learn whether and how the registry wants authentication, and settle
    /// the scheme. A registry that may fall back (loopback, insecure) is tried over one
    /// scheme first, and over the other when the first fails for any reason but an
    /// untrusted certificate, or has not answered within [`FALLBACK_DELAY`] (crane's race);
    /// the first to answer is the one. The first is https, except for a loopback registry
    /// with a port: one port speaks one protocol, so the order decides nothing but the
    /// cost, and a local registry most often speaks plain http, which then needs no TLS
    /// handshake (a process's first one seeds the crypto library's random generator:
    /// ~20 ms of CPU, before the first request). A loopback name without a port keeps
    /// https first: there the schemes reach different ports (443, 80).
    async fn ping(&self, st: &RegistryState) -> Result<Option<Challenge>> {
        if !st.fallback {
            let c = self.ping_at(st, "https", true).await?;
            st.settle("https");
            return Ok(c);
        }
        let (first, second) = if st.http_first {
            ("http", "https")
        } else {
            ("https", "http")
        };
        // Temporary failures are retried over plain http only, and only once it is the
        // scheme left (below, when http went first).
        let a = self.ping_at(st, first, false);
        tokio::pin!(a);
        let early = tokio::select! {
            r = &mut a => Some(r),
            _ = tokio::time::sleep(FALLBACK_DELAY) => None,
        };
        let mut errs: [Option<Error>; 2] = [None, None];
        if let Some(r) = early {
            match r {
                Ok(c) => {
                    st.settle(first);
                    return Ok(c);
                }
                Err(e) if first == "https" && e.is_untrusted_certificate() => return Err(e),
                Err(e) => errs[0] = Some(e),
            }
        }
        let b = self.ping_at(st, second, second == "http");
        tokio::pin!(b);
        loop {
            tokio::select! {
                r = &mut a, if errs[0].is_none() => match r {
                    Ok(c) => {
                        st.settle(first);
                        return Ok(c);
                    }
                    Err(e) if first == "https" && e.is_untrusted_certificate() => return Err(e),
                    Err(e) => errs[0] = Some(e),
                },
                r = &mut b, if errs[1].is_none() => match r {
                    Ok(c) => {
                        st.settle(second);
                        return Ok(c);
                    }
                    Err(e) if second == "https" && e.is_untrusted_certificate() => return Err(e),
                    Err(e) => errs[1] = Some(e),
                },
            }
            if errs.iter().all(Option::is_some) {
                break;
            }
        }
        let [ea, eb] = errs.map(|e| e.expect("both failed"));
        let (http_err, https_err) = if first == "http" { (ea, eb) } else { (eb, ea) };
        let note = https_err.cause_text();
        if first == "http" && http_err.is_temporary() && self.inner.retry.retries > 0 {
            // Plain http failed in a way worth another try: its retries (this was the
            // first), announced, as when it goes second.
            let url = st.base_with("http").join("v2/").expect("static path");
            let d = self.retrying(&format!("GET {}", redact::url(&url)), 0, None, &http_err);
            tokio::time::sleep(d).await;
            return match self.ping_from(st, "http", 1).await {
                Ok(c) => {
                    st.settle("http");
                    Ok(c)
                }
                Err(e) => Err(e.noted(&format!("over https: {note}"))),
            };
        }
        // Both failed: the plain http answer says most (nothing listens, or an error
        // status); the https one goes along.
        Err(http_err.noted(&format!("over https: {note}")))
    }

    /// One scheme's ping; temporary failures retried when `retry`.
    async fn ping_at(
        &self,
        st: &RegistryState,
        scheme: &'static str,
        retry: bool,
    ) -> Result<Option<Challenge>> {
        if retry {
            self.ping_from(st, scheme, 0).await
        } else {
            self.ping_once(st, scheme).await
        }
    }

    /// One scheme's ping, without retries.
    async fn ping_once(
        &self,
        st: &RegistryState,
        scheme: &'static str,
    ) -> Result<Option<Challenge>> {
        self.ping_attempts(st, scheme, 0, 0).await
    }

    /// One scheme's ping from attempt `attempt` on, temporary failures retried within the
    /// retry budget.
    async fn ping_from(
        &self,
        st: &RegistryState,
        scheme: &'static str,
        attempt: u32,
    ) -> Result<Option<Challenge>> {
        self.ping_attempts(st, scheme, attempt, self.inner.retry.retries)
            .await
    }

    async fn ping_attempts(
        &self,
        st: &RegistryState,
        scheme: &'static str,
        first: u32,
        retries: u32,
    ) -> Result<Option<Challenge>> {
        let url = st.base_with(scheme).join("v2/").expect("static path");
        let what = format!("GET {}", redact::url(&url));
        let mut attempt = first;
        loop {
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            let r = st.http.plain.get(url.clone()).send().await;
            let (delay, err) = match r {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match status {
                        200..=299 => return Ok(None),
                        401 => {
                            let challenges: Vec<Challenge> = resp
                                .headers()
                                .get_all(header::WWW_AUTHENTICATE)
                                .iter()
                                .filter_map(|v| v.to_str().ok())
                                .flat_map(challenge::parse)
                                .collect();
                            return pick_challenge(&st.registry, challenges).map(Some);
                        }
                        s if is_retryable_status(s) && attempt < retries => {
                            let ra = retry_after(resp.headers());
                            let err = Response {
                                inner: resp,
                                what: what.clone(),
                                idle: None,
                            }
                            .into_error()
                            .await;
                            (ra, err)
                        }
                        _ => {
                            return Err(Response {
                                inner: resp,
                                what,
                                idle: None,
                            }
                            .into_error()
                            .await);
                        }
                    }
                }
                Err(e) => {
                    let err = transport_error(&what, &e);
                    // A refused connection, a name that does not resolve, an untrusted
                    // certificate: waiting changes nothing, fail now.
                    if !err.is_temporary() || attempt >= retries {
                        return Err(err);
                    }
                    (None, err)
                }
            };
            let d = self.retrying(&what, attempt, delay, &err);
            tokio::time::sleep(d).await;
            attempt += 1;
        }
    }

    /// The `Authorization` value for a request to `st` needing `scopes`.
    pub(crate) async fn authorization(
        &self,
        st: &RegistryState,
        scopes: &[String],
    ) -> Result<Option<String>> {
        let mut auth = st.auth.lock().await;
        if auth.challenge.is_none() {
            auth.challenge = Some(self.ping(st).await?);
        }
        let challenge = auth.challenge.clone().flatten();
        let Some(challenge) = challenge else {
            return Ok(None);
        };
        let cred = self.credential(st).await?;
        match challenge.scheme {
            Scheme::Basic => Ok(cred.basic_header()),
            Scheme::Bearer => {
                let key = scopes.join(" ");
                if let Some(t) = auth.tokens.get(&key)
                    && t.expires > Instant::now() + TOKEN_MARGIN
                {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let t = self.fetch_token(st, &challenge, &cred, scopes).await?;
                let v = format!("Bearer {}", t.value);
                auth.tokens.insert(key, t);
                Ok(Some(v))
            }
            Scheme::Other(s) => Err(Error::auth(
                &st.registry,
                format!("unsupported authentication scheme {}", quote(&s)),
            )),
        }
    }

    /// A 401 arrived: forget the tokens for these scopes and take the new challenge.
    pub(crate) async fn unauthorized(
        &self,
        st: &RegistryState,
        scopes: &[String],
        headers: &HeaderMap,
    ) {
        self.inner.counters.reauths.fetch_add(1, Ordering::Relaxed);
        let mut auth = st.auth.lock().await;
        auth.tokens.remove(&scopes.join(" "));
        let challenges: Vec<Challenge> = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(challenge::parse)
            .collect();
        if let Ok(c) = pick_challenge(&st.registry, challenges) {
            auth.challenge = Some(Some(c));
        }
    }

    async fn fetch_token(
        &self,
        st: &RegistryState,
        ch: &Challenge,
        cred: &Credential,
        scopes: &[String],
    ) -> Result<Token> {
        let realm = ch
            .realm()
            .ok_or_else(|| Error::auth(&st.registry, "Bearer challenge without a realm"))?;
        let realm = Url::parse(realm)
            .map_err(|_| Error::auth(&st.registry, "Bearer challenge with an unparseable realm"))?;
        let service = ch.service().unwrap_or(&st.registry).to_string();
        let what = format!("token service {}", redact::url(&realm));
        let secrets = cred.secrets();
        self.inner
            .counters
            .token_fetches
            .fetch_add(1, Ordering::Relaxed);
        let mut attempt = 0;
        loop {
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            let req = match cred {
                Credential::IdentityToken(refresh) => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    form.append_pair("grant_type", "refresh_token")
                        .append_pair("service", &service)
                        .append_pair("client_id", "hoist")
                        .append_pair("refresh_token", refresh);
                    if !scopes.is_empty() {
                        form.append_pair("scope", &scopes.join(" "));
                    }
                    st.http
                        .plain
                        .post(realm.clone())
                        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(form.finish())
                }
                _ => {
                    let mut u = realm.clone();
                    {
                        let mut q = u.query_pairs_mut();
                        q.append_pair("service", &service);
                        for s in scopes {
                            q.append_pair("scope", s);
                        }
                        if let Credential::Basic { username, .. } = cred {
                            q.append_pair("account", username);
                        }
                    }
                    let mut r = st.http.plain.get(u);
                    if let Some(b) = cred.basic_header() {
                        r = r.header(header::AUTHORIZATION, b);
                    }
                    r
                }
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = transport_error(&what, &e);
                    if !err.is_temporary() || attempt >= self.inner.retry.retries {
                        return Err(err);
                    }
                    tokio::time::sleep(self.retrying(&what, attempt, None, &err)).await;
                    attempt += 1;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            if is_retryable_status(status) && attempt < self.inner.retry.retries {
                let ra = retry_after(resp.headers());
                let err = Error::auth(&st.registry, format!("{what} answered status {status}"));
                tokio::time::sleep(self.retrying(&what, attempt, ra, &err)).await;
                attempt += 1;
                continue;
            }
            let body = read_capped(resp, MAX_ERROR_BODY).await;
            if status != 200 {
                let msg = decode_errors(&body)
                    .into_iter()
                    .next()
                    .map(|e| format!(": {}", quote(&redact::scrub(&e.message, &secrets))))
                    .unwrap_or_default();
                return Err(Error::auth(
                    &st.registry,
                    format!("{what} answered status {status}{msg}"),
                ));
            }
            #[derive(Deserialize)]
            struct TokenResponse {
                token: Option<String>,
                access_token: Option<String>,
                expires_in: Option<u64>,
            }
            let t: TokenResponse = serde_json::from_slice(&body).map_err(|_| {
                Error::auth(
                    &st.registry,
                    format!("{what} answered something that is not a token"),
                )
            })?;
            let value = t
                .token
                .filter(|s| !s.is_empty())
                .or(t.access_token)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::auth(&st.registry, format!("{what} answered no token")))?;
            let life = t
                .expires_in
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_TOKEN_LIFETIME);
            return Ok(Token {
                value,
                expires: Instant::now() + life,
            });
        }
    }

    /// Check credentials against a registry: ping it and, for token auth, fetch a token
    /// for pulling `repo` (when given).
    pub async fn check_auth(&self, registry: &str, repo: Option<&Repository>) -> Result<()> {
        let st = self.state(registry)?;
        let scopes = repo.map(pull_scope).unwrap_or_default();
        let a = self.authorization(&st, &scopes).await?;
        // Basic auth is only checked by a request.
        if let Some(a) = a
            && a.starts_with("Basic ")
        {
            let url = st.base().join("v2/").expect("static path");
            let mut v =
                HeaderValue::from_str(&a).map_err(|_| Error::auth(registry, "bad header"))?;
            v.set_sensitive(true);
            let r = st
                .http
                .plain
                .get(url.clone())
                .header(header::AUTHORIZATION, v)
                .send()
                .await
                .map_err(|e| transport_error(&format!("GET {}", redact::url(&url)), &e))?;
            if r.status() != StatusCode::OK {
                return Err(Error::auth(
                    registry,
                    format!("credentials refused (status {})", r.status().as_u16()),
                ));
            }
        }
        Ok(())
    }
}

fn pick_challenge(registry: &str, cs: Vec<Challenge>) -> Result<Challenge> {
    let mut basic = None;
    let mut other = None;
    for c in cs {
        match c.scheme {
            Scheme::Bearer => return Ok(c),
            Scheme::Basic => basic = Some(c),
            Scheme::Other(_) => other = Some(c),
        }
    }
    basic
        .or(other)
        .ok_or_else(|| Error::auth(registry, "401 without a usable WWW-Authenticate challenge"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::credential::StaticKeychain;
    use crate::retry::RetryPolicy;
    use crate::transport::Body;
    use hoist_testkit::stub::{Reply, Stub};
    use reqwest::Method;

    fn client_with(keychain: Option<(&str, Credential)>) -> Client {
        let mut b = Client::builder().retry(RetryPolicy {
            retries: 3,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        });
        if let Some((host, cred)) = keychain {
            b = b.keychain(Arc::new(StaticKeychain::new().with(host.to_string(), cred)));
        }
        b.build().unwrap()
    }

    async fn get(c: &Client, repo: &Repository, path: &str) -> Result<Response> {
        let url = c.url(repo, path)?;
        c.send(repo, &pull_scope(repo), Method::GET, url, &[], Body::Empty)
            .await
    }

    #[tokio::test]
    async fn basic_challenges_get_the_keychain_credentials() {
        let stub = Stub::start(|req| match req.header("authorization") {
            Some(_) => Reply::status(200),
            None => Reply::status(401).header("www-authenticate", r#"Basic realm="r""#),
        });
        let cred = Credential::Basic {
            username: "alice".into(),
            password: "s3cret-pass".into(),
        };
        let c = client_with(Some((&stub.host(), cred)));
        let repo = Repository::new(stub.host(), "a").unwrap();
        get(&c, &repo, "tags/list").await.unwrap();
        let last = stub.requests().pop().unwrap();
        use base64::Engine;
        let want = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pass");
        assert_eq!(
            last.header("authorization"),
            Some(&*format!("Basic {want}"))
        );
    }

    /// A registry and its token service in one stub: tokens `tok-1`, `tok-2`, ...; the
    /// registry refuses `tok-1` once `expired` is set (a token that died early).
    fn bearer_registry(expired: Arc<AtomicBool>) -> Stub {
        let issued = Arc::new(AtomicUsize::new(0));
        let host = Arc::new(Mutex::new(String::new()));
        let h = host.clone();
        let stub = Stub::start(move |req| {
            if req.route() == "/token" {
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                return Reply::status(200).json(&serde_json::json!({"token": format!("tok-{n}")}));
            }
            let challenge = format!(
                r#"Bearer realm="http://{}/token",service="svc""#,
                h.lock().unwrap()
            );
            match req.header("authorization") {
                Some("Bearer tok-1") if expired.load(Ordering::SeqCst) => {
                    Reply::status(401).header("www-authenticate", challenge)
                }
                Some(a) if a.starts_with("Bearer tok-") => Reply::status(200),
                _ => Reply::status(401).header("www-authenticate", challenge),
            }
        });
        *host.lock().unwrap() = stub.host();
        stub
    }

    #[tokio::test]
    async fn bearer_tokens_are_cached_per_scope_and_renewed_after_a_401() {
        let expired = Arc::new(AtomicBool::new(false));
        let stub = bearer_registry(expired.clone());
        let c = client_with(None);
        let repo = Repository::new(stub.host(), "team/app").unwrap();
        get(&c, &repo, "tags/list").await.unwrap();
        get(&c, &repo, "tags/list").await.unwrap();
        assert_eq!(c.stats().token_fetches, 1, "one token per scope");
        let token_req = stub
            .requests()
            .into_iter()
            .find(|r| r.route() == "/token")
            .unwrap();
        assert_eq!(token_req.query("service").as_deref(), Some("svc"));
        assert_eq!(
            token_req.query("scope").as_deref(),
            Some("repository:team/app:pull")
        );
        // The token dies: one 401, a new token, the request replayed.
        expired.store(true, Ordering::SeqCst);
        assert_eq!(get(&c, &repo, "tags/list").await.unwrap().status(), 200);
        let s = c.stats();
        assert_eq!((s.token_fetches, s.reauths), (2, 1), "{s:?}");
        // Another scope, another token.
        let other = Repository::new(stub.host(), "team/other").unwrap();
        get(&c, &other, "tags/list").await.unwrap();
        assert_eq!(c.stats().token_fetches, 3);
    }
}
