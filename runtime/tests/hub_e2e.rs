//! End-to-end tests of `spaceport up`: the real binary, the real git
//! client, the real Docker engine. Each test runs its own hub on its own
//! data dir and port. With CI=true a missing Docker engine or base image
//! fails the test; otherwise it is skipped, saying why.

mod hub;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hub::{ADMIN_TOKEN, Git, Hub, example, fixture, remove_spaces};
use serde_json::json;

/// Builds share two cores: heavy tests take turns.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Requests the Space's page every 50 ms until stopped; counts failures.
struct Poller {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Poller {
    fn start(port: u16, host: String) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let probe = Hub::probe(port);
            while !s.load(Ordering::Relaxed) {
                match probe.request("GET", "/", Some(&host), None, None).await {
                    Ok((200, _, _)) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, _, body)) => f.lock().unwrap().push(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    )),
                    Err(e) => f.lock().unwrap().push(e),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Poller {
            stop,
            ok,
            failed,
            task,
        }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

async fn wait_body(hub: &Hub, space: &str, path: &str, want: &str, limit: Duration) -> String {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok((200, body)) = hub.visit(space, path).await
            && body.contains(want)
        {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{space}{path} never answered with '{want}'; stage {:?}\n{}",
            hub.stage(space).await,
            hub.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_push_deploys_a_static_space_and_redeploys_without_a_gap() {
    let git = Git::new();
    let hub = Hub::start(&[]).await;
    let space = "admin/static-demo";
    hub.create_space(space, "static").await;
    let (stage, _) = hub.stage(space).await;
    assert_eq!(stage, "NO_APP_FILE", "an empty Space has no app yet");

    let work = git.repo(&hub.git_url(space, ADMIN_TOKEN), &example("static-hello"));
    let out = git.ok(work.path(), &["push", "origin", "main"]);
    assert!(
        out.contains("remote:"),
        "the push shows the hub's words:\n{out}"
    );
    assert!(
        out.contains(&format!("admin-static-demo.localhost:{}", hub.port)),
        "the push shows the Space URL:\n{out}"
    );
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(60))
        .await;
    let first = wait_body(&hub, space, "/", "<", Duration::from_secs(10)).await;

    // Path routing serves the same app for clients without *.localhost.
    let (status, _, body) = hub
        .get("/apps/admin/static-demo/", None)
        .await
        .expect("path route answers");
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), first);

    let poller = Poller::start(hub.port, hub.host_of(space));
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(
        work.path().join("index.html"),
        "<!doctype html><h1>second version</h1>\n",
    )
    .unwrap();
    git.commit_all(work.path(), "second");
    git.ok(work.path(), &["push", "origin", "main"]);
    wait_body(&hub, space, "/", "second version", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failed) = poller.finish().await;
    assert!(ok > 5, "the poller made requests ({ok})");
    assert!(
        failed.is_empty(),
        "the URL failed during the redeploy: {failed:?}"
    );

    // The hub's gauges and the proxy's meters share /metrics.
    let (s, _, metrics) = hub.get("/metrics", Some(ADMIN_TOKEN)).await.unwrap();
    assert_eq!(s, 200);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("spaceport_spaces{stage=\"RUNNING\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("spaceport_repos{kind=\"space\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("admin/static-demo"),
        "per-Space proxy meters: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_push_builds_a_docker_space_and_settings_reach_the_container() {
    if !hub::docker_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let space = "admin/env-demo";
    remove_spaces(&[space]);
    let git = Git::new();
    let hub = Hub::start(&[]).await;
    hub.create_space(space, "docker").await;
    let work = git.repo(&hub.git_url(space, ADMIN_TOKEN), &fixture("envspace"));
    let out = git.ok(work.path(), &["push", "origin", "main"]);
    assert!(out.contains("remote:"), "{out}");
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(600))
        .await;
    wait_body(&hub, space, "/", "hello v1", Duration::from_secs(10)).await;
    let (status, build) = hub.logs_of(space, "build").await;
    assert_eq!(status, 200);
    assert!(build.contains("data: {"), "build log events: {build}");
    assert!(build.contains("Build Queued"), "build log: {build}");

    // A code change redeploys with no failed request in between.
    let poller = Poller::start(hub.port, hub.host_of(space));
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(work.path().join("version.txt"), "v2\n").unwrap();
    git.commit_all(work.path(), "v2");
    git.ok(work.path(), &["push", "origin", "main"]);
    wait_body(&hub, space, "/", "hello v2", Duration::from_secs(600)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed) = poller.finish().await;
    assert!(ok > 5, "the poller made requests ({ok})");
    assert!(
        failed.is_empty(),
        "the URL failed during the redeploy: {failed:?}"
    );

    // A secret and a variable restart the Space with them in its environment.
    let (s, _) = hub
        .api(
            "POST",
            &format!("/api/spaces/{space}/secrets"),
            Some(json!({"key": "E2E_SECRET", "value": "s3cr3t-value"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, vars) = hub
        .api(
            "POST",
            &format!("/api/spaces/{space}/variables"),
            Some(json!({"key": "E2E_VAR", "value": "visible"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(vars["E2E_VAR"]["value"], "visible");
    let env = wait_body(
        &hub,
        space,
        "/env",
        "s3cr3t-value",
        Duration::from_secs(300),
    )
    .await;
    let env: serde_json::Value = serde_json::from_str(&env).unwrap();
    assert_eq!(env["E2E_VAR"], "visible");
    assert_eq!(env["SPACE_ID"], space);
    // The secret's value appears in no API answer.
    for path in ["runtime", "secrets", "variables"] {
        let (_, _, body) = hub
            .get(&format!("/api/spaces/{space}/{path}"), Some(ADMIN_TOKEN))
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains("s3cr3t-value"),
            "{path} leaks the secret"
        );
    }
    let (_, secrets) = hub
        .api("GET", &format!("/api/spaces/{space}/secrets"), None)
        .await;
    assert!(secrets.get("E2E_SECRET").is_some(), "{secrets}");
    remove_spaces(&[space]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_space_sleeps_but_not_with_a_websocket_open_and_a_visit_wakes_it() {
    if !hub::docker_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let space = "admin/sleepy";
    remove_spaces(&[space]);
    let git = Git::new();
    let hub = Hub::start(&["--sleep-check", "1"]).await;
    hub.create_space(space, "docker").await;
    let (s, rt) = hub
        .api(
            "POST",
            &format!("/api/spaces/{space}/sleeptime"),
            Some(json!({"seconds": 3})),
        )
        .await;
    assert_eq!(s, 200, "{rt}");
    assert_eq!(rt["gcTimeout"], 3);
    let work = git.repo(&hub.git_url(space, ADMIN_TOKEN), &fixture("envspace"));
    git.ok(work.path(), &["push", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(600))
        .await;
    wait_body(&hub, space, "/", "hello v1", Duration::from_secs(10)).await;

    // A WebSocket keeps it awake well past its sleep time.
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{}/ws", hub.port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("host", hub.host_of(space).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket opens");
    for i in 0..8 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (stage, _) = hub.stage(space).await;
        assert_eq!(
            stage, "RUNNING",
            "asleep with a WebSocket open, after {i} s"
        );
    }
    ws.send(Message::text("ping")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("echo in time")
        .expect("a frame")
        .expect("no error");
    assert_eq!(echo.into_text().unwrap().as_str(), "ping");
    ws.close(None).await.unwrap();
    drop(ws);

    // Idle: it sleeps, and its container stays (stopped) for a fast wake.
    let rt = hub
        .wait_stage(space, &["STOPPED"], Duration::from_secs(30))
        .await;
    assert!(
        rt["hardware"]["current"].is_null(),
        "no hardware while asleep: {rt}"
    );
    // The next visit wakes it and succeeds.
    let started = std::time::Instant::now();
    let (status, body) = hub.visit(space, "/").await.expect("the visit is answered");
    let woke_in = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello v1"), "{body}");
    eprintln!("woke in {woke_in:?}");
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(10))
        .await;
    remove_spaces(&[space]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keeps_spaces_secrets_analytics_and_containers() {
    if !hub::docker_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let space = "admin/survivor";
    let site = "admin/survivor-site";
    remove_spaces(&[space]);
    let git = Git::new();
    let mut hub = Hub::start(&["--analytics-interval", "1"]).await;
    hub.create_space(space, "docker").await;
    hub.create_space(site, "static").await;
    let (s, _) = hub
        .api(
            "POST",
            &format!("/api/spaces/{space}/secrets"),
            Some(json!({"key": "KEEP_ME", "value": "kept-secret"})),
        )
        .await;
    assert_eq!(s, 200);
    let work = git.repo(&hub.git_url(space, ADMIN_TOKEN), &fixture("envspace"));
    git.ok(work.path(), &["push", "origin", "main"]);
    let site_work = git.repo(&hub.git_url(site, ADMIN_TOKEN), &example("static-hello"));
    git.ok(site_work.path(), &["push", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(600))
        .await;
    hub.wait_stage(site, &["RUNNING"], Duration::from_secs(60))
        .await;
    let env = wait_body(&hub, space, "/env", "kept-secret", Duration::from_secs(30)).await;
    let env: serde_json::Value = serde_json::from_str(&env).unwrap();
    let hostname = env["HOSTNAME"].as_str().unwrap_or_default().to_owned();
    for _ in 0..3 {
        wait_body(&hub, site, "/", "<", Duration::from_secs(10)).await;
    }
    // Analytics reach the database.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, a) = hub
            .api("GET", &format!("/api/spaces/{site}/analytics"), None)
            .await;
        if a["totals"]["visits"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no analytics stored: {a}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    hub.kill9();
    // The container keeps serving with the hub down? No: nothing routes to
    // it. But it keeps running, and the next hub adopts it.
    hub.spawn().await;
    let rt = hub
        .wait_stage(space, &["RUNNING"], Duration::from_secs(60))
        .await;
    assert!(rt["sha"].is_string(), "{rt}");
    let env = wait_body(&hub, space, "/env", "kept-secret", Duration::from_secs(30)).await;
    let env: serde_json::Value = serde_json::from_str(&env).unwrap();
    assert_eq!(
        env["HOSTNAME"].as_str().unwrap_or_default(),
        hostname,
        "the same container serves after the restart (adopted, not rebuilt)"
    );
    hub.wait_stage(site, &["RUNNING"], Duration::from_secs(60))
        .await;
    wait_body(&hub, site, "/", "<", Duration::from_secs(10)).await;
    let (_, secrets) = hub
        .api("GET", &format!("/api/spaces/{space}/secrets"), None)
        .await;
    assert!(secrets.get("KEEP_ME").is_some(), "{secrets}");
    let (_, a) = hub
        .api("GET", &format!("/api/spaces/{site}/analytics"), None)
        .await;
    assert!(
        a["totals"]["visits"].as_u64().unwrap_or(0) >= 1,
        "analytics survive: {a}"
    );
    remove_spaces(&[space]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_and_bad_api_calls_get_clear_errors_and_lose_nothing() {
    let git = Git::new();
    let hub = Hub::start(&["--max-push-bytes", "3000000"]).await;
    let space = "admin/guarded";
    hub.create_space(space, "static").await;
    let work = git.repo(&hub.git_url(space, ADMIN_TOKEN), &example("static-hello"));
    git.ok(work.path(), &["push", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(60))
        .await;
    let head = git
        .ok(work.path(), &["rev-parse", "HEAD"])
        .trim()
        .to_owned();

    // app_file escaping the repo: accepted, CONFIG_ERROR with the line.
    let readme = std::fs::read_to_string(work.path().join("README.md")).unwrap();
    let bad = readme.replacen("sdk: static", "sdk: static\napp_file: ../../etc/passwd", 1);
    std::fs::write(work.path().join("README.md"), bad).unwrap();
    git.commit_all(work.path(), "escape");
    git.ok(work.path(), &["push", "origin", "main"]);
    let rt = hub
        .wait_stage(space, &["CONFIG_ERROR"], Duration::from_secs(30))
        .await;
    let msg = rt["errorMessage"].as_str().unwrap_or_default();
    assert!(msg.contains("README.md:"), "the error names the line: {rt}");
    assert!(msg.contains("app_file"), "{rt}");
    git.ok(work.path(), &["reset", "-q", "--hard", &head]);

    // A push over the size cap: refused, main unchanged.
    let big: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(work.path().join("big.bin"), big).unwrap();
    git.commit_all(work.path(), "big");
    let (ok, out) = git.run(work.path(), &["push", "origin", "main"]);
    assert!(!ok, "a push over the cap fails:\n{out}");
    let (_, info) = hub.api("GET", &format!("/api/spaces/{space}"), None).await;
    assert_ne!(
        info["sha"].as_str(),
        Some(git.ok(work.path(), &["rev-parse", "HEAD"]).trim())
    );

    // A non-fast-forward: refused, main unchanged.
    git.ok(work.path(), &["reset", "-q", "--hard", &head]);
    git.ok(work.path(), &["fetch", "-q", "origin"]);
    let remote_main = git
        .ok(work.path(), &["rev-parse", "origin/main"])
        .trim()
        .to_owned();
    std::fs::write(work.path().join("other.txt"), "diverged\n").unwrap();
    git.commit_all(work.path(), "diverged");
    let (ok, out) = git.run(work.path(), &["push", "--force", "origin", "main"]);
    assert!(!ok, "a non-fast-forward push fails:\n{out}");
    let (_, info) = hub.api("GET", &format!("/api/spaces/{space}"), None).await;
    assert_eq!(
        info["sha"].as_str(),
        Some(remote_main.as_str()),
        "main did not move"
    );

    // Another user's token may not push.
    let (s, user) = hub
        .api("POST", "/api/admin/users", Some(json!({"name": "mallory"})))
        .await;
    assert_eq!(s, 200, "{user}");
    let mallory = user["token"].as_str().unwrap().to_owned();
    git.ok(
        work.path(),
        &["remote", "set-url", "origin", &hub.git_url(space, &mallory)],
    );
    let (ok, out) = git.run(work.path(), &["push", "origin", "main"]);
    assert!(!ok, "another user's push fails:\n{out}");
    let (s, body) = hub
        .api_as(
            &mallory,
            "POST",
            &format!("/api/spaces/{space}/secrets"),
            Some(json!({"key": "X", "value": "y"})),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    // A wrong token is refused, not treated as anonymous.
    git.ok(
        work.path(),
        &[
            "remote",
            "set-url",
            "origin",
            &hub.git_url(space, "hf_wrong_token_000000"),
        ],
    );
    let (ok, out) = git.run(work.path(), &["push", "origin", "main"]);
    assert!(!ok, "{out}");
    let (s, _) = hub
        .api_as("hf_wrong_token_000000", "GET", "/api/whoami-v2", None)
        .await;
    assert_eq!(s, 401);

    // Malformed JSON and unknown Spaces.
    let (s, _, body) = hub
        .request(
            "POST",
            "/api/repos/create",
            None,
            Some(ADMIN_TOKEN),
            Some(b"{\"name\": ".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(s, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("invalid JSON"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (s, headers, _) = hub
        .get("/api/spaces/admin/nope/runtime", Some(ADMIN_TOKEN))
        .await
        .unwrap();
    assert_eq!(s, 404);
    assert_eq!(
        headers.get("x-error-code").map(|v| v.to_str().unwrap()),
        Some("RepoNotFound")
    );

    // Nothing was lost: the Space still serves its last good version.
    hub.wait_stage(space, &["CONFIG_ERROR", "RUNNING"], Duration::from_secs(5))
        .await;
    let (_, info) = hub.api("GET", &format!("/api/spaces/{space}"), None).await;
    assert_eq!(info["sha"].as_str(), Some(remote_main.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_spaces_are_hidden_from_others() {
    let git = Git::new();
    let hub = Hub::start(&[]).await;
    let space = "admin/secret-site";
    let (s, body) = hub
        .api(
            "POST",
            "/api/repos/create",
            Some(json!({"name": "secret-site", "type": "space", "sdk": "static", "private": true})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let work = git.repo(&hub.git_url(space, ADMIN_TOKEN), &example("static-hello"));
    git.ok(work.path(), &["push", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(60))
        .await;
    // Signed out: 404 from the API and from the app.
    let (s, _, _) = hub
        .get(&format!("/api/spaces/{space}"), None)
        .await
        .unwrap();
    assert_eq!(s, 404);
    let (s, _) = hub.visit(space, "/").await.unwrap();
    assert_eq!(s, 404);
    let (_, list) = hub
        .request("GET", "/api/spaces", None, None, None)
        .await
        .map(|(s, _, b)| (s, String::from_utf8_lossy(&b).into_owned()))
        .unwrap();
    assert!(!list.contains("secret-site"), "{list}");
    // The owner's token opens it.
    let (s, _, body) = hub
        .request(
            "GET",
            "/",
            Some(&hub.host_of(space)),
            Some(ADMIN_TOKEN),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    // Anonymous clone is refused too.
    let dir = tempfile::tempdir().unwrap();
    let (ok, _) = git.run(
        dir.path(),
        &[
            "clone",
            "-q",
            &format!("http://127.0.0.1:{}/spaces/{space}", hub.port),
            "x",
        ],
    );
    assert!(!ok, "an anonymous clone of a private Space fails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_huggingface_hub_client_manages_spaces_on_the_hub() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hf_client/test_hf_client.py");
    let has_client = std::process::Command::new("python3")
        .args(["-c", "import huggingface_hub"])
        .status()
        .is_ok_and(|s| s.success());
    if !hub::require(
        has_client,
        "python3 cannot import huggingface_hub (pip install huggingface_hub)",
    ) {
        return;
    }
    // A running docker Space, in which the client's changes must show.
    let running = if hub::docker_ready() {
        Some(TURN.lock().await)
    } else {
        None
    };
    let hub = Hub::start(&[]).await;
    let (s, other) = hub
        .api("POST", "/api/admin/users", Some(json!({"name": "bob"})))
        .await;
    assert_eq!(s, 200, "{other}");
    let other = other["token"].as_str().unwrap().to_owned();
    let effects = "admin/hf-effects";
    if running.is_some() {
        remove_spaces(&[effects]);
        let git = Git::new();
        hub.create_space(effects, "docker").await;
        let work = git.repo(&hub.git_url(effects, ADMIN_TOKEN), &fixture("envspace"));
        git.ok(work.path(), &["push", "origin", "main"]);
        hub.wait_stage(effects, &["RUNNING"], Duration::from_secs(600))
            .await;
    }
    let mut cmd = std::process::Command::new("python3");
    if running.is_some() {
        cmd.env("SPACEPORT_RUNNING_SPACE", effects);
    }
    cmd.arg(script)
        .env("SPACEPORT_ENDPOINT", hub.base())
        .env("SPACEPORT_TOKEN", ADMIN_TOKEN)
        .env("SPACEPORT_OTHER_TOKEN", other)
        .env("SPACEPORT_SPACE", "admin/hf-client-demo")
        .env("SPACEPORT_MODEL_DATASET", "1");
    let (ok, text) = hub::run_script(cmd).await;
    let logs = hub.logs();
    // The Space's containers (the client scaled it) outlive the hub by
    // design; the test removes them, passed or not.
    if running.is_some() {
        remove_spaces(&[effects]);
    }
    assert!(ok, "the client's checks failed:\n{text}\n{logs}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_space_with_a_build_command_serves_what_the_build_made() {
    if !hub::docker_ready() {
        return;
    }
    let _turn = TURN.lock().await;
    let git = Git::new();
    let hub = Hub::start(&["--static-build-image", hub::BASE_IMAGE]).await;
    let space = "admin/built-site";
    hub.create_space(space, "static").await;
    let work = git.repo(&hub.git_url(space, ADMIN_TOKEN), &fixture("built-site"));
    git.ok(work.path(), &["push", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(300))
        .await;
    let body = wait_body(
        &hub,
        space,
        "/",
        "built by app_build_command",
        Duration::from_secs(10),
    )
    .await;
    assert!(!body.contains("SOURCE"), "{body}");
    // No container serves it: the hub serves the built files.
    let (_, _, list) = hub
        .get("/api/spaces/admin/built-site/runtime", Some(ADMIN_TOKEN))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&list).contains("RUNNING"));
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            "label=dev.spaceport.space=admin/built-site",
        ])
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "no container runs for a static Space"
    );

    // A build command that fails: the previous version keeps serving and
    // the runtime says why the new one is not there.
    let readme = std::fs::read_to_string(work.path().join("README.md")).unwrap();
    let broken = readme.replace("mkdir -p dist &&", "false &&");
    std::fs::write(work.path().join("README.md"), broken).unwrap();
    git.commit_all(work.path(), "broken build");
    git.ok(work.path(), &["push", "origin", "main"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let rt = loop {
        let (stage, rt) = hub.stage(space).await;
        if rt["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("build failed")
        {
            assert_eq!(stage, "RUNNING", "{rt}");
            break rt;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the failed build never showed: {rt}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        rt["errorMessage"]
            .as_str()
            .unwrap()
            .contains("previous version"),
        "{rt}"
    );
    wait_body(
        &hub,
        space,
        "/",
        "built by app_build_command",
        Duration::from_secs(5),
    )
    .await;
    let (_, build) = hub.logs_of(space, "build").await;
    assert!(build.contains("Build Failed"), "{build}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_members_manage_its_spaces_and_read_tokens_only_read() {
    let git = Git::new();
    let hub = Hub::start(&[]).await;
    let (s, bob) = hub
        .api("POST", "/api/admin/users", Some(json!({"name": "bob"})))
        .await;
    assert_eq!(s, 200, "{bob}");
    let bob = bob["token"].as_str().unwrap().to_owned();
    let (s, carol) = hub
        .api("POST", "/api/admin/users", Some(json!({"name": "carol"})))
        .await;
    assert_eq!(s, 200, "{carol}");
    let carol = carol["token"].as_str().unwrap().to_owned();
    // Bob makes an organization (he is its admin) and adds Carol as a reader.
    let (s, org) = hub
        .api_as(
            &bob,
            "POST",
            "/api/admin/orgs",
            Some(json!({"name": "lab"})),
        )
        .await;
    assert_eq!(s, 200, "{org}");
    let (s, m) = hub
        .api_as(
            &bob,
            "POST",
            "/api/admin/orgs/lab/members",
            Some(json!({"user": "carol", "role": "read"})),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let (_, who) = hub.api_as(&carol, "GET", "/api/whoami-v2", None).await;
    assert_eq!(who["orgs"][0]["name"], "lab", "{who}");

    // Bob creates a private Space of the organization and pushes to it.
    let (s, created) = hub
        .api_as(&bob, "POST", "/api/repos/create", Some(json!({"name": "tool", "organization": "lab", "type": "space", "sdk": "static", "private": true})))
        .await;
    assert_eq!(s, 200, "{created}");
    let space = "lab/tool";
    let work = git.repo(&hub.git_url(space, &bob), &example("static-hello"));
    git.ok(work.path(), &["push", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(60))
        .await;

    // Carol (read member) sees it and may clone, but may not push or
    // change settings.
    let (s, _) = hub
        .api_as(&carol, "GET", &format!("/api/spaces/{space}"), None)
        .await;
    assert_eq!(s, 200);
    let clone = tempfile::tempdir().unwrap();
    git.ok(
        clone.path(),
        &["clone", "-q", &hub.git_url(space, &carol), "c"],
    );
    let c = clone.path().join("c");
    std::fs::write(c.join("extra.txt"), "carol was here\n").unwrap();
    git.commit_all(&c, "carol");
    let (ok, out) = git.run(&c, &["push", "origin", "main"]);
    assert!(!ok, "a read member may not push:\n{out}");
    let (s, _) = hub
        .api_as(
            &carol,
            "POST",
            &format!("/api/spaces/{space}/sleeptime"),
            Some(json!({"seconds": 60})),
        )
        .await;
    assert_eq!(s, 403);

    // A read token of Bob's may read but not write.
    let (s, t) = hub
        .api_as(&bob, "POST", "/api/tokens", Some(json!({"role": "read"})))
        .await;
    assert_eq!(s, 200, "{t}");
    let bob_read = t["token"].as_str().unwrap().to_owned();
    let (s, _) = hub
        .api_as(
            &bob_read,
            "GET",
            &format!("/api/spaces/{space}/runtime"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = hub
        .api_as(
            &bob_read,
            "POST",
            &format!("/api/spaces/{space}/pause"),
            None,
        )
        .await;
    assert_eq!(s, 403);
    git.ok(
        &c,
        &[
            "remote",
            "set-url",
            "origin",
            &hub.git_url(space, &bob_read),
        ],
    );
    let (ok, out) = git.run(&c, &["push", "origin", "main"]);
    assert!(!ok, "a read token may not push:\n{out}");

    // Someone outside the organization does not even see it.
    let (s, dave) = hub
        .api("POST", "/api/admin/users", Some(json!({"name": "dave"})))
        .await;
    assert_eq!(s, 200);
    let dave = dave["token"].as_str().unwrap().to_owned();
    let (s, _) = hub
        .api_as(&dave, "GET", &format!("/api/spaces/{space}"), None)
        .await;
    assert_eq!(s, 404);
    // Only admins create users.
    let (s, _) = hub
        .api_as(
            &dave,
            "POST",
            "/api/admin/users",
            Some(json!({"name": "eve"})),
        )
        .await;
    assert_eq!(s, 403);
}

const BUSYBOX: &str = "/bin/busybox";

/// A docker Space FROM scratch: a static busybox serving a page that names it.
fn busybox_space(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(BUSYBOX, dir.path().join("busybox")).unwrap();
    std::fs::write(
        dir.path().join("README.md"),
        format!("---\ntitle: {name}\nsdk: docker\napp_port: 8080\n---\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("index.html"), format!("page of {name}\n")).unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\nEXPOSE 8080\nCMD [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    dir
}

/// `docker inspect` of the running container of a Space.
fn inspect_space(space: &str) -> serde_json::Value {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=dev.spaceport.space={space}"),
            "--filter",
            "status=running",
        ])
        .output()
        .unwrap();
    let ids = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = ids.split_whitespace().next().expect("a running container");
    let out = std::process::Command::new("docker")
        .args(["inspect", id])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    all[0].clone()
}

/// The container's one network: (its address, the network's gateway).
fn address_of(inspect: &serde_json::Value) -> (String, String) {
    let networks = inspect["NetworkSettings"]["Networks"].as_object().unwrap();
    assert_eq!(networks.len(), 1, "one network: {networks:?}");
    let n = networks.values().next().unwrap();
    (
        n["IPAddress"].as_str().unwrap().to_owned(),
        n["Gateway"].as_str().unwrap().to_owned(),
    )
}

/// An HTTP GET of `host:port` from inside a container, with busybox's nc
/// (its static wget needs files a scratch image lacks): whether it
/// connected and was answered, and what came back.
fn fetch_from(inspect: &serde_json::Value, host: &str, port: &str) -> (bool, String) {
    let id = inspect["Id"].as_str().unwrap();
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | {BUSYBOX} nc -w 3 {host} {port}");
    let out = std::process::Command::new("docker")
        .args(["exec", id, BUSYBOX, "sh", "-c", &script])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains(" 200 OK"), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_cannot_reach_another_spaces_container_while_the_proxy_serves_both() {
    if !hub::require(
        hub::docker_available(),
        "no Docker engine answers (docker info failed)",
    ) || !hub::require(
        std::path::Path::new(BUSYBOX).exists(),
        "/bin/busybox (a static busybox, Debian's busybox-static) is missing",
    ) {
        return;
    }
    let _turn = TURN.lock().await;
    let (open, private) = ("admin/net-open", "admin/net-private");
    remove_spaces(&[open, private]);
    let git = Git::new();
    let mut hub = Hub::start(&[]).await;
    hub.create_space(open, "docker").await;
    let (s, body) = hub
        .api(
            "POST",
            "/api/repos/create",
            Some(json!({"name": "net-private", "type": "space", "sdk": "docker", "private": true})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (open_files, private_files) = (busybox_space("net-open"), busybox_space("net-private"));
    let open_repo = git.repo(&hub.git_url(open, ADMIN_TOKEN), open_files.path());
    let private_repo = git.repo(&hub.git_url(private, ADMIN_TOKEN), private_files.path());
    git.ok(open_repo.path(), &["push", "origin", "main"]);
    git.ok(private_repo.path(), &["push", "origin", "main"]);
    for space in [open, private] {
        hub.wait_stage(space, &["RUNNING"], Duration::from_secs(300))
            .await;
    }

    let proxy_serves_both = |hub: &Hub| {
        let probe = Hub::probe(hub.port);
        let private_host = hub.host_of(private);
        async move {
            let (s, body) = probe.visit(open, "/").await.unwrap();
            assert_eq!(s, 200, "{body}");
            assert!(body.contains("page of net-open"), "{body}");
            assert_eq!(probe.visit(private, "/").await.unwrap().0, 404);
            let (s, _, body) = probe
                .request("GET", "/", Some(&private_host), Some(ADMIN_TOKEN), None)
                .await
                .unwrap();
            assert_eq!(s, 200);
            assert!(String::from_utf8_lossy(&body).contains("page of net-private"));
        }
    };
    proxy_serves_both(&hub).await;

    let a = inspect_space(open);
    let b = inspect_space(private);
    let (a_ip, gateway) = address_of(&a);
    let (b_ip, _) = address_of(&b);
    let b_host_port = b["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        b["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostIp"],
        "127.0.0.1"
    );

    // The fetch works in there: the container gets its own page.
    let (ok, text) = fetch_from(&a, &a_ip, "8080");
    assert!(ok && text.contains("page of net-open"), "{text}");
    // The private Space's container answers on its address, from the host...
    let from_host = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((b_ip.as_str(), 8080)),
    )
    .await;
    assert!(
        matches!(from_host, Ok(Ok(_))),
        "the host reaches {b_ip}:8080: {from_host:?}"
    );
    // ...but not from the other Space, by its address or by the published port.
    let (ok, text) = fetch_from(&a, &b_ip, "8080");
    assert!(
        !ok && !text.contains("page of net-private"),
        "a Space fetched the private Space's page by its address: {text}"
    );
    let (ok, text) = fetch_from(&a, &gateway, &b_host_port);
    assert!(
        !ok && !text.contains("page of net-private"),
        "a Space fetched the private Space's page through the gateway: {text}"
    );

    // Traffic leaving the network still flows: the container reaches a
    // server of the host's on the network's gateway address.
    let outside = tokio::net::TcpListener::bind((gateway.as_str(), 0))
        .await
        .unwrap();
    let outside_port = outside.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = outside.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\noutside")
            .await
            .unwrap();
    });
    let (ok, text) = fetch_from(&a, &gateway, &outside_port.to_string());
    assert!(ok && text.contains("outside"), "{text}");
    server.await.unwrap();

    // A restarted hub adopts both containers, which keep being served.
    hub.kill9();
    hub.spawn().await;
    for space in [open, private] {
        hub.wait_stage(space, &["RUNNING"], Duration::from_secs(60))
            .await;
    }
    proxy_serves_both(&hub).await;
    assert_eq!(inspect_space(open)["Id"], a["Id"], "the same container");
    remove_spaces(&[open, private]);
}
