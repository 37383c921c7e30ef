//! A running `spaceport up` for end-to-end tests: the real binary, a data
//! dir of its own, a free port, the real git client, and HTTP helpers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "hf_e2e_admin_token_0123456789abcdef";

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fails under CI=true, skips (returning false) otherwise.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if ci() {
        panic!("CI=true and {what}");
    }
    eprintln!("skipped: {what}");
    false
}

pub fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn image_exists(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub const BASE_IMAGE: &str = "spaceport/python-base:bookworm";

/// Docker, and the local Python base image the test Spaces build FROM.
pub fn docker_ready() -> bool {
    require(
        docker_available(),
        "no Docker engine answers (docker info failed)",
    ) && require(
        image_exists(BASE_IMAGE),
        &format!(
            "the base image {BASE_IMAGE} is missing (runtime/scripts/base-image.sh builds it)"
        ),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `spaceport up` process.
pub struct Hub {
    pub data: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    pub log: PathBuf,
    extra: Vec<String>,
    _keep: Option<tempfile::TempDir>,
}

impl Hub {
    /// Starts a hub on a fresh data dir.
    pub async fn start(extra: &[&str]) -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut hub = Hub {
            data,
            port: free_port(),
            child: None,
            log: dir.path().join("hub.log"),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            _keep: Some(dir),
        };
        hub.spawn().await;
        hub
    }

    /// A handle for making requests to a hub that another handle runs.
    pub fn probe(port: u16) -> Hub {
        Hub {
            data: PathBuf::new(),
            port,
            child: None,
            log: PathBuf::new(),
            extra: Vec::new(),
            _keep: None,
        }
    }

    /// Starts the process (again) on the same data dir and port.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_spaceport"))
            .arg("up")
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(if self.extra.iter().any(|a| a == "--examples") {
                &[][..]
            } else {
                &["--examples", "none"][..]
            })
            .args(&self.extra)
            .env("SPACEPORT_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SPACEPORT_LOG", "info,spaceport_runtime=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("failed to start spaceport up");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _, _)) = self.get("/healthz", None).await {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("spaceport up exited with {status}:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "spaceport up did not answer within 60 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, and waits for the exit: what the hub runs as processes
    /// stops with it.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Processes working under the hub's data dir (Spaces it runs as
    /// processes), by pid.
    pub fn processes_under_data(&self) -> Vec<u32> {
        let Ok(data) = std::fs::canonicalize(&self.data) else {
            return Vec::new();
        };
        std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                    .filter(|pid| {
                        std::fs::read_link(format!("/proc/{pid}/cwd"))
                            .is_ok_and(|cwd| cwd.starts_with(&data))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A Space's own host, as the proxy routes it.
    pub fn host_of(&self, space: &str) -> String {
        let label: String = space
            .replace('/', "-")
            .chars()
            .map(|c| {
                if c == '_' || c == '.' {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        format!("{label}.localhost:{}", self.port)
    }

    /// Any request. Returns status, headers, body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        host: Option<&str>,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, http::HeaderMap, Vec<u8>), String> {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base()));
        if let Some(h) = host {
            // Space requests look like a browser's page loads (they count as visits).
            req = req
                .header("host", h)
                .header("accept", "text/html,*/*;q=0.8");
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(60), client.request(req))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
            .await
            .map_err(|_| "body timed out".to_string())?
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        Ok((status, headers, body))
    }

    /// A request to the hub with extra headers; status, headers, body text.
    #[allow(dead_code, reason = "not every test binary sends its own headers")]
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, http::HeaderMap, String) {
        self.send_with(method, path, headers, Vec::new()).await
    }

    /// [`Hub::request_with`] with a body.
    #[allow(dead_code, reason = "not every test binary sends a body")]
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, http::HeaderMap, String) {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<(u16, http::HeaderMap, Vec<u8>), String> {
        self.request("GET", path, None, token, None).await
    }

    /// An API call with the admin token; the JSON answer.
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_as(ADMIN_TOKEN, method, path, body).await
    }

    pub async fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, bytes) = self
            .request(
                method,
                path,
                None,
                Some(token),
                body.map(|b| b.to_string().into_bytes()),
            )
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json)
    }

    /// A page of a Space through the proxy, by its host.
    pub async fn visit(&self, space: &str, path: &str) -> Result<(u16, String), String> {
        let (s, _, b) = self
            .request("GET", path, Some(&self.host_of(space)), None, None)
            .await?;
        Ok((s, String::from_utf8_lossy(&b).into_owned()))
    }

    pub async fn create_space(&self, space: &str, sdk: &str) {
        let (owner, name) = space.split_once('/').unwrap();
        let (status, body) = self
            .api(
                "POST",
                "/api/repos/create",
                Some(serde_json::json!({"name": name, "organization": owner, "type": "space", "sdk": sdk})),
            )
            .await;
        assert_eq!(status, 200, "create {space}: {body}");
    }

    pub async fn stage(&self, space: &str) -> (String, Value) {
        let (status, body) = self
            .api("GET", &format!("/api/spaces/{space}/runtime"), None)
            .await;
        assert_eq!(status, 200, "runtime of {space}: {body}");
        (body["stage"].as_str().unwrap_or_default().to_owned(), body)
    }

    /// Waits for one of `stages`; panics with the logs on any other end.
    pub async fn wait_stage(&self, space: &str, stages: &[&str], limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (stage, body) = self.stage(space).await;
            if stages.contains(&stage.as_str()) {
                return body;
            }
            if Instant::now() > deadline {
                let (_, build) = self.logs_of(space, "build").await;
                panic!(
                    "{space} is {stage}, not {stages:?}, after {limit:?}: {body}\nbuild log:\n{build}\nhub log:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The log lines the SSE endpoint has so far (reads for a moment).
    pub async fn logs_of(&self, space: &str, which: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return (0, String::new());
        };
        let req = format!(
            "GET /api/spaces/{space}/logs/{which} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
        );
        let _ = s.write_all(req.as_bytes()).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(1500), s.read_to_end(&mut buf)).await;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Removes the containers and images of the given Spaces.
pub fn remove_spaces(spaces: &[&str]) {
    for space in spaces {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=dev.spaceport.space={space}"),
            ])
            .output();
        if let Ok(out) = out {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
}

/// The real git client, with no user config and no prompts.
pub struct Git {
    pub home: tempfile::TempDir,
}

impl Git {
    pub fn new() -> Git {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join(".gitconfig"),
            "[user]\n\tname = Test\n\temail = test@example.org\n[init]\n\tdefaultBranch = main\n",
        )
        .unwrap();
        Git { home }
    }

    /// Runs git in `dir`; returns (success, stdout + stderr).
    pub fn run(&self, dir: &Path, args: &[&str]) -> (bool, String) {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("HOME", self.home.path())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_ASKPASS")
            .env_remove("SSH_ASKPASS")
            .output()
            .expect("git runs");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    pub fn ok(&self, dir: &Path, args: &[&str]) -> String {
        let (ok, text) = self.run(dir, args);
        assert!(ok, "git {args:?} failed:\n{text}");
        text
    }

    /// A work tree with `files` committed, remote `origin` set.
    pub fn repo(&self, remote: &str, files: &Path) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(files, dir.path());
        self.ok(dir.path(), &["init", "-q", "-b", "main"]);
        self.ok(dir.path(), &["remote", "add", "origin", remote]);
        self.ok(dir.path(), &["add", "-A"]);
        self.ok(dir.path(), &["commit", "-q", "-m", "first"]);
        dir
    }

    pub fn commit_all(&self, dir: &Path, message: &str) {
        self.ok(dir, &["add", "-A"]);
        self.ok(dir, &["commit", "-q", "-m", message]);
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hub")
        .join(name)
}

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

impl Hub {
    /// The git URL of a Space with credentials in it.
    pub fn git_url(&self, space: &str, token: &str) -> String {
        format!(
            "http://hf_user:{token}@127.0.0.1:{}/spaces/{space}",
            self.port
        )
    }
}

/// Signs in through the web UI's form with `token`, as a browser does (the
/// pre-session cookie and its CSRF field, then the POST); returns the
/// `Cookie` header value of the session it made.
#[allow(dead_code, reason = "not every test binary signs in")]
pub async fn sign_in(hub: &Hub, token: &str) -> String {
    fn set_cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
        headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                let (k, val) = v.split(';').next()?.split_once('=')?;
                (k.trim() == name).then(|| val.to_owned())
            })
    }
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let page = client
        .get(format!("{}/signin", hub.base()).parse().unwrap())
        .await
        .expect("the sign-in page answers");
    let (pre_name, pre) = ["spaceport_presession", "__Host-spaceport_presession"]
        .into_iter()
        .find_map(|n| Some((n, set_cookie(page.headers(), n)?)))
        .expect("a pre-session cookie");
    let html =
        String::from_utf8_lossy(&page.into_body().collect().await.unwrap().to_bytes()).into_owned();
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a CSRF field") + marker.len();
    let csrf = &html[at..at + html[at..].find('"').unwrap()];
    let req = http::Request::post(format!("{}/signin", hub.base()))
        .header("cookie", format!("{pre_name}={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!(
            "csrf={csrf}&next=/&token={token}"
        ))))
        .unwrap();
    let done = client.request(req).await.expect("sign-in answers");
    assert_eq!(done.status(), 303, "sign-in");
    // Over HTTPS the hub's cookies carry the `__Host-` prefix.
    for name in ["spaceport_session", "__Host-spaceport_session"] {
        if let Some(value) = set_cookie(done.headers(), name) {
            return format!("{name}={value}");
        }
    }
    panic!("sign-in sets no session cookie: {:?}", done.headers());
}

/// Whether a command runs and exits 0 (its output is dropped).
#[allow(dead_code, reason = "only the browser tests look for programs")]
pub fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether headless Chromium can be driven: Debian's chromium and
/// chromium-driver, and selenium for python3. Under CI=true a missing one
/// fails the calling test; elsewhere it is skipped with the reason.
#[allow(dead_code, reason = "only the browser tests drive a browser")]
pub fn browser_ready() -> bool {
    require(
        runs("chromium", &["--version"]) && runs("chromedriver", &["--version"]),
        "chromium or chromedriver is missing (apt-get install chromium chromium-driver)",
    ) && require(
        runs("python3", &["-c", "import selenium"]),
        "python3 cannot import selenium (pip install selenium)",
    )
}

impl Hub {
    /// A user made by the admin; their first token.
    #[allow(dead_code, reason = "not every test binary has several users")]
    pub async fn user(&self, name: &str) -> String {
        let (s, body) = self
            .api(
                "POST",
                "/api/admin/users",
                Some(serde_json::json!({ "name": name })),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

/// Runs a prepared command (a client script) off the async runtime's
/// threads, prints what it wrote, and returns whether it exited 0 and its
/// stdout and stderr together.
#[allow(dead_code, reason = "not every test binary runs a script")]
pub async fn run_script(mut cmd: Command) -> (bool, String) {
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("the script runs"))
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    (out.status.success(), text)
}
