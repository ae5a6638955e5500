//! A small docker-style token service for auth tests: `GET /token` with basic
//! credentials and `POST /token` (OAuth2 form: `refresh_token` or `password` grants)
//! issue opaque bearer tokens for the requested `repository:NAME:ACTIONS` scopes.
//! [`crate::faults::Proxy::start_with`] puts it in front of a registry as a gate.
//!
//! Tokens can be made to die early (`max_uses`) while the service still reports a long
//! `expires_in`: the client sees a 401 in the middle of a push and must re-authenticate.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

/// The `service` the gate names in its challenges.
pub const SERVICE: &str = "hoist-test";

/// Settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Accepted username/password pairs (GET with Basic, or the `password` grant).
    pub users: Vec<(String, String)>,
    /// Accepted refresh tokens (the `refresh_token` grant).
    pub refresh_tokens: Vec<String>,
    /// The `expires_in` the service reports.
    pub reported_ttl: Duration,
    /// The real lifetime of a token.
    pub ttl: Duration,
    /// A token dies after this many authorized requests (`None`: never).
    pub max_uses: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            users: Vec::new(),
            refresh_tokens: Vec::new(),
            reported_ttl: Duration::from_secs(300),
            ttl: Duration::from_secs(300),
            max_uses: None,
        }
    }
}

#[derive(Debug)]
struct Grant {
    scopes: Vec<(String, Vec<String>)>,
    expires: Instant,
    uses: u64,
}

/// What the service did.
#[derive(Debug, Default)]
pub struct Counters {
    /// Tokens issued.
    pub issued: AtomicU64,
    /// Issued through the refresh-token POST.
    pub refresh_grants: AtomicU64,
    /// Requests refused (bad credentials).
    pub refused: AtomicU64,
    /// Requests the gate rejected because a token had died.
    pub expired: AtomicU64,
}

/// A running token service; stopped on drop.
pub struct TokenService {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    opts: Options,
    tokens: Mutex<HashMap<String, Grant>>,
    issued: Mutex<Vec<String>>,
    counters: Counters,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenService({})", self.addr)
    }
}

impl TokenService {
    /// Start on `127.0.0.1:0`.
    pub fn start(opts: Options) -> Arc<TokenService> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind token service");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let inner = Arc::new(Inner {
            opts,
            tokens: Mutex::new(HashMap::new()),
            issued: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let inn = inner.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("token runtime");
            rt.block_on(crate::http1::serve_until(
                std_listener,
                stopped,
                move |req| serve(inn.clone(), req),
            ));
        });
        Arc::new(TokenService {
            addr,
            inner,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Every token issued so far (to check none leaks into logs or errors).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.inner.issued.lock().unwrap().clone()
    }

    /// Gate a registry request: `Ok` when `authorization` carries a live token whose
    /// scopes cover it, else the `WWW-Authenticate` challenge to answer with a 401.
    pub fn authorize(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<(), String> {
        let need = needed_scope(method, path);
        let mut challenge = format!("Bearer realm=\"{}\",service=\"{SERVICE}\"", self.realm());
        if let Some((repo, action)) = &need {
            let actions = if action == "pull" {
                "pull"
            } else {
                "pull,push"
            };
            challenge.push_str(&format!(",scope=\"repository:{repo}:{actions}\""));
        }
        let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
            return Err(challenge);
        };
        let mut tokens = self.inner.tokens.lock().unwrap();
        let Some(g) = tokens.get_mut(token) else {
            return Err(challenge + ",error=\"invalid_token\"");
        };
        let dead =
            Instant::now() >= g.expires || self.inner.opts.max_uses.is_some_and(|m| g.uses >= m);
        if dead {
            self.inner.counters.expired.fetch_add(1, Ordering::Relaxed);
            return Err(challenge + ",error=\"invalid_token\"");
        }
        if let Some((repo, action)) = &need {
            let ok = g
                .scopes
                .iter()
                .any(|(r, acts)| r == repo && acts.iter().any(|a| a == action || a == "*"));
            if !ok {
                return Err(challenge + ",error=\"insufficient_scope\"");
            }
        }
        g.uses += 1;
        Ok(())
    }
}

impl Drop for TokenService {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The (repository, action) a registry request needs; `None` for `/v2/`.
fn needed_scope(method: &str, path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/v2/")?;
    let cut = ["/blobs/", "/manifests/", "/tags/"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()?;
    let action = if method == "GET" || method == "HEAD" {
        "pull"
    } else {
        "push"
    };
    Some((rest[..cut].to_string(), action.to_string()))
}

fn reply(
    status: u16,
    body: String,
) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("response")
}

async fn serve(
    inner: Arc<Inner>,
    req: Request<Incoming>,
) -> Result<Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>, Infallible> {
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().as_str().to_string();
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let params: Vec<(String, String)> = if method == "POST" {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let refused = |inner: &Inner| {
        inner.counters.refused.fetch_add(1, Ordering::Relaxed);
        reply(
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.into(),
        )
    };
    let user_ok = |u: &str, p: &str| inner.opts.users.iter().any(|(uu, pp)| uu == u && pp == p);
    let authed = match method.as_str() {
        "GET" => basic.as_ref().is_some_and(|(u, p)| user_ok(u, p)),
        "POST" => match get("grant_type").as_deref() {
            Some("refresh_token") => {
                let ok =
                    get("refresh_token").is_some_and(|t| inner.opts.refresh_tokens.contains(&t));
                if ok {
                    inner
                        .counters
                        .refresh_grants
                        .fetch_add(1, Ordering::Relaxed);
                }
                ok
            }
            Some("password") => match (get("username"), get("password")) {
                (Some(u), Some(p)) => user_ok(&u, &p),
                _ => false,
            },
            _ => false,
        },
        _ => false,
    };
    if !authed {
        return Ok(refused(&inner));
    }
    // Scopes: repeated `scope` params (GET) or one space-separated value (POST).
    let mut scopes = Vec::new();
    for (k, v) in &params {
        if k != "scope" {
            continue;
        }
        for s in v.split(' ') {
            let mut it = s.splitn(3, ':');
            if let (Some("repository"), Some(name), Some(actions)) =
                (it.next(), it.next(), it.next())
            {
                scopes.push((
                    name.to_string(),
                    actions.split(',').map(str::to_string).collect(),
                ));
            }
        }
    }
    let token = format!("tok-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    inner.tokens.lock().unwrap().insert(
        token.clone(),
        Grant {
            scopes,
            expires: Instant::now() + inner.opts.ttl,
            uses: 0,
        },
    );
    inner.issued.lock().unwrap().push(token.clone());
    inner.counters.issued.fetch_add(1, Ordering::Relaxed);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": inner.opts.reported_ttl.as_secs(),
    });
    Ok(reply(200, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_of_paths() {
        for (m, p, want) in [
            ("GET", "/v2/", None),
            ("HEAD", "/v2/a/b/blobs/sha256:00", Some(("a/b", "pull"))),
            ("PUT", "/v2/x/manifests/v1", Some(("x", "push"))),
            ("PATCH", "/v2/x/blobs/uploads/uuid", Some(("x", "push"))),
            ("GET", "/v2/x/tags/list", Some(("x", "pull"))),
        ] {
            assert_eq!(
                needed_scope(m, p),
                want.map(|(a, b)| (a.to_string(), b.to_string())),
                "{m} {p}"
            );
        }
    }
}
