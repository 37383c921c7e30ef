//! Origin isolation with real clients: `spaceport up`, the system git, and
//! headless Chromium (Debian's chromium and chromium-driver) driven by
//! selenium from tests/web_ui/test_origin.py. A hostile user's public static
//! Space tries to act as a signed-in visitor of another account (read her
//! private Spaces, her identity, her settings page; read and plant the
//! hub's cookies) when opened on its own host, framed by its page, and on
//! the path route of the hub's port. Under CI=true a missing browser,
//! driver or selenium fails the test; elsewhere it is skipped with the
//! reason. The HTTP-level rules (sandbox header, no cookies either way on
//! the path route) are checked without a browser too.

mod hub;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hub::{Git, Hub, example, fixture};
use serde_json::json;

const EVIL: &str = "mallory/evil";
const PRIVATE: &str = "alice/diary";

/// Creates a static Space as its owner and pushes `files` to it.
async fn static_space(hub: &Hub, git: &Git, token: &str, space: &str, files: &Path, private: bool) {
    let visibility = if private { "private" } else { "public" };
    static_space_as(hub, git, token, space, files, visibility).await;
}

async fn static_space_as(
    hub: &Hub,
    git: &Git,
    token: &str,
    space: &str,
    files: &Path,
    visibility: &str,
) {
    let (owner, name) = space.split_once('/').unwrap();
    let (s, body) = hub
        .api_as(
            token,
            "POST",
            "/api/repos/create",
            Some(json!({"name": name, "organization": owner, "type": "space", "sdk": "static", "visibility": visibility})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let work = git.repo(&hub.git_url(space, token), files);
    git.ok(work.path(), &["push", "-q", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(60))
        .await;
}

/// The two users' Spaces: alice's private diary, mallory's hostile page
/// (its script names the hub's URL). Returns alice's token.
async fn setup(hub: &Hub) -> String {
    let alice = hub.user("alice").await;
    let mallory = hub.user("mallory").await;
    let git = Git::new();
    static_space(hub, &git, &alice, PRIVATE, &example("static-hello"), true).await;
    let evil = tempfile::tempdir().unwrap();
    hub::copy_dir(&fixture("evil-static"), evil.path());
    let js = evil.path().join("evil.js");
    let text = std::fs::read_to_string(&js)
        .unwrap()
        .replace("__HUB__", &hub.base());
    std::fs::write(&js, text).unwrap();
    static_space(hub, &git, &mallory, EVIL, evil.path(), false).await;
    alice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_route_is_sandboxed_and_carries_no_cookie_either_way() {
    let hub = Hub::start(&[]).await;
    let alice = setup(&hub).await;
    let (owner, name) = EVIL.split_once('/').unwrap();
    let (s, headers, body) = hub
        .get(&format!("/apps/{owner}/{name}/"), None)
        .await
        .unwrap();
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let csp: Vec<_> = headers
        .get_all("content-security-policy")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        csp.iter()
            .any(|c| c.starts_with("sandbox ") && !c.contains("allow-same-origin")),
        "{csp:?}"
    );
    // A private Space on the path route: its owner's bearer token opens it,
    // nothing else does.
    let (owner, name) = PRIVATE.split_once('/').unwrap();
    let path = format!("/apps/{owner}/{name}/");
    assert_eq!(hub.get(&path, None).await.unwrap().0, 404);
    assert_eq!(hub.get(&path, Some(&alice)).await.unwrap().0, 200);
    // On its own host, anonymous: 404, and no ticket of another Space helps.
    let (s, _) = hub.visit(PRIVATE, "/").await.unwrap();
    assert_eq!(s, 404);
    let (s, _) = hub
        .visit(PRIVATE, "/?__sign=spt1.forged.ticket")
        .await
        .unwrap();
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_a_session_cookie_planted_by_a_subdomain_signs_nobody_in() {
    // The hub itself speaks plain HTTP here; its public URL says a TLS
    // front serves it, which is what decides the cookies' names.
    let hub = Hub::start(&["--public-url", "https://hub.spaces.test"]).await;
    let alice = hub.user("alice").await;
    let cookie = hub::sign_in(&hub, &alice).await;
    let (name, value) = cookie.split_once('=').unwrap();
    assert_eq!(name, "__Host-spaceport_session");
    let whoami = |c: String| {
        let hub = &hub;
        async move {
            let (s, _, body) = hub
                .request_with("GET", "/api/whoami-v2", &[("cookie", &c)])
                .await;
            (s, body)
        }
    };
    let (s, body) = whoami(cookie.clone()).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"alice\""), "{body}");
    // The same session under the name a subdomain can set is not read.
    let (s, body) = whoami(format!("spaceport_session={value}")).await;
    assert_eq!(s, 401, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repos_html_file_downloads_from_the_hub_as_inert_bytes() {
    let hub = Hub::start(&[]).await;
    let mallory = hub.user("mallory").await;
    let (s, body) = hub
        .api_as(
            &mallory,
            "POST",
            "/api/repos/create",
            Some(json!({"name": "lure", "organization": "mallory", "type": "model"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("page.html"),
        "<script>fetch('/api/whoami-v2')</script>",
    )
    .unwrap();
    let git = Git::new();
    let url = format!(
        "http://mallory:{mallory}@127.0.0.1:{}/mallory/lure",
        hub.port
    );
    let work = git.repo(&url, files.path());
    git.ok(work.path(), &["push", "-q", "origin", "main"]);
    let (s, headers, body) = hub
        .get("/mallory/lure/resolve/main/page.html", None)
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&body).contains("<script>"));
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'"),
        "{csp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_static_space_serves_its_files_only_to_those_who_may_read_the_repo() {
    let hub = Hub::start(&[]).await;
    let alice = hub.user("alice").await;
    let mallory = hub.user("mallory").await;
    let git = Git::new();
    let space = "alice/brochure";
    static_space_as(
        &hub,
        &git,
        &alice,
        space,
        &example("static-hello"),
        "protected",
    )
    .await;
    // git and the API refuse the files to others, and so does the site,
    // whose files are the repo's.
    let (s, _, _) = hub
        .get(&format!("/api/spaces/{space}/tree/main"), Some(&mallory))
        .await
        .unwrap();
    assert_eq!(s, 404);
    let (s, body) = hub.visit(space, "/README.md").await.unwrap();
    assert_eq!(s, 404, "{body}");
    let (s, _, _) = hub
        .request(
            "GET",
            "/README.md",
            Some(&hub.host_of(space)),
            Some(&mallory),
            None,
        )
        .await
        .unwrap();
    assert_eq!(s, 404);
    let (s, _, body) = hub
        .request("GET", "/", Some(&hub.host_of(space)), Some(&alice), None)
        .await
        .unwrap();
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&body).contains("Hello"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_space_cannot_act_as_a_signed_in_visitor_in_a_browser() {
    if !hub::browser_ready() {
        return;
    }
    let hub = Hub::start(&[]).await;
    let alice = setup(&hub).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_ui/test_origin.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .env("SPACEPORT_URL", hub.base())
        .env("SPACEPORT_TOKEN", alice)
        .env("SPACEPORT_EVIL", EVIL)
        .env("SPACEPORT_PRIVATE", PRIVATE);
    let (ok, text) = hub::run_script(cmd).await;
    assert!(
        ok,
        "the browser checks failed:\n{text}\nhub log:\n{}",
        hub.logs()
    );
    assert!(text.contains("all passed"), "{text}");
    assert!(
        text.contains(
            "ok   the path route on the hub's port: alice's private Space list is not readable"
        ),
        "{text}"
    );
}
