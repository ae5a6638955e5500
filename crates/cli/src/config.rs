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

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::logging;

/// Where the registry listens unless told otherwise: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";
/// Log filter of `hoist serve` unless told otherwise: includes the access log.
pub const DEFAULT_LOG: &str = "info";

/// The settings of the registry, each optional until [`Settings::resolve`] fills defaults.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Address to listen on (host:port; port 0 picks a free one) [default: 127.0.0.1:5000].
    #[arg(long, env = "HOIST_ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    /// Storage directory, created if needed [default: $XDG_DATA_HOME/hoist/registry, else
    /// ~/.local/share/hoist/registry].
    #[arg(long, env = "HOIST_ROOT", value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
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
            htpasswd: self.htpasswd.or(file.htpasswd),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            read_only: self.read_only.or(file.read_only),
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
            log_format: self.log_format.or(file.log_format),
            log: self.log.or(file.log),
        }
    }

    /// Every setting given a value: the defaults filled in, contradictions refused.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("tls-cert and tls-key go together: give both or neither");
        }
        Ok(Settings {
            addr: Some(
                self.addr
                    .unwrap_or_else(|| DEFAULT_ADDR.parse().expect("valid default")),
            ),
            root: Some(match self.root {
                Some(r) => r,
                None => default_root()?,
            }),
            read_only: Some(self.read_only.unwrap_or(false)),
            log_format: Some(self.log_format.unwrap_or_default()),
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
