//! How git reaches a project's repository.
//!
//! Git never uses anything of the Slipway host's own. Every git command runs with
//! an empty environment except `PATH`, `TMPDIR`, proxy settings and CA certificate
//! locations, `HOME` pointing at an empty private directory made for that command
//! (removed afterwards), no system or global configuration (`GIT_CONFIG_NOSYSTEM`,
//! `GIT_CONFIG_GLOBAL=/dev/null`), no credential helper (`credential.helper=`), no
//! prompt, no SSH agent and no SSH configuration or default keys (`ssh -F /dev/null
//! -o IdentitiesOnly=yes -o IdentityAgent=none -o IdentityFile=<key or /dev/null>`).
//!
//! The one way into a private repository is the project's own credential, kept
//! encrypted in its secrets and named in its settings ([`GitCredentials::for_project`]):
//!
//! - an **https token** (`token`, or `username:token`; the user name defaults to
//!   `x-access-token`), sent as HTTP Basic authorisation only to the repository's
//!   origin (`http.<origin>/.extraHeader`, passed through the environment, never on
//!   a command line), and never after a redirect;
//! - an **SSH deploy key** (a private key), written for one command to a `0600`
//!   file in that command's private directory.
//!
//! SSH host keys are checked against the host's `/etc/ssh/ssh_known_hosts` when it
//! lists the host, and otherwise accepted on first use (each command starts with an
//! empty list of its own).

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use slipway_model::project::Project;
use slipway_model::status::ErrorClass;
use tokio::process::Command;

use super::BuildFailure;
use crate::Store;

/// The user name sent with an https token that does not name one (GitHub's
/// convention; GitLab and Gitea accept any name with a token).
pub const DEFAULT_TOKEN_USERNAME: &str = "x-access-token";

/// Environment variables passed through to git from Slipway's own environment.
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// What git may authenticate with: nothing, or the project's own credential.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum GitCredentials {
    /// Public repositories (and, for administrators, repositories on this host) only.
    #[default]
    None,
    /// HTTP Basic authorisation sent to `origin` (`https://host[:port]`) only.
    HttpsToken { origin: String, username: String, token: String },
    /// A private SSH key.
    SshKey(String),
}

impl fmt::Debug for GitCredentials {
    /// Never shows a token or key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitCredentials::None => f.write_str("GitCredentials::None"),
            GitCredentials::HttpsToken { origin, username, .. } => {
                write!(f, "GitCredentials::HttpsToken {{ origin: {origin:?}, username: {username:?}, token: \"…\" }}")
            }
            GitCredentials::SshKey(_) => f.write_str("GitCredentials::SshKey(\"…\")"),
        }
    }
}

impl GitCredentials {
    /// An https token for `repo_url` from a secret's value (`token` or `username:token`).
    /// Refused for URLs that are not https (plain http only to a loopback host).
    pub fn https_token(repo_url: &str, value: &str) -> Result<GitCredentials, BuildFailure> {
        let origin = token_origin(repo_url).ok_or_else(|| {
            auth_error(format!(
                "an https token is only sent to an https:// repository (or http:// on this host's loopback); \
                 `{}` is not one: use an SSH deploy key for ssh URLs",
                super::workspace::redact_url(repo_url)
            ))
        })?;
        let value = value.trim();
        let (username, token) = match value.split_once(':') {
            Some((user, token)) if !user.is_empty() && !token.is_empty() => (user.to_string(), token.to_string()),
            _ => (DEFAULT_TOKEN_USERNAME.to_string(), value.to_string()),
        };
        Ok(GitCredentials::HttpsToken { origin, username, token })
    }

    /// The credential named in the project's settings, read from its secrets.
    /// A named secret that is not set, or a store that cannot open secrets, is an
    /// [`ErrorClass::AuthError`] saying what to do.
    pub async fn for_project(store: &Store, project: &Project) -> Result<GitCredentials, BuildFailure> {
        let (name, is_token) = match (&project.git_token_secret, &project.git_ssh_key_secret) {
            (Some(name), _) => (name, true),
            (None, Some(name)) => (name, false),
            (None, None) => return Ok(GitCredentials::None),
        };
        let sb = store.secret_box().ok_or_else(|| {
            auth_error("the project's git credential is in its secrets, but this server has no secret key to open them")
        })?;
        let value = store
            .secret_value(sb, &project.id, None, name)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, project = %project.id, "reading the git credential failed");
                BuildFailure::new(ErrorClass::AuthError, "reading the project's git credential failed (see the server log)")
            })?
            .ok_or_else(|| {
                auth_error(format!(
                    "the project's git {} is the secret `{name}`, which is not set in project {}: set it with \
                     `slipway secrets set {name} --project {}`",
                    if is_token { "token" } else { "deploy key" },
                    project.slug,
                    project.slug
                ))
            })?;
        if is_token {
            GitCredentials::https_token(&project.repo_url, &value)
        } else {
            Ok(GitCredentials::SshKey(value))
        }
    }
}

fn auth_error(message: impl Into<String>) -> BuildFailure {
    BuildFailure::new(ErrorClass::AuthError, message)
}

/// `scheme://host[:port]` of an https URL (or an http URL to a loopback host),
/// without any user name or password.
fn token_origin(repo_url: &str) -> Option<String> {
    let (scheme, rest) = repo_url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_ascii_lowercase();
    if host_port.is_empty() {
        return None;
    }
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match scheme.as_str() {
        "https" => Some(format!("https://{host_port}")),
        "http" if loopback => Some(format!("http://{host_port}")),
        _ => None,
    }
}

/// The private environment of one git command: its own empty `HOME` (holding the
/// deploy key, if any), removed when dropped.
pub(super) struct GitEnv {
    home: PathBuf,
    key_file: Option<PathBuf>,
}

impl GitEnv {
    /// Makes the private directory (mode 0700) and, for an SSH key, the key file (0600).
    pub(super) fn prepare(credentials: &GitCredentials) -> io::Result<GitEnv> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let base = std::env::temp_dir();
        let mut attempts = 0;
        let home = loop {
            let path = base.join(format!("slipway-git-home-{}-{:016x}", std::process::id(), rand::random::<u64>()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => break path,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
                Err(e) => return Err(e),
            }
        };
        let mut env = GitEnv { home, key_file: None };
        if let GitCredentials::SshKey(key) = credentials {
            let path = env.home.join("deploy_key");
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
            file.write_all(key.trim().as_bytes())?;
            // ssh refuses a private key file without a final newline.
            file.write_all(b"\n")?;
            env.key_file = Some(path);
        }
        Ok(env)
    }

    /// The command `GIT_SSH_COMMAND` runs: only the deploy key (or none), no agent,
    /// no configuration, never a prompt.
    pub(super) fn ssh_command(&self) -> String {
        let key = self.key_file.as_deref().unwrap_or(Path::new("/dev/null"));
        format!(
            "ssh -F /dev/null -o IdentitiesOnly=yes -o IdentityAgent=none -o IdentityFile={} \
             -o BatchMode=yes -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no \
             -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={}",
            shell_quote(&key.to_string_lossy()),
            shell_quote(&self.home.join("known_hosts").to_string_lossy()),
        )
    }

    /// Gives `cmd` this environment and nothing else of Slipway's, plus the https
    /// token's header for its origin.
    pub(super) fn apply(&self, cmd: &mut Command, credentials: &GitCredentials) {
        cmd.env_clear();
        for name in PASSED_THROUGH {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        if std::env::var_os("PATH").is_none() {
            cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        }
        cmd.args(["-c", "credential.helper=", "-c", "protocol.ext.allow=never"])
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "/bin/true")
            .env("SSH_ASKPASS", "/bin/true")
            .env("GIT_SSH_VARIANT", "ssh")
            .env("GIT_SSH_COMMAND", self.ssh_command())
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C");
        if let GitCredentials::HttpsToken { origin, username, token } = credentials {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{token}"));
            // Through the environment (not `-c`), so the token is not on a command line.
            cmd.env("GIT_CONFIG_COUNT", "2")
                .env("GIT_CONFIG_KEY_0", format!("http.{origin}/.extraHeader"))
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}"))
                .env("GIT_CONFIG_KEY_1", "http.followRedirects")
                .env("GIT_CONFIG_VALUE_1", "false");
        }
    }
}

impl Drop for GitEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// `s` in single quotes for `sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_the_https_origin_of_the_repository() {
        let c = GitCredentials::https_token("https://someone@Git.Example:8443/org/app.git", "tok").unwrap();
        assert_eq!(
            c,
            GitCredentials::HttpsToken { origin: "https://git.example:8443".into(), username: DEFAULT_TOKEN_USERNAME.into(), token: "tok".into() }
        );
        let c = GitCredentials::https_token("https://git.example/app.git", "bot:tok").unwrap();
        assert!(matches!(c, GitCredentials::HttpsToken { ref username, .. } if username == "bot"));
        assert!(GitCredentials::https_token("http://127.0.0.1:9/app.git", "tok").is_ok());
        for refused in ["http://git.example/app.git", "ssh://git@git.example/app.git", "git@git.example:app.git", "/srv/app"] {
            let e = GitCredentials::https_token(refused, "tok").unwrap_err();
            assert_eq!(e.class, ErrorClass::AuthError, "{refused}");
        }
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let c = GitCredentials::https_token("https://git.example/a.git", "bot:hunter2-token").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", GitCredentials::SshKey("PRIVATE KEY BODY".into())).contains("BODY"));
    }

    #[test]
    fn the_ssh_command_uses_only_the_deploy_key_or_none() {
        let none = GitEnv::prepare(&GitCredentials::None).unwrap();
        let cmd = none.ssh_command();
        assert!(cmd.contains("-F /dev/null") && cmd.contains("IdentitiesOnly=yes") && cmd.contains("IdentityAgent=none"), "{cmd}");
        assert!(cmd.contains("IdentityFile='/dev/null'"), "{cmd}");

        let keyed = GitEnv::prepare(&GitCredentials::SshKey("-----BEGIN KEY-----\nabc\n-----END KEY-----".into())).unwrap();
        let key = keyed.key_file.clone().unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(std::fs::read_to_string(&key).unwrap().ends_with("-----END KEY-----\n"));
        assert!(keyed.ssh_command().contains(&format!("IdentityFile='{}'", key.display())));
        let home = keyed.home.clone();
        drop(keyed);
        assert!(!home.exists(), "the private directory is removed afterwards");
    }
}
