//! `hoist auth login|logout|get`: manage registry credentials in docker's config.json
//! (or the credential helper it names).

use std::io::{Read, Write};

use anyhow::{Context, bail};
use hoist_remote::{Credential, DockerConfig, Keychain};

use crate::options::RemoteArgs;

/// `hoist auth` verbs.
#[derive(clap::Subcommand, Debug)]
pub enum Verb {
    /// Check credentials against a registry and store them.
    Login {
        /// The registry, host[:port].
        registry: String,
        /// The user name.
        #[arg(long, short)]
        username: String,
        /// The password (prefer --password-stdin: arguments are visible to other users).
        #[arg(long, short, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Store without checking them against the registry.
        #[arg(long)]
        no_check: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Forget the credentials for a registry.
    Logout {
        /// The registry, host[:port].
        registry: String,
    },
    /// Print the credentials for a registry as a docker credential helper would
    /// (`{"Username": ..., "Secret": ...}`).
    Get {
        /// The registry, host[:port].
        registry: String,
    },
}

pub fn run(verb: &Verb) -> anyhow::Result<()> {
    let config = DockerConfig::new()?;
    match verb {
        Verb::Login {
            registry,
            username,
            password,
            password_stdin,
            no_check,
            remote,
        } => {
            let password = match (password, password_stdin) {
                (Some(p), _) => p.clone(),
                (None, true) => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("reading the password from stdin")?;
                    s.trim_end_matches(['\n', '\r']).to_string()
                }
                (None, false) => bail!("give the password with --password-stdin (or --password)"),
            };
            if password.is_empty() {
                bail!("empty password");
            }
            if !no_check {
                let cred = Credential::Basic {
                    username: username.clone(),
                    password: password.clone(),
                };
                let mut b = hoist_remote::Client::builder()
                    .retries(remote.retries)
                    .keychain(std::sync::Arc::new(
                        hoist_remote::StaticKeychain::new().with(registry.clone(), cred),
                    ));
                for r in &remote.insecure {
                    b = b.insecure(r.clone());
                }
                let client = b.build()?;
                hoist_remote::Runtime::new()
                    .block_on(client.check_auth(registry, None))?
                    .with_context(|| format!("logging in to {registry}"))?;
            }
            config.login(registry, username, &password)?;
            writeln!(std::io::stderr(), "logged in to {registry}")?;
        }
        Verb::Logout { registry } => {
            if config.logout(registry)? {
                writeln!(std::io::stderr(), "logged out of {registry}")?;
            } else {
                writeln!(std::io::stderr(), "no credentials stored for {registry}")?;
            }
        }
        Verb::Get { registry } => {
            let (user, secret) = match config.resolve(registry)? {
                Credential::Basic { username, password } => (username, password),
                Credential::IdentityToken(t) => ("<token>".to_string(), t),
                Credential::Anonymous => bail!("no credentials stored for {registry}"),
            };
            let v = serde_json::json!({"Username": user, "Secret": secret});
            writeln!(std::io::stdout(), "{v}")?;
        }
    }
    Ok(())
}
