//! Resolving refs with the real git against real repositories on disk, and
//! against loopback servers that answer badly or not at all.

mod support;

use spaceport_controller::build::GitCredentials;
use spaceport_controller::source::git::GitError;
use spaceport_controller::source::lsremote::{ResolveError, resolve};
use std::time::Duration;
use support::git;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(20);

/// A bare repository and a working clone that pushes to it.
struct Remote {
    _dir: tempfile::TempDir,
    work: std::path::PathBuf,
    url: String,
}

impl Remote {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("bare.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "bare.git"],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Remote {
            url: format!("file://{}", bare.display()),
            work,
            _dir: dir,
        }
    }

    fn commit_and_push(&self, text: &str) -> String {
        std::fs::write(self.work.join("README.md"), text).unwrap();
        git(&self.work, &["add", "."]);
        git(&self.work, &["commit", "-q", "-m", text]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

#[tokio::test]
async fn a_pushed_commit_is_resolved_and_a_newer_one_is_seen() {
    let remote = Remote::new();
    let first = remote.commit_and_push("one");
    assert_eq!(
        resolve(&remote.url, "main", None, LIMIT).await.unwrap(),
        first
    );
    let second = remote.commit_and_push("two");
    assert_ne!(first, second);
    assert_eq!(
        resolve(&remote.url, "main", None, LIMIT).await.unwrap(),
        second
    );
    assert_eq!(
        resolve(&remote.url, "refs/heads/main", None, LIMIT)
            .await
            .unwrap(),
        second
    );
}

#[tokio::test]
async fn an_annotated_tag_resolves_to_its_commit() {
    let remote = Remote::new();
    let tagged = remote.commit_and_push("one");
    git(&remote.work, &["tag", "-a", "v1", "-m", "release"]);
    git(&remote.work, &["push", "-q", "origin", "v1"]);
    remote.commit_and_push("two");
    assert_eq!(
        resolve(&remote.url, "v1", None, LIMIT).await.unwrap(),
        tagged
    );
    assert_eq!(
        resolve(&remote.url, "refs/tags/v1", None, LIMIT)
            .await
            .unwrap(),
        tagged
    );
}

#[tokio::test]
async fn a_missing_ref_and_a_missing_repository_are_clear_errors() {
    let remote = Remote::new();
    remote.commit_and_push("one");
    let err = resolve(&remote.url, "nope", None, LIMIT).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} has no branch or tag 'nope'", remote.url)
    );
    let gone = format!("{}-gone", remote.url);
    let err = resolve(&gone, "main", None, LIMIT).await.unwrap_err();
    let ResolveError::Git(GitError::Failed { message, .. }) = &err else {
        panic!("{err:?}");
    };
    assert!(
        message.contains("does not appear to be a git repository"),
        "{message}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("git ls-remote {gone} failed: "))
    );
}

#[tokio::test]
async fn hostile_urls_and_refs_are_refused_before_git_runs() {
    for url in ["--upload-pack=touch x", "ext::sh -c id", "fd::3"] {
        let err = resolve(url, "main", None, LIMIT).await.unwrap_err();
        assert!(
            matches!(err, ResolveError::Git(GitError::BadUrl(_))),
            "{url}: {err:?}"
        );
    }
    let err = resolve("https://git.example/a", "--exec=x", None, LIMIT)
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::BadRef(_)), "{err:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_at_the_limit() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("git://127.0.0.1:{port}/repo.git");
    let started = std::time::Instant::now();
    let err = resolve(&url, "main", None, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        err.to_string(),
        format!("git ls-remote {url} took longer than 1 s and was stopped")
    );
    hold.abort();
}

#[tokio::test]
async fn a_password_reaches_the_server_as_a_header_and_never_the_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let creds = GitCredentials {
        username: Some("bob".into()),
        password: Some("hunter2".into()),
        ssh_private_key: None,
        known_hosts: None,
    };
    let url = format!("http://127.0.0.1:{port}/org/repo.git");
    let err = resolve(&url, "main", Some(&creds), LIMIT)
        .await
        .unwrap_err();
    let request = server.await.unwrap();
    assert!(
        request.starts_with("GET /org/repo.git/info/refs?service=git-upload-pack "),
        "{request}"
    );
    // base64("bob:hunter2")
    assert!(
        request.contains("Authorization: Basic Ym9iOmh1bnRlcjI=\r\n"),
        "{request}"
    );
    let text = err.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("Ym9iOmh1bnRlcjI="),
        "{text}"
    );
    assert!(text.contains("403"), "{text}");
}
