//! Git smart HTTP end to end: a small axum server over a real repo store,
//! driven by the real `git` command line.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use spaceport_runtime::plan::SpaceId;
use spaceport_runtime::repos::{
    ENV_LOGS_URL, ENV_SPACE_URL, PushContext, PushOutcome, RepoKind, RepoStore,
    basic_auth_password, basic_auth_user, info_refs, parse_repo_id, receive_pack, unauthorized,
    upload_pack,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

const TOKEN: &str = "tok-3f9a";

#[derive(Clone)]
struct Hub {
    store: Arc<RepoStore>,
    pushes: mpsc::UnboundedSender<PushOutcome>,
    gzip_upload_requests: Arc<AtomicUsize>,
}

impl Hub {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        basic_auth_password(headers).as_deref() == Some(TOKEN)
    }
}

async fn refs(
    kind: RepoKind,
    hub: Hub,
    (owner, name): (String, String),
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    if !hub.authorized(&headers) {
        return unauthorized();
    }
    let id = match parse_repo_id(&owner, &name) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let service = query.get("service").map_or("", String::as_str);
    info_refs(&hub.store, kind, &id, service, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn fetch(
    kind: RepoKind,
    hub: Hub,
    (owner, name): (String, String),
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !hub.authorized(&headers) {
        return unauthorized();
    }
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        hub.gzip_upload_requests.fetch_add(1, Ordering::SeqCst);
    }
    let id = match parse_repo_id(&owner, &name) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    upload_pack(&hub.store, kind, &id, &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn push(
    kind: RepoKind,
    hub: Hub,
    (owner, name): (String, String),
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !hub.authorized(&headers) {
        return unauthorized();
    }
    let id = match parse_repo_id(&owner, &name) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let user = basic_auth_user(&headers).unwrap_or_else(|| "someone".into());
    let context = PushContext::new(user)
        .env(
            ENV_SPACE_URL,
            format!("http://{}-{}.spaces.test/", id.owner(), id.name()),
        )
        .env(
            ENV_LOGS_URL,
            format!("http://hub.test/spaces/{}/{}/logs", id.owner(), id.name()),
        );
    match receive_pack(&hub.store, kind, &id, &headers, body, context).await {
        Ok((response, watch)) => {
            let pushes = hub.pushes.clone();
            tokio::spawn(async move {
                let _ = pushes.send(watch.await);
            });
            response
        }
        Err(e) => e.into_response(),
    }
}

fn routes_for(kind: RepoKind, prefix: &str) -> Router<Hub> {
    Router::new()
        .route(
            &format!("{prefix}/{{owner}}/{{name}}/info/refs"),
            get(
                move |State(hub): State<Hub>,
                      Path(p): Path<(String, String)>,
                      Query(q): Query<HashMap<String, String>>,
                      headers: HeaderMap| refs(kind, hub, p, q, headers),
            ),
        )
        .route(
            &format!("{prefix}/{{owner}}/{{name}}/git-upload-pack"),
            post(
                move |State(hub): State<Hub>,
                      Path(p): Path<(String, String)>,
                      headers: HeaderMap,
                      body: Body| fetch(kind, hub, p, headers, body),
            ),
        )
        .route(
            &format!("{prefix}/{{owner}}/{{name}}/git-receive-pack"),
            post(
                move |State(hub): State<Hub>,
                      Path(p): Path<(String, String)>,
                      headers: HeaderMap,
                      body: Body| push(kind, hub, p, headers, body),
            ),
        )
}

struct Server {
    _root: tempfile::TempDir,
    work: tempfile::TempDir,
    store: Arc<RepoStore>,
    port: u16,
    pushes: Mutex<mpsc::UnboundedReceiver<PushOutcome>>,
    gzip_upload_requests: Arc<AtomicUsize>,
}

impl Server {
    async fn start(max_push_bytes: Option<u64>) -> Server {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_test_writer()
            .try_init();
        let root = tempfile::tempdir().unwrap();
        let mut store = RepoStore::open(root.path().join("repos")).unwrap();
        if let Some(max) = max_push_bytes {
            store = store.with_max_push_bytes(max);
        }
        let store = Arc::new(store);
        let (tx, rx) = mpsc::unbounded_channel();
        let gzip = Arc::new(AtomicUsize::new(0));
        let hub = Hub {
            store: store.clone(),
            pushes: tx,
            gzip_upload_requests: gzip.clone(),
        };
        let app = Router::new()
            .merge(routes_for(RepoKind::Space, "/spaces"))
            .merge(routes_for(RepoKind::Dataset, "/datasets"))
            .merge(routes_for(RepoKind::Model, ""))
            .with_state(hub);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(work.path().join("home")).unwrap();
        Server {
            _root: root,
            work,
            store,
            port,
            pushes: Mutex::new(rx),
            gzip_upload_requests: gzip,
        }
    }

    fn url(&self, path: &str, token: &str) -> String {
        format!("http://alice:{token}@127.0.0.1:{}{path}", self.port)
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Runs the git client with no user config, no credential helper and
    /// no prompts.
    async fn git(&self, dir: &std::path::Path, args: &[&str]) -> GitRun {
        let out = tokio::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env("GIT_AUTHOR_NAME", "Alice")
            .env("GIT_AUTHOR_EMAIL", "alice@example.com")
            .env("GIT_COMMITTER_NAME", "Alice")
            .env("GIT_COMMITTER_EMAIL", "alice@example.com")
            .output()
            .await
            .unwrap();
        GitRun {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn git_ok(&self, dir: &std::path::Path, args: &[&str]) -> GitRun {
        let run = self.git(dir, args).await;
        assert!(
            run.ok,
            "git {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    /// A new local repo on `main` with the given files, committed.
    async fn local_repo(&self, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let dir = self.dir(name);
        std::fs::create_dir_all(&dir).unwrap();
        self.git_ok(&dir, &["init", "-q", "-b", "main"]).await;
        self.commit(&dir, files, "first").await;
        dir
    }

    async fn commit(
        &self,
        dir: &std::path::Path,
        files: &[(&str, &[u8])],
        message: &str,
    ) -> String {
        for (path, data) in files {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, data).unwrap();
        }
        self.git_ok(dir, &["add", "-A"]).await;
        self.git_ok(dir, &["commit", "-q", "-m", message]).await;
        self.rev(dir, "HEAD").await
    }

    async fn rev(&self, dir: &std::path::Path, rev: &str) -> String {
        self.git_ok(dir, &["rev-parse", rev])
            .await
            .stdout
            .trim()
            .to_owned()
    }

    async fn next_push(&self) -> PushOutcome {
        tokio::time::timeout(Duration::from_secs(30), self.pushes.lock().await.recv())
            .await
            .expect("a push outcome within 30 s")
            .expect("the channel is open")
    }

    /// A raw HTTP/1.1 GET: the status and the whole answer.
    async fn http_get(&self, path: &str, basic: Option<&str>) -> (u16, String) {
        self.http("GET", path, basic, "", "").await
    }

    /// A raw HTTP/1.1 request with extra header lines: the status and the
    /// whole answer.
    async fn http(
        &self,
        method: &str,
        path: &str,
        basic: Option<&str>,
        extra: &str,
        body: &str,
    ) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let auth = basic
            .map(|b| format!("Authorization: Basic {b}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}{extra}Connection: close\r\n\r\n{body}"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }
}

#[derive(Debug)]
struct GitRun {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// All files under `dir` but `.git`, with their contents.
fn tree(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Incompressible bytes from a fixed seed.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn space(id: &str) -> SpaceId {
    SpaceId::parse(id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_a_space_then_clone_fast_forward_and_refusals() {
    let s = Server::start(None).await;
    let id = space("alice/demo");
    s.store.create(RepoKind::Space, &id).await.unwrap();
    let local = s
        .local_repo(
            "local",
            &[
                ("README.md", b"---\nsdk: static\n---\n# demo\n"),
                ("index.html", b"<h1>hello</h1>\n"),
                ("assets/deep/data.bin", &noise(70_000, 7)),
            ],
        )
        .await;
    let first = s.rev(&local, "HEAD").await;
    let url = s.url("/spaces/alice/demo", TOKEN);

    // First push into the empty repo: banner, watch and store agree.
    let run = s.git_ok(&local, &["push", &url, "main"]).await;
    assert!(
        run.stderr.contains("remote: spaceport: build queued"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("remote: spaceport: main is now at {first}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("remote: spaceport: build logs: http://hub.test/spaces/alice/demo/logs"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("remote: spaceport: your Space: http://alice-demo.spaces.test/"),
        "{}",
        run.stderr
    );
    let outcome = s.next_push().await;
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.updates.len(), 1, "{outcome:?}");
    let main = outcome.update_of("refs/heads/main").unwrap();
    assert_eq!(main.old, None);
    assert_eq!(main.new.as_deref(), Some(first.as_str()));
    assert_eq!(outcome.main_moved_to(), Some(first.as_str()));
    assert_eq!(
        s.store.head(RepoKind::Space, &id, "main").await.unwrap(),
        Some(first.clone())
    );

    // Clone back (with the .git suffix git users often add): same files.
    let clone_url = s.url("/spaces/alice/demo.git", TOKEN);
    s.git_ok(s.work.path(), &["clone", "-q", &clone_url, "cloned"])
        .await;
    assert_eq!(tree(&s.dir("cloned")), tree(&local));
    assert_eq!(s.rev(&s.dir("cloned"), "HEAD").await, first);

    // The store's view of the commit.
    let files = s
        .store
        .list_files(RepoKind::Space, &id, "main")
        .await
        .unwrap();
    assert_eq!(
        files,
        vec![
            ("README.md".to_owned(), 27),
            ("assets/deep/data.bin".to_owned(), 70_000),
            ("index.html".to_owned(), 15),
        ]
    );
    let exported = s.dir("exported");
    let stats = s
        .store
        .export(RepoKind::Space, &id, &first, &exported)
        .await
        .unwrap();
    assert_eq!(stats.files, 3);
    assert_eq!(tree(&exported), tree(&local));

    // A fast-forward push is reported with both ends.
    let second = s
        .commit(
            &local,
            &[("index.html", b"<h1>hello again</h1>\n")],
            "second",
        )
        .await;
    let run = s.git_ok(&local, &["push", &url, "main"]).await;
    assert!(run.stderr.contains(&second), "{}", run.stderr);
    let outcome = s.next_push().await;
    let main = outcome.update_of("refs/heads/main").unwrap();
    assert_eq!(main.old.as_deref(), Some(first.as_str()));
    assert_eq!(main.new.as_deref(), Some(second.as_str()));
    assert_eq!(
        s.store.resolve(RepoKind::Space, &id, "main").await.unwrap(),
        second
    );

    // Rewritten history, force-pushed: refused, main stays.
    s.git_ok(&local, &["commit", "-q", "--amend", "-m", "rewritten"])
        .await;
    let run = s.git(&local, &["push", "--force", &url, "main"]).await;
    assert!(!run.ok, "a force push went through:\n{}", run.stderr);
    assert!(run.stderr.contains("non-fast-forward"), "{}", run.stderr);
    let outcome = s.next_push().await;
    assert!(outcome.updates.is_empty(), "{outcome:?}");
    assert_eq!(
        s.store.head(RepoKind::Space, &id, "main").await.unwrap(),
        Some(second.clone())
    );

    // Deleting main: refused, main stays.
    let run = s.git(&local, &["push", &url, ":main"]).await;
    assert!(!run.ok, "main was deleted:\n{}", run.stderr);
    assert!(run.stderr.contains("deletion prohibited"), "{}", run.stderr);
    let outcome = s.next_push().await;
    assert!(outcome.updates.is_empty(), "{outcome:?}");
    assert_eq!(
        s.store.head(RepoKind::Space, &id, "main").await.unwrap(),
        Some(second)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_over_the_cap_is_refused_and_changes_nothing() {
    let s = Server::start(Some(2_000_000)).await;
    let id = space("alice/big");
    s.store.create(RepoKind::Space, &id).await.unwrap();
    let local = s.local_repo("big", &[("README.md", b"# big\n")]).await;
    let url = s.url("/spaces/alice/big", TOKEN);
    s.git_ok(&local, &["push", &url, "main"]).await;
    let small = s.next_push().await.main_moved_to().unwrap().to_owned();

    s.commit(&local, &[("weights.bin", &noise(5_000_000, 42))], "big")
        .await;
    let run = s.git(&local, &["push", &url, "main"]).await;
    assert!(!run.ok, "a 5 MB push passed a 2 MB cap:\n{}", run.stderr);
    assert!(
        run.stderr
            .contains("remote: fatal: pack exceeds maximum allowed size"),
        "no clear message:\n{}",
        run.stderr
    );
    let outcome = s.next_push().await;
    assert!(outcome.updates.is_empty(), "{outcome:?}");
    assert_eq!(
        s.store.head(RepoKind::Space, &id, "main").await.unwrap(),
        Some(small)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_gets_401_and_git_fails() {
    let s = Server::start(None).await;
    let id = space("alice/secret");
    s.store.create(RepoKind::Space, &id).await.unwrap();

    let (status, answer) = s
        .http_get(
            "/spaces/alice/secret/info/refs?service=git-upload-pack",
            None,
        )
        .await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"spaceport\""),
        "{answer}"
    );

    let run = s
        .git(
            s.work.path(),
            &[
                "clone",
                "-q",
                &s.url("/spaces/alice/secret", "wrong"),
                "nope",
            ],
        )
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("Authentication failed"),
        "{}",
        run.stderr
    );
    assert!(!s.dir("nope").join(".git").exists());

    let local = s.local_repo("l", &[("a.txt", b"a")]).await;
    let run = s
        .git(
            &local,
            &["push", &s.url("/spaces/alice/secret", "wrong"), "main"],
        )
        .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("Authentication failed"),
        "{}",
        run.stderr
    );
    assert_eq!(
        s.store.head(RepoKind::Space, &id, "main").await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_answers() {
    use base64::Engine;
    let s = Server::start(None).await;
    s.store
        .create(RepoKind::Space, &space("alice/demo"))
        .await
        .unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{TOKEN}"));

    let (status, answer) = s
        .http_get(
            "/spaces/alice/demo/info/refs?service=git-upload-archive",
            Some(&basic),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.contains("unknown git service 'git-upload-archive'"),
        "{answer}"
    );

    let (status, answer) = s
        .http_get("/spaces/alice/demo/info/refs", Some(&basic))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("smart HTTP"), "{answer}");

    let (status, answer) = s
        .http_get(
            "/spaces/alice/missing/info/refs?service=git-upload-pack",
            Some(&basic),
        )
        .await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("create it first"), "{answer}");

    let (status, answer) = s
        .http_get(
            "/spaces/alice/demo/info/refs?service=git-receive-pack",
            Some(&basic),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/x-git-receive-pack-advertisement"),
        "{answer}"
    );
    assert!(lower.contains("cache-control: no-cache"), "{answer}");
    assert!(
        answer.contains("001f# service=git-receive-pack\n0000"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_and_models_use_the_same_path() {
    let s = Server::start(None).await;
    for (kind, prefix, name) in [
        (RepoKind::Dataset, "/datasets", "bob/table"),
        (RepoKind::Model, "", "bob/weights"),
    ] {
        let id = space(name);
        s.store.create(kind, &id).await.unwrap();
        let dir_name = name.replace('/', "-");
        let local = s
            .local_repo(
                &dir_name,
                &[("data.csv", b"a,b\n1,2\n"), ("README.md", b"# d\n")],
            )
            .await;
        let head = s.rev(&local, "HEAD").await;
        let url = s.url(&format!("{prefix}/{name}"), TOKEN);
        let run = s.git_ok(&local, &["push", &url, "main"]).await;
        assert!(
            !run.stderr.contains("build queued"),
            "a {kind} push announced a build:\n{}",
            run.stderr
        );
        let outcome = s.next_push().await;
        assert_eq!(outcome.main_moved_to(), Some(head.as_str()), "{kind}");
        assert_eq!(s.store.head(kind, &id, "main").await.unwrap(), Some(head));
        let clone = format!("{dir_name}-clone");
        s.git_ok(s.work.path(), &["clone", "-q", &url, &clone])
            .await;
        assert_eq!(tree(&s.dir(&clone)), tree(&local), "{kind}");
    }
    // Same names, other kinds: separate repos.
    assert!(
        !s.store
            .exists(RepoKind::Space, &space("bob/table"))
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_fetch_requests_are_decoded() {
    let s = Server::start(None).await;
    let id = space("alice/branches");
    s.store.create(RepoKind::Space, &id).await.unwrap();
    let local = s.local_repo("branches", &[("README.md", b"# b\n")]).await;
    // Many refs at distinct commits make the clone's want list longer than
    // 1 KiB, which git sends gzip-compressed.
    for i in 0..40 {
        s.git_ok(&local, &["checkout", "-q", "-b", &format!("b{i}"), "main"])
            .await;
        s.commit(
            &local,
            &[(&format!("f{i}.txt"), format!("{i}\n").as_bytes())],
            &format!("c{i}"),
        )
        .await;
    }
    s.git_ok(&local, &["checkout", "-q", "main"]).await;
    let url = s.url("/spaces/alice/branches", TOKEN);
    s.git_ok(&local, &["push", "-q", &url, "refs/heads/*:refs/heads/*"])
        .await;
    let outcome = s.next_push().await;
    assert_eq!(outcome.updates.len(), 41, "{outcome:?}");

    let before = s.gzip_upload_requests.load(Ordering::SeqCst);
    s.git_ok(s.work.path(), &["clone", "-q", "--mirror", &url, "mirror"])
        .await;
    assert!(
        s.gzip_upload_requests.load(Ordering::SeqCst) > before,
        "git sent no gzip request; the test proves nothing"
    );
    let branches = s
        .git_ok(
            &s.dir("mirror"),
            &[
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                "refs/heads",
            ],
        )
        .await
        .stdout;
    let local_branches = s
        .git_ok(
            &local,
            &[
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                "refs/heads",
            ],
        )
        .await
        .stdout;
    assert_eq!(branches, local_branches);
    assert_eq!(branches.lines().count(), 41);
}
