//! Git's smart HTTP protocol over the repo store.
//!
//! Each request runs the system git directly: `git upload-pack` or
//! `git receive-pack` with `--stateless-rpc` (and `--advertise-refs` for
//! `info/refs`), its stdin fed from the request body and its stdout streamed
//! back as the response body. This was chosen over `git http-backend` (CGI)
//! because there is then no CGI header block to parse and re-emit, the
//! status, headers and error bodies are ours (plain-text messages the git
//! client shows), the environment is exactly the store's clean one plus the
//! hook variables, and the body caps and gzip decoding sit in our code where
//! they can be tested. The protocol itself stays git's: nothing of the pack
//! format is reimplemented.
//!
//! The hub mounts, for each repo kind (`/spaces/{owner}/{name}`,
//! `/{owner}/{name}`, `/datasets/{owner}/{name}`; the name may end in
//! `.git`, see [`parse_repo_id`]):
//!
//! - `GET  .../info/refs?service=git-upload-pack|git-receive-pack` -> [`info_refs`]
//! - `POST .../git-upload-pack` -> [`upload_pack`]
//! - `POST .../git-receive-pack` -> [`receive_pack`]
//!
//! It authenticates first (see [`basic_auth_password`], [`unauthorized`]).

use super::RepoKind;
use super::body::{Pumped, pump};
use super::error::{RepoError, Result};
use super::hooks::{ENV_PUSH_REPORT, ENV_PUSHER};
use super::store::RepoStore;
use crate::plan::SpaceId;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{ChildStderr, ChildStdout};
use tokio::sync::oneshot;

/// Room in a push request for the ref commands, on top of the pack.
const PUSH_COMMANDS_ALLOWANCE: u64 = 1 << 20;
/// Once git has refused a request, this much more of its body is still
/// read and dropped, so the client gets to read git's message.
const DRAIN_ALLOWANCE: u64 = 64 << 20;
/// Size of the reads from git's stdout.
const READ_CHUNK: usize = 64 * 1024;

/// The two services of git's smart HTTP protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GitService {
    /// Fetch and clone.
    UploadPack,
    /// Push.
    ReceivePack,
}

impl GitService {
    /// Parses the `service` query parameter (`git-upload-pack`,
    /// `git-receive-pack`).
    pub fn parse(service: &str) -> Result<Self> {
        match service {
            "git-upload-pack" => Ok(GitService::UploadPack),
            "git-receive-pack" => Ok(GitService::ReceivePack),
            "" => Err(RepoError::BadRequest(
                "only git's smart HTTP protocol is served; use git 1.6.6 or later".into(),
            )),
            other => Err(RepoError::UnknownService(other.to_owned())),
        }
    }

    /// `git-upload-pack` or `git-receive-pack`.
    pub fn name(self) -> &'static str {
        match self {
            GitService::UploadPack => "git-upload-pack",
            GitService::ReceivePack => "git-receive-pack",
        }
    }

    fn subcommand(self) -> &'static str {
        match self {
            GitService::UploadPack => "upload-pack",
            GitService::ReceivePack => "receive-pack",
        }
    }
}

/// Parses the `{owner}` and `{name}` path segments of a git URL into an
/// id, dropping a `.git` suffix from the name (`git clone .../demo.git`).
pub fn parse_repo_id(owner: &str, name: &str) -> Result<SpaceId> {
    let name = name.strip_suffix(".git").unwrap_or(name);
    let text = format!("{owner}/{name}");
    SpaceId::parse(&text).map_err(|_| RepoError::InvalidName(text))
}

/// Answers `GET .../info/refs?service=<service>`: the ref advertisement,
/// preceded by the `# service=...` line (left out for protocol v2, as git
/// does). `headers` are the request's: a `Git-Protocol` header is passed to
/// git, so clients get protocol v2 when they ask for it.
pub async fn info_refs(
    store: &RepoStore,
    kind: RepoKind,
    id: &SpaceId,
    service: &str,
    headers: &HeaderMap,
) -> Result<Response> {
    let service = GitService::parse(service)?;
    let repo = store.existing(kind, id)?;
    let protocol = git_protocol(service, headers)?;
    let mut cmd = store.command();
    cmd.arg(service.subcommand())
        .arg("--stateless-rpc")
        .arg("--advertise-refs")
        .arg(&repo);
    if let Some(protocol) = &protocol {
        cmd.env("GIT_PROTOCOL", protocol);
    }
    let out = super::store::run(cmd, service.subcommand()).await?;
    let mut body = Vec::with_capacity(out.stdout.len() + 64);
    if !protocol.as_deref().is_some_and(|p| p.contains("version=2")) {
        let line = format!("# service={}\n", service.name());
        body.extend_from_slice(format!("{:04x}", line.len() + 4).as_bytes());
        body.extend_from_slice(line.as_bytes());
        body.extend_from_slice(b"0000");
    }
    body.extend_from_slice(&out.stdout);
    let mut response = Response::new(Body::from(body));
    set_headers(
        response.headers_mut(),
        &format!("application/x-{}-advertisement", service.name()),
    );
    Ok(response)
}

/// Answers `POST .../git-upload-pack` (fetch, clone): the request body
/// (gzip or plain) streamed into `git upload-pack --stateless-rpc`, its
/// output streamed back.
pub async fn upload_pack(
    store: &RepoStore,
    kind: RepoKind,
    id: &SpaceId,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let (response, _) = rpc(store, kind, id, GitService::UploadPack, headers, body, None).await?;
    Ok(response)
}

/// Answers `POST .../git-receive-pack` (push) like [`upload_pack`], with
/// the push's context for the hooks. The [`PushWatch`] resolves once git
/// has finished, with what the push changed. When this returns `Err`,
/// git did not run and nothing changed.
pub async fn receive_pack(
    store: &RepoStore,
    kind: RepoKind,
    id: &SpaceId,
    headers: &HeaderMap,
    body: Body,
    push: PushContext,
) -> Result<(Response, PushWatch)> {
    let (response, watch) = rpc(
        store,
        kind,
        id,
        GitService::ReceivePack,
        headers,
        body,
        Some(push),
    )
    .await?;
    Ok((response, watch.expect("receive-pack always has a watch")))
}

/// Who pushes, and what the hooks should know (see [`PushContext::env`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushContext {
    pub pusher: String,
    pub env: Vec<(String, String)>,
}

impl PushContext {
    pub fn new(pusher: impl Into<String>) -> Self {
        PushContext {
            pusher: pusher.into(),
            env: Vec::new(),
        }
    }

    /// Adds an environment variable for the hooks. Names must start with
    /// `SPACEPORT_` (for example [`super::ENV_SPACE_URL`] and
    /// [`super::ENV_LOGS_URL`], which the post-receive banner shows).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn check(&self) -> Result<()> {
        for (key, value) in &self.env {
            let ok = key.starts_with("SPACEPORT_")
                && key
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && key != ENV_PUSH_REPORT
                && !value.contains('\0');
            if !ok {
                return Err(RepoError::BadRequest(format!(
                    "hook variable '{key}' must be SPACEPORT_ and capitals, digits or '_'"
                )));
            }
        }
        Ok(())
    }
}

/// One ref a push changed. `old` is `None` for a created ref, `new` is
/// `None` for a deleted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// What a push did, once `git receive-pack` has exited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushOutcome {
    /// git exited cleanly. Rejected ref updates (non-fast-forward, too
    /// large) are reported to the client in the protocol and may still
    /// leave this true: look at `updates` to know what moved.
    pub success: bool,
    /// The refs that moved, as git's post-receive hook saw them.
    pub updates: Vec<RefUpdate>,
    /// Why the push could not run to its end, when it could not.
    pub error: Option<String>,
}

impl PushOutcome {
    /// The update of one ref (`refs/heads/main`), if this push moved it.
    pub fn update_of(&self, name: &str) -> Option<&RefUpdate> {
        self.updates.iter().find(|u| u.name == name)
    }

    /// The new commit of `refs/heads/main`, when this push moved it (and
    /// did not delete it): for a Space, the commit to build.
    pub fn main_moved_to(&self) -> Option<&str> {
        self.update_of("refs/heads/main")?.new.as_deref()
    }
}

/// Resolves to the [`PushOutcome`] once `git receive-pack` has exited
/// (after the client got its answer). Dropping it is fine: the push goes
/// on regardless.
#[derive(Debug)]
pub struct PushWatch {
    rx: oneshot::Receiver<PushOutcome>,
}

impl Future for PushWatch {
    type Output = PushOutcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<PushOutcome> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| PushOutcome {
                success: false,
                updates: Vec::new(),
                error: Some("the push was abandoned before git finished".into()),
            })
        })
    }
}

/// The password (the access token) of an `Authorization: Basic` header,
/// or the token of `Authorization: Bearer`. `None` when there is none.
pub fn basic_auth_password(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    let secret = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':')?.1.to_owned()
    } else if scheme.eq_ignore_ascii_case("bearer") {
        rest.to_owned()
    } else {
        return None;
    };
    (!secret.is_empty()).then_some(secret)
}

/// The user name of an `Authorization: Basic` header.
pub fn basic_auth_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split_once(':')?.0;
    (!user.is_empty()).then(|| user.to_owned())
}

/// A 401 answer with `WWW-Authenticate: Basic realm="spaceport"`, which
/// makes git ask for (or use) credentials and retry.
pub fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "authentication required: use your user name and an access token as the password\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"spaceport\""),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn set_headers(headers: &mut HeaderMap, content_type: &str) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("a valid content type"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=0, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::EXPIRES,
        HeaderValue::from_static("Fri, 01 Jan 1980 00:00:00 GMT"),
    );
}

/// The `Git-Protocol` header, for upload-pack only (receive-pack speaks
/// v0 whatever is asked). Only the characters git itself uses pass.
fn git_protocol(service: GitService, headers: &HeaderMap) -> Result<Option<String>> {
    if service != GitService::UploadPack {
        return Ok(None);
    }
    let Some(value) = headers.get("git-protocol") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| {
            t.len() <= 256
                && t.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'=' | b':' | b'.' | b'-' | b'_')
                })
        })
        .ok_or_else(|| RepoError::BadRequest("malformed Git-Protocol header".into()))?;
    Ok(Some(text.to_owned()))
}

fn request_is_gzip(headers: &HeaderMap) -> Result<bool> {
    match headers.get(header::CONTENT_ENCODING) {
        None => Ok(false),
        Some(value) => match value.to_str().map(|v| v.trim().to_ascii_lowercase()) {
            Ok(v) if v == "gzip" || v == "x-gzip" => Ok(true),
            Ok(v) if v.is_empty() || v == "identity" => Ok(false),
            _ => Err(RepoError::UnsupportedMediaType(format!(
                "content encoding {value:?} (only gzip is understood)"
            ))),
        },
    }
}

async fn rpc(
    store: &RepoStore,
    kind: RepoKind,
    id: &SpaceId,
    service: GitService,
    headers: &HeaderMap,
    body: Body,
    push: Option<PushContext>,
) -> Result<(Response, Option<PushWatch>)> {
    let repo = store.existing(kind, id)?;
    let expected = format!("application/x-{}-request", service.name());
    if let Some(ct) = headers.get(header::CONTENT_TYPE)
        && ct.to_str().ok().map(str::trim) != Some(expected.as_str())
    {
        return Err(RepoError::UnsupportedMediaType(
            String::from_utf8_lossy(ct.as_bytes()).into_owned(),
        ));
    }
    let gzip = request_is_gzip(headers)?;
    let cap = match service {
        GitService::UploadPack => store.max_fetch_request_bytes(),
        GitService::ReceivePack => store
            .max_push_bytes()
            .saturating_add(PUSH_COMMANDS_ALLOWANCE),
    };
    if !gzip {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap) {
            return Err(RepoError::TooLarge { limit: cap });
        }
    }
    let protocol = git_protocol(service, headers)?;

    let mut cmd = store.command();
    let mut report = None;
    if let Some(push) = &push {
        push.check()?;
        // The store's current cap wins over the one written at creation.
        cmd.arg("-c")
            .arg(format!("receive.maxInputSize={}", store.max_push_bytes()));
        let file = tempfile::Builder::new()
            .prefix("push-")
            .tempfile_in(store.tmp_dir())
            .map_err(|e| RepoError::io("create a file in", store.tmp_dir(), e))?;
        cmd.env(ENV_PUSH_REPORT, file.path())
            .env(ENV_PUSHER, &push.pusher)
            .env("GIT_COMMITTER_NAME", &push.pusher)
            .env("GIT_COMMITTER_EMAIL", format!("{}@spaceport", push.pusher));
        for (key, value) in &push.env {
            cmd.env(key, value);
        }
        report = Some(file);
    }
    cmd.arg(service.subcommand())
        .arg("--stateless-rpc")
        .arg(&repo)
        .stdin(Stdio::piped());
    if let Some(protocol) = &protocol {
        cmd.env("GIT_PROTOCOL", protocol);
    }
    let mut child = cmd.spawn().map_err(|source| RepoError::Spawn {
        command: service.subcommand().into(),
        source,
    })?;
    let stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let label = format!("{}/{}/{}", kind.plural(), id.owner(), id.name());
    tokio::spawn(log_stderr(stderr, service, label.clone()));

    let (pump_tx, mut pump_rx) = oneshot::channel::<Result<Pumped>>();
    let stream = body.into_data_stream();
    tokio::spawn(async move {
        let drain_cap = cap.saturating_add(DRAIN_ALLOWANCE);
        let _ = pump_tx.send(pump(stream, gzip, cap, drain_cap, stdin).await);
    });

    let (watch_tx, watch_rx) = oneshot::channel();
    let watched = push.is_some();
    tokio::spawn(async move {
        let status = child.wait().await;
        let success = status.as_ref().is_ok_and(|s| s.success());
        match &status {
            Ok(s) if s.success() => {
                tracing::debug!(repo = %label, "git {} done", service.subcommand())
            }
            Ok(s) => tracing::warn!(repo = %label, "git {} exited with {s}", service.subcommand()),
            Err(e) => {
                tracing::warn!(repo = %label, "failed to wait for git {}: {e}", service.subcommand())
            }
        }
        if watched {
            let updates = match &report {
                Some(file) => read_report(file.path()).await,
                None => Vec::new(),
            };
            for u in &updates {
                tracing::info!(repo = %label, r#ref = %u.name, old = ?u.old, new = ?u.new, "push moved a ref");
            }
            let _ = watch_tx.send(PushOutcome {
                success,
                updates,
                error: status.err().map(|e| e.to_string()),
            });
        }
        drop(report);
    });
    let watch = watched.then_some(PushWatch { rx: watch_rx });

    // Hold the answer's headers until git says something, so a request
    // refused while it is still coming in (too large, bad gzip) gets a
    // proper HTTP error instead of a cut-off stream.
    let mut first = BytesMut::with_capacity(READ_CHUNK);
    let mut pump_done = false;
    let read = loop {
        tokio::select! {
            read = stdout.read_buf(&mut first) => break read,
            pumped = &mut pump_rx, if !pump_done => {
                pump_done = true;
                if let Ok(Err(e)) = pumped {
                    tracing::warn!(%kind, owner = id.owner(), name = id.name(), "git request refused: {e}");
                    return Ok((e.into_response(), watch));
                }
            }
        }
    };
    match read {
        Ok(0) => {
            // git had nothing to say. That is normal for the client's probe
            // (a lone flush packet, sent before a large push to check
            // credentials) and means success unless the body was refused.
            let pumped = if pump_done {
                Ok(Pumped::default())
            } else {
                pump_rx.await.unwrap_or(Ok(Pumped::default()))
            };
            match pumped {
                Ok(_) => {
                    let mut response = Response::new(Body::empty());
                    set_headers(
                        response.headers_mut(),
                        &format!("application/x-{}-result", service.name()),
                    );
                    Ok((response, watch))
                }
                Err(e) => Ok((e.into_response(), watch)),
            }
        }
        Ok(_) => {
            let body = Body::from_stream(output_stream(first.freeze(), stdout));
            let mut response = Response::new(body);
            set_headers(
                response.headers_mut(),
                &format!("application/x-{}-result", service.name()),
            );
            Ok((response, watch))
        }
        Err(e) => Err(RepoError::Spawn {
            command: service.subcommand().into(),
            source: e,
        }),
    }
}

/// git's stdout as a body stream: the first chunk already read, then the
/// rest as it comes.
fn output_stream(
    first: Bytes,
    stdout: ChildStdout,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    futures_util::stream::unfold((Some(first), Some(stdout)), |(first, stdout)| async move {
        if let Some(first) = first {
            return Some((Ok(first), (None, stdout)));
        }
        let mut stdout = stdout?;
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        match stdout.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), (None, Some(stdout)))),
            Err(e) => Some((Err(e), (None, None))),
        }
    })
}

async fn log_stderr(stderr: ChildStderr, service: GitService, repo: String) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.starts_with("fatal") || line.starts_with("error") {
            tracing::warn!(%repo, "git {}: {line}", service.subcommand());
        } else {
            tracing::debug!(%repo, "git {}: {line}", service.subcommand());
        }
    }
}

/// Reads the hook's `<old> <new> <ref>` lines.
async fn read_report(path: &Path) -> Vec<RefUpdate> {
    let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
    parse_report(&text)
}

fn parse_report(text: &str) -> Vec<RefUpdate> {
    let id = |s: &str| (!s.bytes().all(|b| b == b'0')).then(|| s.to_owned());
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let (old, new, name) = (parts.next()?, parts.next()?, parts.next()?);
            Some(RefUpdate {
                name: name.to_owned(),
                old: id(old),
                new: id(new),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn passwords_and_tokens_are_read() {
        let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cr:et");
        assert_eq!(
            basic_auth_password(&auth(&format!("Basic {basic}"))).as_deref(),
            Some("s3cr:et")
        );
        assert_eq!(
            basic_auth_user(&auth(&format!("basic {basic}"))).as_deref(),
            Some("alice")
        );
        assert_eq!(
            basic_auth_password(&auth("Bearer hf_abc")).as_deref(),
            Some("hf_abc")
        );
        assert_eq!(basic_auth_password(&auth("Basic !!!")), None);
        let no_password = base64::engine::general_purpose::STANDARD.encode("alice:");
        assert_eq!(
            basic_auth_password(&auth(&format!("Basic {no_password}"))),
            None
        );
        assert_eq!(basic_auth_password(&auth("Digest x")), None);
        assert_eq!(basic_auth_password(&HeaderMap::new()), None);
    }

    #[test]
    fn unauthorized_asks_for_basic_credentials() {
        let r = unauthorized();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"spaceport\""
        );
    }

    #[test]
    fn repo_ids_drop_the_git_suffix() {
        let id = parse_repo_id("alice", "demo.git").unwrap();
        assert_eq!((id.owner(), id.name()), ("alice", "demo"));
        assert_eq!(parse_repo_id("alice", "demo").unwrap(), id);
        assert!(parse_repo_id("..", "demo").is_err());
        assert!(parse_repo_id("alice", ".git").is_err());
    }

    #[test]
    fn services_are_checked() {
        assert_eq!(
            GitService::parse("git-upload-pack").unwrap(),
            GitService::UploadPack
        );
        assert_eq!(
            GitService::parse("git-receive-pack").unwrap(),
            GitService::ReceivePack
        );
        let err = GitService::parse("git-upload-archive").unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        assert!(GitService::parse("").is_err());
    }

    #[test]
    fn reports_are_parsed() {
        let zero = "0".repeat(40);
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let text = format!(
            "{zero} {a} refs/heads/main\n{a} {b} refs/heads/dev\n{b} {zero} refs/tags/v1\n"
        );
        let updates = parse_report(&text);
        assert_eq!(updates.len(), 3);
        assert_eq!(
            updates[0],
            RefUpdate {
                name: "refs/heads/main".into(),
                old: None,
                new: Some(a.clone())
            }
        );
        assert_eq!(updates[2].new, None);
        let outcome = PushOutcome {
            success: true,
            updates,
            error: None,
        };
        assert_eq!(outcome.main_moved_to(), Some(a.as_str()));
    }

    #[test]
    fn hook_variables_are_checked() {
        assert!(
            PushContext::new("a")
                .env("SPACEPORT_SPACE_URL", "http://x")
                .check()
                .is_ok()
        );
        assert!(PushContext::new("a").env("GIT_DIR", "/").check().is_err());
        assert!(
            PushContext::new("a")
                .env("SPACEPORT_PUSH_REPORT", "/x")
                .check()
                .is_err()
        );
        assert!(
            PushContext::new("a")
                .env("SPACEPORT_x", "y")
                .check()
                .is_err()
        );
    }
}
