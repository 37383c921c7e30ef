//! Host labels on a hub with many users: `spaceport up` refuses a Space
//! whose host another Space has, and a colliding Space that an older
//! database still holds never stops the other Spaces' routes from
//! changing, before or after a restart. The real binary, the real git
//! client; static Spaces, so no Docker engine is needed.

mod hub;

use std::time::Duration;

use hub::{ADMIN_TOKEN, Git, Hub, example};
use serde_json::json;

/// Sets a Space's visibility the way its owner does in the web UI.
async fn set_visibility_in_the_ui(hub: &Hub, space: &str, visibility: &str) {
    let cookie = hub::sign_in(hub, ADMIN_TOKEN).await;
    let settings = format!("/spaces/{space}/settings");
    let (s, _, page) = hub
        .request_with("GET", &settings, &[("cookie", &cookie)])
        .await;
    assert_eq!(s, 200, "{page}");
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("the settings page has a form") + marker.len();
    let csrf = &page[at..at + page[at..].find('"').unwrap()];
    let form = format!("csrf={csrf}&visibility={visibility}");
    let (s, _, body) = hub
        .send_with(
            "POST",
            &format!("{settings}/visibility"),
            &[
                ("cookie", &cookie),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form.into_bytes(),
        )
        .await;
    assert_eq!(s, 303, "the visibility form was accepted: {body}");
}

async fn push_static(hub: &Hub, git: &Git, space: &str) -> tempfile::TempDir {
    let work = git.repo(&hub.git_url(space, ADMIN_TOKEN), &example("static-hello"));
    git.ok(work.path(), &["push", "-q", "origin", "main"]);
    hub.wait_stage(space, &["RUNNING"], Duration::from_secs(60))
        .await;
    work
}

async fn status_of(hub: &Hub, space: &str, token: Option<&str>) -> u16 {
    let (s, _, _) = hub
        .request("GET", "/", Some(&hub.host_of(space)), token, None)
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_space_whose_host_another_space_has_is_refused_with_a_clear_error() {
    let hub = Hub::start(&[]).await;
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let (s, user) = hub
            .api("POST", "/api/admin/users", Some(json!({ "name": name })))
            .await;
        assert_eq!(s, 200, "{user}");
        tokens.push(user["token"].as_str().unwrap().to_owned());
    }
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let (s, made) = hub
        .api_as(
            alice,
            "POST",
            "/api/repos/create",
            Some(json!({"name": "my-app", "type": "space", "sdk": "static"})),
        )
        .await;
    assert_eq!(s, 200, "{made}");
    // Bob makes the organization `alice-my`: its Space `app` would be
    // served at alice-my-app, alice/my-app's host.
    let (s, org) = hub
        .api_as(
            bob,
            "POST",
            "/api/admin/orgs",
            Some(json!({"name": "alice-my"})),
        )
        .await;
    assert_eq!(s, 200, "{org}");
    let (s, refused) = hub
        .api_as(
            bob,
            "POST",
            "/api/repos/create",
            Some(json!({"name": "app", "organization": "alice-my", "type": "space", "sdk": "static"})),
        )
        .await;
    assert_eq!(s, 400, "{refused}");
    let message = refused["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("alice-my-app") && message.contains("already used"),
        "the error names the host: {message}"
    );
    assert!(
        !message.contains("alice/my-app"),
        "the other Space (perhaps private) is not named: {message}"
    );
    // Case, '_' and '.' fold into the same host too.
    let (s, refused) = hub
        .api_as(
            alice,
            "POST",
            "/api/repos/create",
            Some(json!({"name": "My_App", "type": "space", "sdk": "static"})),
        )
        .await;
    assert_eq!(s, 400, "{refused}");
    // Nothing was made: the organization has no Space and no repo.
    let (s, _) = hub.api("GET", "/api/spaces/alice-my/app", None).await;
    assert_eq!(s, 404);
    // A model of that name has no host and is fine.
    let (s, model) = hub
        .api_as(
            bob,
            "POST",
            "/api/repos/create",
            Some(json!({"name": "app", "organization": "alice-my", "type": "model"})),
        )
        .await;
    assert_eq!(s, 200, "{model}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colliding_space_from_an_older_database_never_freezes_the_other_routes() {
    let git = Git::new();
    let mut hub = Hub::start(&[]).await;
    hub.create_space("admin/my-app", "static").await;
    let _mine = push_static(&hub, &git, "admin/my-app").await;
    assert_eq!(status_of(&hub, "admin/my-app", None).await, 200);

    // A database from before host labels were checked may hold a newer
    // Space that wants the same host.
    let db = rusqlite::Connection::open(hub.data.join("spaceport.db")).unwrap();
    db.execute(
        "INSERT INTO repos (kind, owner, name, visibility, created_at, created_by, settings) \
         SELECT 'space', 'admin-my', 'app', 'public', max(created_at) + 1, 'admin', '{}' FROM repos",
        [],
    )
    .unwrap();
    drop(db);

    // The owner makes the Space private: its URL must answer 404 at once.
    set_visibility_in_the_ui(&hub, "admin/my-app", "private").await;
    assert_eq!(
        status_of(&hub, "admin/my-app", None).await,
        404,
        "the visibility change reached the proxy"
    );
    assert_eq!(
        status_of(&hub, "admin/my-app", Some(ADMIN_TOKEN)).await,
        200,
        "the older Space keeps its host"
    );
    // A Space made afterwards is served.
    let (s, made) = hub
        .api(
            "POST",
            "/api/repos/create",
            Some(json!({"name": "later", "type": "space", "sdk": "static"})),
        )
        .await;
    assert_eq!(s, 200, "{made}");
    let _later = push_static(&hub, &git, "admin/later").await;
    assert_eq!(status_of(&hub, "admin/later", None).await, 200);
    let (s, _, _) = hub.get("/apps/admin-my/app/", None).await.unwrap();
    assert_eq!(s, 404, "the left-out Space has no path route");
    assert!(
        hub.logs()
            .lines()
            .any(|l| l.contains("route left out of the table")
                && l.contains("admin-my/app")
                && l.contains("admin/my-app")),
        "the left-out route is logged:\n{}",
        hub.logs()
    );

    // And after a restart, which builds the table from scratch.
    hub.terminate();
    hub.spawn().await;
    hub.wait_stage("admin/later", &["RUNNING"], Duration::from_secs(60))
        .await;
    hub.wait_stage("admin/my-app", &["RUNNING"], Duration::from_secs(60))
        .await;
    assert_eq!(status_of(&hub, "admin/later", None).await, 200);
    assert_eq!(status_of(&hub, "admin/my-app", None).await, 404);
    assert_eq!(
        status_of(&hub, "admin/my-app", Some(ADMIN_TOKEN)).await,
        200
    );
}
