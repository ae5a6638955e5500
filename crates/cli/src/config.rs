//! The registry's configuration: `hoist serve` flags, `HOIST_*` environment variables, a
//! TOML file (`--config FILE`) and defaults, in that order of precedence.
//!
//! One struct, [`Settings`], is all three: clap reads the flags and the environment into it,
//! serde reads the file into it, and [`Settings::over`] lays the first over the second. A
//! flag `--foo-bar` is the file's key `foo-bar` and the variable `HOIST_FOO_BAR`; a key the
//! struct does not have is an error naming it. `--print-config` writes the effective
//! settings back as TOML, with secret values masked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hoist_registry::Timeouts;
use serde::{Deserialize, Serialize};

use crate::logging;

/// Where the registry listens unless told otherwise: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";
/// Log filter of `hoist serve` unless told otherwise: includes the access log.
pub const DEFAULT_LOG: &str = "info";
/// The shortest grace period online garbage collection takes: a push between its last
/// blob and its manifest must not lose its blobs (a minute is far longer than that takes).
pub const MIN_ONLINE_GRACE: Duration = Duration::from_secs(60);

/// The settings of the registry, each optional until [`Settings::resolve`] fills defaults.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Address to listen on (host:port; port 0 picks a free one) [default: 127.0.0.1:5000].
    #[arg(long, env = "HOIST_ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    /// Storage directory, created if needed [default: $XDG_DATA_HOME/hoist/registry, else
    /// ~/.local/share/hoist/registry]. The same as --storage fs:DIR.
    #[arg(long, env = "HOIST_ROOT", value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Where the registry keeps its data: fs:DIR (a directory, the default), or
    /// s3://BUCKET[/PREFIX] (an S3-compatible bucket several nodes can share; endpoint,
    /// region and credentials from the --s3-* flags or the standard AWS_* variables).
    #[arg(
        long,
        env = "HOIST_STORAGE",
        value_name = "fs:DIR|s3://BUCKET[/PREFIX]"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// S3 endpoint URL (http://127.0.0.1:8333 for a local SeaweedFS) [default:
    /// AWS_ENDPOINT_URL, else AWS itself]. Plain http only to loopback, unless --s3-allow-http.
    #[arg(long, env = "HOIST_S3_ENDPOINT", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "HOIST_S3_REGION", value_name = "REGION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    /// S3 access key id [default: AWS_ACCESS_KEY_ID].
    #[arg(long, env = "HOIST_S3_ACCESS_KEY_ID", value_name = "ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key [default: AWS_SECRET_ACCESS_KEY].
    #[arg(
        long,
        env = "HOIST_S3_SECRET_ACCESS_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_secret_access_key: Option<String>,
    /// Allow a plain-http S3 endpoint that is not a loopback address [default: false].
    #[arg(long, env = "HOIST_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_allow_http: Option<bool>,
    /// How long the S3 store may keep a request waiting (to connect, for its answer,
    /// between two pieces of a body) before it is retried or fails [default: 30s]. A client
    /// reading a blob slowly does not count: a blob's read waits for it.
    #[arg(long, env = "HOIST_S3_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_timeout: Option<Dur>,
    /// The secret upload locations are signed with (at least 16 characters). Every node
    /// over one bucket needs the same, so s3:// storage requires it; with fs: storage it
    /// defaults to a random one kept in the storage directory.
    #[arg(
        long,
        env = "HOIST_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Require basic auth against this htpasswd file (bcrypt entries, `htpasswd -B`).
    #[arg(long, env = "HOIST_HTPASSWD", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "HOIST_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, env = "HOIST_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Refuse every write (405 UNSUPPORTED), for maintenance; reads go on [default: false].
    #[arg(long, env = "HOIST_READ_ONLY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Serve Prometheus metrics at http://ADDR/metrics without authentication (and not on
    /// the main address). Without it, /metrics is on the main address, behind its auth.
    #[arg(long, env = "HOIST_METRICS_ADDR", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log lines as text (coloured only on a terminal) or JSON, one object per line
    /// [default: text].
    #[arg(long, env = "HOIST_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<logging::Format>,
    /// Close a connection whose request head (or TLS handshake) is not complete this long
    /// after its first byte [default: 30s]. Durations: 500ms, 30s, 5m, 2h, 7d.
    #[arg(long, env = "HOIST_HEADER_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<Dur>,
    /// Close a connection with no request in flight that sends nothing for this long
    /// [default: 90s].
    #[arg(long, env = "HOIST_IDLE_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Dur>,
    /// Fail a request whose body sends nothing for this long (408), and close a connection
    /// whose client reads nothing of a response for this long [default: 60s].
    #[arg(long, env = "HOIST_BODY_TIMEOUT", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout: Option<Dur>,
    /// On SIGTERM or SIGINT, let requests in flight finish for this long [default: 10s].
    #[arg(long, env = "HOIST_SHUTDOWN_GRACE", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<Dur>,
    /// Remove upload sessions nobody wrote to for this long, at start and periodically
    /// [default: 7d, as distribution's upload purging].
    #[arg(long, env = "HOIST_UPLOAD_TTL", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_ttl: Option<Dur>,
    /// Collect garbage every DURATION while serving (e.g. 24h): blobs no manifest reaches,
    /// older than --gc-grace [default: never].
    #[arg(long, env = "HOIST_GC_INTERVAL", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_interval: Option<Dur>,
    /// Keep whatever was uploaded, mounted or referenced less than DURATION ago [default:
    /// 1h; at least 1m while serving: longer than any push takes between its blobs and its
    /// manifest].
    #[arg(long, env = "HOIST_GC_GRACE", value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_grace: Option<Dur>,
    /// Garbage collection also removes manifests no tag reaches (not the children of
    /// tagged indexes, nor the referrers of kept manifests) [default: false].
    #[arg(long, env = "HOIST_DELETE_UNTAGGED", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_untagged: Option<bool>,
    /// Log filter (error, warn, info, debug, trace, or target=level lists) [default: info,
    /// which includes the access log]. The global --log / HOIST_LOG.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl Settings {
    /// `self` (flags and environment) over `file`: a value set here wins.
    pub fn over(self, file: Settings) -> Settings {
        Settings {
            addr: self.addr.or(file.addr),
            root: self.root.or(file.root),
            storage: self.storage.or(file.storage),
            s3_endpoint: self.s3_endpoint.or(file.s3_endpoint),
            s3_region: self.s3_region.or(file.s3_region),
            s3_access_key_id: self.s3_access_key_id.or(file.s3_access_key_id),
            s3_secret_access_key: self.s3_secret_access_key.or(file.s3_secret_access_key),
            s3_allow_http: self.s3_allow_http.or(file.s3_allow_http),
            s3_timeout: self.s3_timeout.or(file.s3_timeout),
            secret: self.secret.or(file.secret),
            htpasswd: self.htpasswd.or(file.htpasswd),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            read_only: self.read_only.or(file.read_only),
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
            log_format: self.log_format.or(file.log_format),
            header_timeout: self.header_timeout.or(file.header_timeout),
            idle_timeout: self.idle_timeout.or(file.idle_timeout),
            body_timeout: self.body_timeout.or(file.body_timeout),
            shutdown_grace: self.shutdown_grace.or(file.shutdown_grace),
            upload_ttl: self.upload_ttl.or(file.upload_ttl),
            gc_interval: self.gc_interval.or(file.gc_interval),
            gc_grace: self.gc_grace.or(file.gc_grace),
            delete_untagged: self.delete_untagged.or(file.delete_untagged),
            log: self.log.or(file.log),
        }
    }

    /// Every setting given a value: the defaults filled in, contradictions refused.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("tls-cert and tls-key go together: give both or neither");
        }
        if let Some(secret) = &self.secret
            && secret.len() < MIN_SECRET
        {
            bail!(
                "secret: {} characters, expected at least {MIN_SECRET}",
                secret.len()
            );
        }
        // `root` is `storage = "fs:DIR"`; the two must not disagree.
        let (storage, root) = match (self.storage, self.root) {
            (None, root) => {
                let root = match root {
                    Some(r) => r,
                    None => default_root()?,
                };
                (format!("fs:{}", root.display()), Some(root))
            }
            (Some(st), root) => match Storage::parse(&st)? {
                Storage::Fs(dir) => {
                    if let Some(r) = root.filter(|r| *r != dir) {
                        bail!(
                            "root {} and storage {st} name two places: give one",
                            r.display()
                        );
                    }
                    (st, Some(dir))
                }
                Storage::S3(_) => {
                    if let Some(r) = root {
                        bail!(
                            "root {} and storage {st} name two places: give one",
                            r.display()
                        );
                    }
                    (st, None)
                }
            },
        };
        if let (Some(_), Some(g)) = (self.gc_interval, self.gc_grace) {
            if g.0 < MIN_ONLINE_GRACE {
                bail!(
                    "gc-grace {g} is too short while serving: at least {} (a push in progress must keep its blobs)",
                    Dur(MIN_ONLINE_GRACE)
                );
            }
        }
        Ok(Settings {
            addr: Some(
                self.addr
                    .unwrap_or_else(|| DEFAULT_ADDR.parse().expect("valid default")),
            ),
            storage: Some(storage),
            root,
            read_only: Some(self.read_only.unwrap_or(false)),
            s3_timeout: Some(
                self.s3_timeout
                    .unwrap_or(Dur(hoist_registry::DEFAULT_S3_TIMEOUT)),
            ),
            log_format: Some(self.log_format.unwrap_or_default()),
            header_timeout: Some(self.header_timeout.unwrap_or(Dur(Timeouts::DEFAULT.header))),
            idle_timeout: Some(self.idle_timeout.unwrap_or(Dur(Timeouts::DEFAULT.idle))),
            body_timeout: Some(self.body_timeout.unwrap_or(Dur(Timeouts::DEFAULT.body))),
            shutdown_grace: Some(
                self.shutdown_grace
                    .unwrap_or(Dur(hoist_registry::DEFAULT_SHUTDOWN_GRACE)),
            ),
            upload_ttl: Some(
                self.upload_ttl
                    .unwrap_or(Dur(hoist_registry::DEFAULT_UPLOAD_TTL)),
            ),
            gc_grace: Some(self.gc_grace.unwrap_or(Dur(hoist_registry::DEFAULT_GRACE))),
            delete_untagged: Some(self.delete_untagged.unwrap_or(false)),
            log: Some(self.log.unwrap_or_else(|| DEFAULT_LOG.to_string())),
            ..self
        })
    }

    /// Read a TOML file of settings. Errors are one line naming the file, the line and,
    /// for a key it does not know, the key.
    pub fn load(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("config file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e
                .message()
                .trim()
                .replace('\n', " ")
                .replace("unknown field", "unknown key");
            match line {
                Some(l) => anyhow::anyhow!("config file {}: line {l}: {msg}", path.display()),
                None => anyhow::anyhow!("config file {}: {msg}", path.display()),
            }
        })
    }

    /// The settings as TOML, every secret value masked.
    pub fn to_toml_masked(&self) -> String {
        let mut value = toml::Table::try_from(self).expect("settings serialize");
        mask(&mut value);
        toml::to_string(&value).expect("a table serializes")
    }
}

/// A duration as people write it: a number and a unit, `ms`, `s`, `m`, `h` or `d` (`500ms`,
/// `30s`, `7d`); in the file, the same as a string. At least one millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub std::time::Duration);

impl std::str::FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Dur, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || format!("{s:?}: expected a duration like 500ms, 30s, 5m, 2h or 7d");
        let n: u64 = num.parse().map_err(|_| bad())?;
        let ms = match unit.trim() {
            "ms" => Some(n),
            "s" => n.checked_mul(1000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            _ => return Err(bad()),
        }
        .ok_or_else(bad)?;
        if ms == 0 {
            return Err(format!("{s:?}: must be more than 0"));
        }
        Ok(Dur(std::time::Duration::from_millis(ms)))
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        for (unit, per) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms % per == 0 {
                return write!(f, "{}{unit}", ms / per);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The shortest secret accepted for signing upload locations.
pub const MIN_SECRET: usize = 16;

/// A storage setting, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// A directory.
    Fs(PathBuf),
    /// An S3-compatible bucket (bucket and prefix; the rest comes from the s3-* settings).
    S3(hoist_registry::S3Config),
}

impl Storage {
    /// `fs:DIR` or `s3://BUCKET[/PREFIX]`.
    pub fn parse(s: &str) -> anyhow::Result<Storage> {
        if let Some(dir) = s.strip_prefix("fs:") {
            if dir.is_empty() {
                bail!("storage {s:?}: expected fs:DIR, like fs:/var/lib/hoist");
            }
            return Ok(Storage::Fs(PathBuf::from(dir)));
        }
        if s.starts_with("s3://") {
            return Ok(Storage::S3(hoist_registry::S3Config::from_url(s)?));
        }
        bail!("storage {s:?}: expected fs:DIR or s3://BUCKET[/PREFIX]")
    }
}

impl Settings {
    /// The resolved storage, with the S3 settings filled in.
    pub fn storage(&self) -> anyhow::Result<Storage> {
        let st = self.storage.as_deref().expect("resolved");
        Ok(match Storage::parse(st)? {
            Storage::S3(c) => Storage::S3(hoist_registry::S3Config {
                endpoint: self.s3_endpoint.clone(),
                region: self.s3_region.clone(),
                access_key_id: self.s3_access_key_id.clone(),
                secret_access_key: self.s3_secret_access_key.clone(),
                allow_http: self.s3_allow_http.unwrap_or(false),
                timeout: self.s3_timeout.map(|t| t.0),
                ..c
            }),
            fs => fs,
        })
    }
}

/// The default storage root: `$XDG_DATA_HOME/hoist/registry`, else
/// `$HOME/.local/share/hoist/registry` (the XDG base directory rules).
pub fn default_root() -> anyhow::Result<PathBuf> {
    let xdg = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = match xdg {
        Some(x) => x,
        None => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local/share"),
            None => {
                bail!("no storage root: give --root DIR (neither XDG_DATA_HOME nor HOME is set)")
            }
        },
    };
    Ok(base.join("hoist/registry"))
}

/// Mask what could be a secret: values of keys that name one, and passwords in URLs.
fn mask(t: &mut toml::Table) {
    const SECRET_WORDS: [&str; 5] = ["secret", "password", "token", "credential", "private"];
    for (k, v) in t.iter_mut() {
        match v {
            toml::Value::Table(inner) => mask(inner),
            toml::Value::String(s) if SECRET_WORDS.iter().any(|w| k.contains(w)) => {
                *s = "***".to_string();
            }
            toml::Value::String(s) => {
                if let Some(m) = mask_url_password(s) {
                    *s = m;
                }
            }
            _ => {}
        }
    }
}

/// `scheme://user:password@host...` with the password as `***`; `None` when there is none.
fn mask_url_password(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (userinfo, _) = rest[..authority_end].rsplit_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    let after = &rest[userinfo.len()..];
    Some(format!("{scheme}://{user}:***{after}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("7d", 604_800_000),
        ] {
            let d: Dur = s.parse().unwrap();
            assert_eq!(d.0.as_millis(), ms, "{s}");
            assert_eq!(d.to_string(), s);
        }
        for bad in [
            "",
            "30",
            "s",
            "1.5s",
            "-1s",
            "0s",
            "10 parsecs",
            "99999999999999999d",
        ] {
            assert!(bad.parse::<Dur>().is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        let mut t: toml::Table = toml::from_str(
            r#"
            secret = "hunter2"
            storage = "s3://AKIA:wJalr@seaweed:8333/bucket"
            plain = "http://host:5000/x"
            [nested]
            aws-secret-access-key = "k"
            "#,
        )
        .unwrap();
        mask(&mut t);
        let s = toml::to_string(&t).unwrap();
        assert!(
            !s.contains("hunter2") && !s.contains("wJalr") && !s.contains("= \"k\""),
            "{s}"
        );
        assert!(s.contains("s3://AKIA:***@seaweed:8333/bucket"), "{s}");
        assert!(s.contains("http://host:5000/x"), "{s}");
    }
}
