//! Credentials: what to authenticate with, per registry. [`DockerConfig`] reads docker's
//! `config.json` (`auths`, `credsStore`, `credHelpers`, through the `docker_credential`
//! crate) and writes it for `hoist auth login|logout`; [`AuthFiles`] reads it, then the
//! containers tools' `auth.json` (podman, skopeo, buildah), the way those tools find it.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use crate::error::{Error, Result};

/// What to authenticate to a registry with. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credential {
    /// No credentials (anonymous token, or none at all).
    #[default]
    Anonymous,
    /// A username and password (or a personal access token as the password).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged with a POST.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Anonymous => write!(f, "Anonymous"),
            Credential::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: REDACTED }}")
            }
            Credential::IdentityToken(_) => write!(f, "IdentityToken(REDACTED)"),
        }
    }
}

impl Credential {
    /// The `Authorization: Basic ...` value, for Basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }

    /// The secrets in this credential, for scrubbing messages.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        match self {
            Credential::Anonymous => vec![],
            Credential::Basic { password, .. } => vec![password.as_str()],
            Credential::IdentityToken(t) => vec![t.as_str()],
        }
    }
}

/// Where credentials come from.
pub trait Keychain: Send + Sync + fmt::Debug {
    /// The credential for `registry` (`host[:port]`); `Anonymous` when none is configured.
    fn resolve(&self, registry: &str) -> Result<Credential>;
}

/// No credentials for anyone.
#[derive(Debug, Default, Clone)]
pub struct Anonymous;

impl Keychain for Anonymous {
    fn resolve(&self, _: &str) -> Result<Credential> {
        Ok(Credential::Anonymous)
    }
}

/// Fixed credentials per registry (tests, `--username/--password`).
#[derive(Debug, Default, Clone)]
pub struct StaticKeychain {
    map: HashMap<String, Credential>,
}

impl StaticKeychain {
    /// An empty keychain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a credential for `registry`.
    pub fn with(mut self, registry: impl Into<String>, cred: Credential) -> Self {
        self.map.insert(registry.into(), cred);
        self
    }
}

impl Keychain for StaticKeychain {
    fn resolve(&self, registry: &str) -> Result<Credential> {
        Ok(self.map.get(registry).cloned().unwrap_or_default())
    }
}

/// Docker's `config.json`: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`,
/// or an explicit path.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
}

/// The key docker uses for Docker Hub in `auths`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

fn config_key(registry: &str) -> &str {
    if registry == "index.docker.io"
        || registry == hoist_image::DOCKER_HUB
        || registry == hoist_image::DOCKER_HUB_API
    {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

impl DockerConfig {
    /// The default location.
    pub fn default_path() -> Option<PathBuf> {
        std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
            .map(|d| d.join("config.json"))
    }

    /// The config at the default location (which may not exist: then every registry is
    /// anonymous).
    pub fn new() -> Result<DockerConfig> {
        let path = Self::default_path().ok_or_else(|| {
            Error::invalid_input(
                "docker config location",
                "neither DOCKER_CONFIG nor HOME is set",
            )
        })?;
        Ok(DockerConfig { path })
    }

    /// The config at `path`.
    pub fn at(path: impl Into<PathBuf>) -> DockerConfig {
        DockerConfig { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_json(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        match std::fs::read(&self.path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Default::default()),
            Ok(b) => match serde_json::from_slice::<serde_json::Value>(&b) {
                Ok(serde_json::Value::Object(m)) => Ok(m),
                _ => Err(Error::invalid_input(
                    format!("docker config {}", self.path.display()),
                    "expected a JSON object",
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(Error::io(self.path.display(), e)),
        }
    }

    fn helper_for(&self, registry: &str) -> Result<Option<String>> {
        let m = self.read_json()?;
        let key = config_key(registry);
        if let Some(h) = m
            .get("credHelpers")
            .and_then(|h| h.get(key).or_else(|| h.get(registry)))
            .and_then(|v| v.as_str())
        {
            return Ok(Some(h.to_string()));
        }
        Ok(m.get("credsStore")
            .and_then(|v| v.as_str())
            .map(str::to_string))
    }

    /// Store a username and password for `registry`: in its credential helper when
    /// one is configured (`credHelpers`, `credsStore`), else base64 in `auths`.
    pub fn login(&self, registry: &str, username: &str, password: &str) -> Result<()> {
        let key = config_key(registry);
        if let Some(helper) = self.helper_for(registry)? {
            let input =
                serde_json::json!({"ServerURL": key, "Username": username, "Secret": password});
            return run_helper(&helper, "store", &input.to_string());
        }
        let mut m = self.read_json()?;
        let auths = m
            .entry("auths")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        let Some(auths) = auths.as_object_mut() else {
            return Err(Error::invalid_input(
                format!("docker config {}", self.path.display()),
                "\"auths\" is not an object",
            ));
        };
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
        auths.insert(key.to_string(), serde_json::json!({ "auth": auth }));
        self.write_json(&m)
    }

    /// Forget the credentials for `registry`. Returns false when there were none.
    pub fn logout(&self, registry: &str) -> Result<bool> {
        let key = config_key(registry);
        if let Some(helper) = self.helper_for(registry)? {
            run_helper(&helper, "erase", key)?;
            return Ok(true);
        }
        let mut m = self.read_json()?;
        let removed = m
            .get_mut("auths")
            .and_then(|a| a.as_object_mut())
            .is_some_and(|a| a.remove(key).is_some());
        if removed {
            self.write_json(&m)?;
        }
        Ok(removed)
    }

    fn write_json(&self, m: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        // A symlinked config.json (kept with dotfiles) stays a link: the file it points to
        // is replaced, as docker does.
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir.display(), e))?;
        let text = serde_json::to_string_pretty(m).expect("JSON map serializes");
        tmp.write_all(text.as_bytes())
            .map_err(|e| Error::io(self.path.display(), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600));
        }
        tmp.persist(&target)
            .map_err(|e| Error::io(self.path.display(), e.error))?;
        Ok(())
    }
}

fn run_helper(helper: &str, verb: &str, input: &str) -> Result<()> {
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io(&prog, e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| Error::io(&prog, e))?;
    }
    let status = child.wait().map_err(|e| Error::io(&prog, e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::auth(
            &prog,
            format!("credential helper `{verb}` exited with {status}"),
        ))
    }
}

/// Every credential file a user may have logged in with, asked in order: docker's
/// `config.json` ([`DockerConfig`]), then the containers tools' `auth.json`:
/// `$REGISTRY_AUTH_FILE` when set, else `$XDG_RUNTIME_DIR/containers/auth.json` and
/// `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/containers/auth.json`). The first
/// file with a credential for the registry wins; none: anonymous.
#[derive(Debug, Clone)]
pub struct AuthFiles {
    docker: Option<DockerConfig>,
    containers: Vec<PathBuf>,
}

impl AuthFiles {
    /// The files at their default places (which may not exist).
    pub fn new() -> AuthFiles {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let containers = match env("REGISTRY_AUTH_FILE") {
            Some(f) => vec![f],
            None => {
                let config =
                    env("XDG_CONFIG_HOME").or_else(|| env("HOME").map(|h| h.join(".config")));
                [env("XDG_RUNTIME_DIR"), config]
                    .into_iter()
                    .flatten()
                    .map(|d| d.join("containers/auth.json"))
                    .collect()
            }
        };
        AuthFiles {
            docker: DockerConfig::new().ok(),
            containers,
        }
    }

    /// Explicit files: a docker `config.json` (or none) and `auth.json` files, in order.
    pub fn at(docker: Option<PathBuf>, containers: Vec<PathBuf>) -> AuthFiles {
        AuthFiles {
            docker: docker.map(DockerConfig::at),
            containers,
        }
    }

    /// The files asked, in order.
    pub fn paths(&self) -> Vec<&Path> {
        self.docker
            .iter()
            .map(DockerConfig::path)
            .chain(self.containers.iter().map(PathBuf::as_path))
            .collect()
    }
}

impl Default for AuthFiles {
    fn default() -> Self {
        AuthFiles::new()
    }
}

impl Keychain for AuthFiles {
    fn resolve(&self, registry: &str) -> Result<Credential> {
        if let Some(d) = &self.docker {
            let c = d.resolve(registry)?;
            if c != Credential::Anonymous {
                return Ok(c);
            }
        }
        // The containers tools key Docker Hub as `docker.io`.
        let keys: &[&str] = if config_key(registry) == DOCKER_HUB_KEY {
            &[hoist_image::DOCKER_HUB, "index.docker.io", DOCKER_HUB_KEY]
        } else {
            &[registry]
        };
        for f in &self.containers {
            let file = DockerConfig::at(f);
            for k in keys {
                let c = file.resolve_key(registry, k)?;
                if c != Credential::Anonymous {
                    return Ok(c);
                }
            }
        }
        Ok(Credential::Anonymous)
    }
}

impl Keychain for DockerConfig {
    fn resolve(&self, registry: &str) -> Result<Credential> {
        self.resolve_key(registry, config_key(registry))
    }
}

impl DockerConfig {
    /// The credential stored under `key` (for `registry`, named in errors).
    fn resolve_key(&self, registry: &str, key: &str) -> Result<Credential> {
        use docker_credential::{CredentialRetrievalError as E, DockerCredential};
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Credential::Anonymous);
            }
            Err(e) => return Err(Error::io(self.path.display(), e)),
        };
        match docker_credential::get_credential_from_reader(std::io::BufReader::new(f), key) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                Ok(Credential::Basic { username, password })
            }
            Ok(DockerCredential::IdentityToken(t)) => Ok(Credential::IdentityToken(t)),
            Err(E::NoCredentialConfigured) | Err(E::ConfigNotFound) => Ok(Credential::Anonymous),
            // The helper's own output may hold secrets: only name the failure.
            Err(E::HelperFailure { helper, .. }) => Err(Error::auth(
                registry,
                format!("credential helper {helper} failed"),
            )),
            Err(e) => Err(Error::auth(
                registry,
                format!("reading {}: {e}", self.path.display()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_resolve_logout_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, r#"{"other": {"keep": true}}"#).unwrap();
        let c = DockerConfig::at(&path);
        assert_eq!(c.resolve("127.0.0.1:5000").unwrap(), Credential::Anonymous);
        c.login("127.0.0.1:5000", "alice", "s3cret:with:colons")
            .unwrap();
        assert_eq!(
            c.resolve("127.0.0.1:5000").unwrap(),
            Credential::Basic {
                username: "alice".into(),
                password: "s3cret:with:colons".into()
            }
        );
        assert_eq!(c.resolve("other.example").unwrap(), Credential::Anonymous);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"keep\""), "other keys kept: {text}");
        assert!(c.logout("127.0.0.1:5000").unwrap());
        assert!(!c.logout("127.0.0.1:5000").unwrap());
        assert_eq!(c.resolve("127.0.0.1:5000").unwrap(), Credential::Anonymous);
    }

    #[test]
    fn a_symlinked_config_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/docker.json");
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(&real, "{}").unwrap();
        let link = dir.path().join("config.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let c = DockerConfig::at(&link);
        c.login("127.0.0.1:5000", "alice", "pw").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert!(std::fs::read_to_string(&real).unwrap().contains("auths"));
        assert!(c.logout("127.0.0.1:5000").unwrap());
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    }

    #[test]
    fn identity_token_and_bad_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {"reg.example": {"identitytoken": "refresh-me"}}}"#,
        )
        .unwrap();
        let c = DockerConfig::at(&path);
        let cred = c.resolve("reg.example").unwrap();
        assert_eq!(cred, Credential::IdentityToken("refresh-me".into()));
        assert!(!format!("{cred:?}").contains("refresh-me"));
        std::fs::write(&path, "[1,2]").unwrap();
        let e = c.login("reg.example", "a", "b").unwrap_err().to_string();
        assert!(e.contains("expected a JSON object"), "{e}");
    }

    #[test]
    fn containers_auth_json_is_read_after_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("docker.json");
        let containers = dir.path().join("auth.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &docker,
            format!(
                r#"{{"auths": {{"both.example": {{"auth": "{}"}}}}}}"#,
                b64("docker:d")
            ),
        )
        .unwrap();
        std::fs::write(
            &containers,
            format!(
                r#"{{"auths": {{"both.example": {{"auth": "{}"}}, "podman.example": {{"auth": "{}"}}, "docker.io": {{"auth": "{}"}}}}}}"#,
                b64("podman:p"),
                b64("podman:q"),
                b64("hub:h")
            ),
        )
        .unwrap();
        let k = AuthFiles::at(
            Some(docker),
            vec![dir.path().join("missing.json"), containers],
        );
        let basic = |u: &str, p: &str| Credential::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(k.resolve("both.example").unwrap(), basic("docker", "d"));
        assert_eq!(k.resolve("podman.example").unwrap(), basic("podman", "q"));
        assert_eq!(
            k.resolve(hoist_image::DOCKER_HUB).unwrap(),
            basic("hub", "h")
        );
        assert_eq!(k.resolve("nobody.example").unwrap(), Credential::Anonymous);
    }

    #[test]
    fn debug_hides_password() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter22".into(),
        };
        assert!(!format!("{c:?}").contains("hunter22"));
    }
}
