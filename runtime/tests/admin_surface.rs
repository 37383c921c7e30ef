//! What only the node's owner may see, on a real `spaceport up`: `/metrics`
//! (it names every Space, private ones included, with their traffic) answers
//! only an admin's token, and the data dir with the database, the node key
//! and the repos is closed to other users of the machine.

mod hub;

use hub::{ADMIN_TOKEN, Hub};
use serde_json::json;

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
