//! Running the system git against a remote a Space names: the URL checked
//! first (only https, http, ssh, git and file; never an option, never a
//! helper transport such as `ext::`), credentials handed over out of the URL
//! and out of argv (an `Authorization` header scoped to the remote's host
//! through `GIT_CONFIG_*`, or an ssh key in a private temporary file), no
//! prompt, no user or system git config, and a time limit after which git is
//! killed.
//!
//! It only runs git; what to fetch and what the output means is decided by
//! the callers ([`super::lsremote`], the image builder).

use crate::build::GitCredentials;
use base64::Engine;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tempfile::TempDir;
use tokio::process::Command;

/// Why a git command gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error(
        "'{0}' is not a git URL spaceport fetches from: use https://, http://, ssh://, git://, file:// or user@host:path"
    )]
    BadUrl(String),
    #[error("failed to run git: {0}")]
    Spawn(String),
    #[error("git {what} {url} took longer than {secs} s and was stopped")]
    Timeout {
        what: String,
        url: String,
        secs: u64,
    },
    #[error("git {what} {url} failed: {message}")]
    Failed {
        what: String,
        url: String,
        message: String,
    },
}

/// Checks that `url` is a remote git may be pointed at. Returns the scheme
/// (`ssh` for the `user@host:path` form).
pub fn check_url(url: &str) -> Result<&'static str, GitError> {
    let bad = || GitError::BadUrl(redact(url));
    if url.is_empty()
        || url.len() > 2048
        || url.starts_with('-')
        || url.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(bad());
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => "https",
            "http" => "http",
            "ssh" => "ssh",
            "git" => "git",
            "file" => "file",
            _ => return Err(bad()),
        };
        let authority = rest.split('/').next().unwrap_or("");
        if scheme != "file" && (authority.is_empty() || option_like(authority)) {
            return Err(bad());
        }
        return Ok(scheme);
    }
    // scp-like ssh: [user@]host:path, where the host has no slash
    // (`name::address` is a remote helper, never an ssh host).
    match url.split_once(':') {
        Some((host, path))
            if !host.is_empty()
                && !host.contains('/')
                && !path.is_empty()
                && !path.starts_with(':')
                && !option_like(host) =>
        {
            Ok("ssh")
        }
        _ => Err(bad()),
    }
}

/// Whether a user or host part could pass for a command-line option of
/// ssh (`-oProxyCommand=...`).
fn option_like(authority: &str) -> bool {
    authority.split(['@', ':']).any(|p| p.starts_with('-'))
}

/// The URL with any password in it replaced, fit for logs and errors.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let user = rest[..at].split(':').next().unwrap_or("");
            return format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
        }
    }
    url.to_owned()
}

/// A prepared git environment for one remote; holds the private files (an
/// ssh key) until dropped.
#[derive(Debug)]
pub struct Git {
    url: String,
    env: Vec<(String, String)>,
    secrets: Vec<String>,
    _private: Option<TempDir>,
}

impl Git {
    /// Prepares git for `url` with optional credentials.
    pub fn new(url: &str, credentials: Option<&GitCredentials>) -> Result<Self, GitError> {
        let scheme = check_url(url)?;
        let mut env: Vec<(String, String)> = vec![
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GIT_ASKPASS".into(), "true".into()),
            ("SSH_ASKPASS".into(), "true".into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
            (
                "GIT_ALLOW_PROTOCOL".into(),
                "https:http:ssh:git:file".into(),
            ),
            ("LC_ALL".into(), "C".into()),
        ];
        let mut config: Vec<(String, String)> = Vec::new();
        let mut secrets = Vec::new();
        let mut private = None;
        let mut ssh = "ssh -o BatchMode=yes".to_owned();
        if let Some(c) = credentials {
            if let (Some(password), true) = (&c.password, matches!(scheme, "https" | "http")) {
                let user = c.username.clone().unwrap_or_default();
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                config.push((
                    format!("http.{}.extraHeader", origin(url)),
                    format!("Authorization: Basic {basic}"),
                ));
                secrets.push(password.clone());
                secrets.push(basic);
            }
            if let (Some(key), "ssh") = (&c.ssh_private_key, scheme) {
                let dir = tempfile::Builder::new()
                    .prefix("spaceport-git-")
                    .tempdir()
                    .map_err(|e| {
                        GitError::Spawn(format!("failed to make a private folder: {e}"))
                    })?;
                let key_path = dir.path().join("id");
                write_private(&key_path, key)
                    .map_err(|e| GitError::Spawn(format!("failed to write the ssh key: {e}")))?;
                let known = dir.path().join("known_hosts");
                // Given host keys are checked strictly; without them a host
                // is trusted on first sight (each fetch starts afresh).
                let checking = match &c.known_hosts {
                    Some(lines) => {
                        write_private(&known, lines).map_err(|e| {
                            GitError::Spawn(format!("failed to write known_hosts: {e}"))
                        })?;
                        "yes"
                    }
                    None => "accept-new",
                };
                ssh = format!(
                    "ssh -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking={checking} -o UserKnownHostsFile={} -i {}",
                    shell_quote(&known),
                    shell_quote(&key_path)
                );
                private = Some(dir);
            }
        }
        env.push(("GIT_SSH_COMMAND".into(), ssh));
        env.push(("GIT_CONFIG_COUNT".into(), config.len().to_string()));
        for (i, (k, v)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), k));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), v));
        }
        Ok(Git {
            url: url.to_owned(),
            env,
            secrets,
            _private: private,
        })
    }

    /// The remote's URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `git ARGS` (in `dir` when given) and returns its stdout. `what`
    /// names the step in errors; stderr becomes the error's message with
    /// every secret masked.
    pub async fn run(
        &self,
        what: &str,
        dir: Option<&Path>,
        args: &[&str],
        limit: Duration,
    ) -> Result<String, GitError> {
        let mut cmd = Command::new("git");
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "HOME",
                std::env::var_os("HOME").unwrap_or_else(|| std::env::temp_dir().into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| GitError::Spawn(e.to_string()))?;
        let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| GitError::Spawn(e.to_string()))?,
            Err(_) => {
                return Err(GitError::Timeout {
                    what: what.into(),
                    url: redact(&self.url),
                    secs: limit.as_secs(),
                });
            }
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
            .collect::<Vec<_>>()
            .join("; ");
        let message = if message.is_empty() {
            format!("git exited with {}", output.status)
        } else {
            message
        };
        Err(GitError::Failed {
            what: what.into(),
            url: redact(&self.url),
            message: self.mask(&message),
        })
    }

    fn mask(&self, text: &str) -> String {
        self.secrets
            .iter()
            .filter(|s| s.len() >= 3)
            .fold(text.to_owned(), |t, s| t.replace(s.as_str(), "***"))
    }
}

/// `scheme://host[:port]/` of an http(s) URL, the scope of its header.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{}://{}/", scheme.to_ascii_lowercase(), host)
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(value.as_bytes())?;
    if !value.ends_with('\n') {
        f.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_schemes_and_the_scp_form_are_accepted() {
        for ok in [
            "https://git.example/a/b.git",
            "HTTP://git.example/a",
            "ssh://git@git.example/a",
            "git://git.example/a",
            "file:///srv/repo.git",
            "git@github.com:org/repo.git",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-uhelp",
            "--upload-pack=touch x",
            "ext::sh -c touch% x",
            "ext::sh",
            "fd::17",
            "ssh://-oProxyCommand=touch%20x/repo",
            "ssh://git@-oProxyCommand=x/repo",
            "-oProxyCommand=x:repo",
            "git@-oProxyCommand=x:repo",
            "ftp://host/x",
            "https://",
            "https:///path",
            "/srv/repo.git",
            "https://host/a\nb",
            "https://host/a b",
        ] {
            assert!(
                matches!(check_url(bad), Err(GitError::BadUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            redact("https://bob:hunter2@git.example/a.git"),
            "https://bob:***@git.example/a.git"
        );
        assert_eq!(redact("git@host:a/b"), "git@host:a/b");
    }

    #[test]
    fn a_password_goes_into_a_host_scoped_header_not_the_url_or_argv() {
        let creds = GitCredentials {
            username: Some("bob".into()),
            password: Some("hunter2".into()),
            ..GitCredentials::default()
        };
        let git = Git::new("https://Git.Example:8443/a/b.git", Some(&creds)).unwrap();
        let get = |k: &str| git.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("GIT_CONFIG_COUNT").as_deref(), Some("1"));
        assert_eq!(
            get("GIT_CONFIG_KEY_0").as_deref(),
            Some("http.https://Git.Example:8443/.extraHeader")
        );
        assert_eq!(
            get("GIT_CONFIG_VALUE_0").as_deref(),
            Some("Authorization: Basic Ym9iOmh1bnRlcjI=")
        );
        assert_eq!(git.mask("x hunter2 y"), "x *** y");
        assert!(!git.url().contains("hunter2"));
    }

    #[test]
    fn an_ssh_key_lands_in_a_private_file_named_by_the_ssh_command() {
        use std::os::unix::fs::PermissionsExt;
        let creds = GitCredentials {
            ssh_private_key: Some("-----BEGIN KEY-----\nabc\n-----END KEY-----".into()),
            ..GitCredentials::default()
        };
        let git = Git::new("git@host:org/repo.git", Some(&creds)).unwrap();
        let dir = git._private.as_ref().unwrap().path().to_owned();
        let key = dir.join("id");
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let ssh = &git
            .env
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .unwrap()
            .1;
        assert!(ssh.contains(&format!("-i '{}'", key.display())), "{ssh}");
        assert!(ssh.contains("StrictHostKeyChecking=accept-new"), "{ssh}");
        let pinned = GitCredentials {
            known_hosts: Some("host ssh-ed25519 AAAAC3Nza\n".into()),
            ..creds.clone()
        };
        let strict = Git::new("git@host:org/repo.git", Some(&pinned)).unwrap();
        let ssh = &strict
            .env
            .iter()
            .find(|(k, _)| k == "GIT_SSH_COMMAND")
            .unwrap()
            .1;
        assert!(ssh.contains("StrictHostKeyChecking=yes"), "{ssh}");
        let known = strict._private.as_ref().unwrap().path().join("known_hosts");
        assert_eq!(
            std::fs::read_to_string(known).unwrap(),
            "host ssh-ed25519 AAAAC3Nza\n"
        );
        drop(git);
        assert!(!dir.exists(), "the key is removed with the environment");
    }
}
