//! `hoist auth login|logout|get` (and `hoist login|logout`): manage registry credentials
//! in docker's config.json (or the credential helper it names). Reading credentials also
//! looks at the containers tools' auth.json ([`hoist_remote::AuthFiles`]).

use std::io::{Read, Write};

use anyhow::{Context, bail};
use hoist_remote::{AuthFiles, Credential, DockerConfig, Keychain};

use crate::options::RemoteArgs;

/// Arguments of `hoist auth login` / `hoist login`.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The registry, host[:port].
    pub registry: String,
    /// The user name.
    #[arg(long, short)]
    pub username: String,
    /// The password (prefer --password-stdin: arguments are visible to other users).
    #[arg(long, short, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// Store without checking them against the registry.
    #[arg(long)]
    pub no_check: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Arguments of `hoist auth logout` / `hoist logout`.
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// The registry, host[:port].
    pub registry: String,
}

/// `hoist auth` verbs.
#[derive(clap::Subcommand, Debug)]
pub enum Verb {
    /// Check credentials against a registry and store them in docker's config.json.
    Login(LoginArgs),
    /// Forget the credentials for a registry (in docker's config.json).
    Logout(LogoutArgs),
    /// Print the credentials hoist would use for a registry, as a docker credential
    /// helper would (`{"Username": ..., "Secret": ...}`).
    Get {
        /// The registry, host[:port].
        registry: String,
    },
}

/// Run an auth verb.
pub fn run(verb: &Verb) -> anyhow::Result<()> {
    match verb {
        Verb::Login(a) => login(a),
        Verb::Logout(a) => logout(a),
        Verb::Get { registry } => {
            let (user, secret) = match AuthFiles::new().resolve(registry)? {
                Credential::Basic { username, password } => (username, password),
                Credential::IdentityToken(t) => ("<token>".to_string(), t),
                Credential::Anonymous => bail!("no credentials stored for {registry}"),
            };
            let v = serde_json::json!({"Username": user, "Secret": secret});
            writeln!(std::io::stdout(), "{v}")?;
            Ok(())
        }
    }
}

/// `hoist login`.
pub fn login(a: &LoginArgs) -> anyhow::Result<()> {
    let config = DockerConfig::new()?;
    let password = match (&a.password, a.password_stdin) {
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
    if !a.no_check {
        let cred = Credential::Basic {
            username: a.username.clone(),
            password: password.clone(),
        };
        let keychain = hoist_remote::StaticKeychain::new().with(a.registry.clone(), cred);
        let ctx = a
            .remote
            .apply(hoist_ops::Context::builder().keychain(std::sync::Arc::new(keychain)))
            .build()?;
        let client = ctx.client()?;
        hoist_remote::Runtime::new()
            .block_on(client.check_auth(&a.registry, None))?
            .with_context(|| format!("logging in to {}", a.registry))?;
    }
    config.login(&a.registry, &a.username, &password)?;
    writeln!(std::io::stderr(), "logged in to {}", a.registry)?;
    Ok(())
}

/// `hoist logout`.
pub fn logout(a: &LogoutArgs) -> anyhow::Result<()> {
    let config = DockerConfig::new()?;
    if config.logout(&a.registry)? {
        writeln!(std::io::stderr(), "logged out of {}", a.registry)?;
    } else {
        writeln!(
            std::io::stderr(),
            "no credentials stored for {}",
            a.registry
        )?;
    }
    Ok(())
}
