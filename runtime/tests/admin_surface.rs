//! What only the node's owner may see, on a real `spaceport up`: `/metrics`
//! (it names every Space, private ones included, with their traffic) answers
//! only an admin's token, and the data dir with the database, the node key
//! and the repos is closed to other users of the machine.

mod hub;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hub::{ADMIN_TOKEN, Hub};
use serde_json::json;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_only_an_admins_token() {
    let hub = Hub::start(&[]).await;
    let (s, _, body) = hub.get("/metrics", None).await.unwrap();
    assert_eq!(s, 401, "{}", String::from_utf8_lossy(&body));
    let (s, _, _) = hub
        .get("/metrics", Some("hf_not_a_known_token"))
        .await
        .unwrap();
    assert_eq!(s, 401);

    let (s, user) = hub
        .api("POST", "/api/admin/users", Some(json!({"name": "bob"})))
        .await;
    assert_eq!(s, 200, "{user}");
    let bob = user["token"].as_str().unwrap();
    let (s, _, body) = hub.get("/metrics", Some(bob)).await.unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(s, 403, "{body}");
    assert!(!body.contains("spaceport_"), "{body}");

    // A read-only token of the admin is enough to scrape.
    let (s, t) = hub
        .api("POST", "/api/tokens", Some(json!({"role": "read"})))
        .await;
    assert_eq!(s, 200, "{t}");
    for token in [ADMIN_TOKEN, t["token"].as_str().unwrap()] {
        let (s, headers, body) = hub.get("/metrics", Some(token)).await.unwrap();
        assert_eq!(s, 200);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert!(
            String::from_utf8_lossy(&body).contains("spaceport_proxy_route_updates_total"),
            "the admin gets the metrics"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_is_owner_only_when_new_and_tightened_when_it_was_open() {
    let mut hub = Hub::start(&[]).await;
    hub.create_space("admin/site", "static").await;
    let data = hub.data.clone();
    assert_eq!(mode(&data), 0o700, "a new data dir is 0700");
    for dir in ["repos", "trees", "cache"] {
        assert_eq!(mode(&data.join(dir)), 0o700, "{dir}");
    }
    for file in [
        "spaceport.db",
        "spaceport.db-wal",
        "spaceport.db-shm",
        "secret.key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }

    // A data dir left open (copied, or made with a loose umask) is closed
    // at the next start, and the hub says so.
    hub.terminate();
    let set = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    set(&data, 0o755);
    set(&data.join("repos"), 0o775);
    set(&data.join("spaceport.db"), 0o644);
    set(&data.join("secret.key"), 0o640);
    hub.spawn().await;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("repos")), 0o700);
    assert_eq!(mode(&data.join("spaceport.db")), 0o600);
    assert_eq!(mode(&data.join("secret.key")), 0o600);
    assert!(
        hub.logs().contains("tightened a data dir entry"),
        "{}",
        hub.logs()
    );
    let (s, _) = hub.api("GET", "/api/spaces/admin/site", None).await;
    assert_eq!(s, 200, "the hub still reads its data");
}
