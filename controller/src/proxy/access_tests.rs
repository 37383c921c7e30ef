use super::*;
use axum::Json;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The X-Forwarded-For of the last whoami call.
static LAST_FORWARDED: Mutex<Option<String>> = Mutex::new(None);

/// A hub on loopback that knows three tokens and counts whoami calls.
async fn hub() -> (HubUrl, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/prefix/api/whoami-v2",
        axum::routing::get(move |headers: HeaderMap| {
            counted.fetch_add(1, Ordering::SeqCst);
            *LAST_FORWARDED.lock().unwrap() = headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let who = match auth {
                    "Bearer alice-token" => json!({"name": "Alice", "isAdmin": false,
                        "orgs": [{"type": "org", "name": "acme", "roleInOrg": "read"}]}),
                    "Bearer root-token" => json!({"name": "root", "isAdmin": true, "orgs": []}),
                    "Bearer broken-token" => {
                        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
                    }
                    _ => return (StatusCode::UNAUTHORIZED, "no").into_response(),
                };
                Json(who).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = HubUrl::parse(&format!("http://{addr}/prefix/")).unwrap();
    (url, calls)
}

fn id(s: &str) -> SpaceId {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_token_opens_spaces_of_its_user_its_orgs_and_all_for_an_admin() {
    let (url, _) = hub().await;
    let access = HubAccess::new(Some(url)).unwrap();
    assert!(access.allows(&id("alice/demo"), "alice-token").await);
    assert!(access.allows(&id("acme/demo"), "alice-token").await);
    assert!(!access.allows(&id("bob/demo"), "alice-token").await);
    assert!(access.allows(&id("bob/demo"), "root-token").await);
    assert!(!access.allows(&id("alice/demo"), "stolen").await);
    assert!(!access.allows(&id("alice/demo"), "broken-token").await);
    assert!(
        !access.allows(&id("alice/demo"), "bad\r\nx-admin: 1").await,
        "a token that is not a header value is refused, not sent"
    );
}

#[tokio::test]
async fn the_hub_is_told_which_visitor_a_token_came_from() {
    let (url, _) = hub().await;
    let access = HubAccess::new(Some(url)).unwrap();
    let visitor: std::net::IpAddr = "203.0.113.7".parse().unwrap();
    assert!(
        !access
            .allows_from(&id("alice/demo"), "made-up-guess", visitor)
            .await
    );
    assert_eq!(
        LAST_FORWARDED.lock().unwrap().as_deref(),
        Some("203.0.113.7"),
        "the hub counts the failed guess against the visitor, not the proxy"
    );
    assert!(access.is_hub_credential("sp_abc") && access.is_hub_credential("sps_abc"));
    assert!(!access.is_hub_credential("the-apps-own-key"));
}

#[tokio::test]
async fn answers_are_cached_for_a_minute_and_refusals_for_ten_seconds() {
    let (url, calls) = hub().await;
    let access = HubAccess::new(Some(url)).unwrap();
    assert!(access.allows(&id("alice/a"), "alice-token").await);
    assert!(access.allows(&id("alice/b"), "alice-token").await);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "same token and owner");
    assert!(!access.allows(&id("bob/a"), "alice-token").await);
    assert!(!access.allows(&id("bob/b"), "alice-token").await);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the refusal is cached");

    // Age every entry past the refusal time: only the refusal is asked again.
    let aged = Instant::now().checked_sub(DENY_TTL + Duration::from_secs(1));
    for (_, at) in access.cache.lock().unwrap().values_mut() {
        *at = aged.unwrap();
    }
    assert!(access.allows(&id("alice/a"), "alice-token").await);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(!access.allows(&id("bob/a"), "alice-token").await);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let aged = Instant::now().checked_sub(ALLOW_TTL + Duration::from_secs(1));
    for (_, at) in access.cache.lock().unwrap().values_mut() {
        *at = aged.unwrap();
    }
    assert!(access.allows(&id("alice/a"), "alice-token").await);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn no_token_is_kept_in_the_cache() {
    let (url, _) = hub().await;
    let access = HubAccess::new(Some(url)).unwrap();
    access.allows(&id("alice/a"), "alice-token").await;
    let text = format!("{:?}", access.cache.lock().unwrap());
    assert!(!text.contains("alice-token"), "{text}");
}

#[tokio::test]
async fn without_a_hub_every_token_is_refused() {
    let access = HubAccess::new(None).unwrap();
    assert!(!access.allows(&id("alice/a"), "alice-token").await);
}

#[test]
fn hub_urls_must_be_plain_http_or_https() {
    let u = HubUrl::parse("https://hub.example:8443/base/").unwrap();
    assert_eq!(u.origin(), "https://hub.example:8443");
    assert_eq!(u.whoami(), "https://hub.example:8443/base/api/whoami-v2");
    for bad in [
        "hub.example",
        "ftp://hub.example",
        "http://user:pw@hub.example",
        "http://hub.example/?a=b",
        "http://hub.example/#x",
        "http:///path",
    ] {
        assert!(HubUrl::parse(bad).is_err(), "{bad}");
    }
}
