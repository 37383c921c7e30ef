//! Sign-in sessions, token listing and revocation, and the limit on failed
//! authentications, against a real `spaceport up` over plain HTTP: the web
//! UI's forms as a browser posts them (pre-session cookie, CSRF field), the
//! API as clients call it. Requests come from chosen loopback addresses
//! (127.0.0.x), so the per-address limit is seen from several clients.

mod hub;

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hub::{ADMIN_TOKEN, Hub};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const SESSION_COOKIE: &str = "spaceport_session";

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The value a `Set-Cookie` gives `name`, if any.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                let first = v.split(';').next()?;
                let (k, val) = first.split_once('=')?;
                (k.trim() == name).then(|| val.to_owned())
            })
    }

    /// The CSRF field of the page's forms.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field in: {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

/// One request from the loopback address `from`.
async fn send(
    hub: &Hub,
    from: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(from.parse::<IpAddr>().unwrap()));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", hub.base()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .unwrap();
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} from {from} failed: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// Signs in through the UI's form as a browser does; returns the session
/// cookie's value.
async fn sign_in(hub: &Hub, from: &str, token: &str) -> String {
    let page = send(hub, from, "GET", "/signin", &[], None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let pre = page
        .set_cookie("spaceport_presession")
        .expect("the sign-in page sets the pre-session cookie");
    let cookie = format!("spaceport_presession={pre}");
    let body = format!("csrf={}&next=/&token={token}", page.csrf());
    let done = send(
        hub,
        from,
        "POST",
        "/signin",
        &[("cookie", &cookie), FORM],
        Some(&body),
    )
    .await;
    assert_eq!(done.status, 303, "sign-in: {}", done.body);
    done.set_cookie(SESSION_COOKIE)
        .expect("sign-in sets the session cookie")
}

fn session(value: &str) -> String {
    format!("{SESSION_COOKIE}={value}")
}

/// Whoami with a session cookie: the user's name, or the status.
async fn whoami_by_cookie(hub: &Hub, cookie: &str) -> Result<String, u16> {
    let a = send(
        hub,
        "127.0.0.1",
        "GET",
        "/api/whoami-v2",
        &[("cookie", cookie)],
        None,
    )
    .await;
    if a.status == 200 {
        Ok(a.json()["name"].as_str().unwrap_or_default().to_owned())
    } else {
        Err(a.status)
    }
}

async fn whoami(hub: &Hub, token: &str) -> u16 {
    hub.api_as(token, "GET", "/api/whoami-v2", None).await.0
}

/// A new user and their first (write) token.
async fn user(hub: &Hub, name: &str) -> String {
    let (s, body) = hub
        .api("POST", "/api/admin/users", Some(json!({ "name": name })))
        .await;
    assert_eq!(s, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn new_token(hub: &Hub, as_token: &str, label: &str, role: &str) -> (i64, String) {
    let (s, body) = hub
        .api_as(
            as_token,
            "POST",
            "/api/tokens",
            Some(json!({ "label": label, "role": role })),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let value = body["token"].as_str().unwrap().to_owned();
    let (s, list) = hub.api_as(&value, "GET", "/api/tokens", None).await;
    assert_eq!(s, 200, "{list}");
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["current"] == true)
        .and_then(|t| t["id"].as_i64())
        .expect("the listing marks the token in use");
    (id, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_not_the_token_and_dies_at_sign_out_or_when_its_token_is_revoked() {
    let hub = Hub::start(&[]).await;
    let bob = user(&hub, "bob").await;

    let id = sign_in(&hub, "127.0.0.1", &bob).await;
    assert!(
        !id.contains(&bob) && !bob.contains(&id),
        "the cookie holds a session id, not the token"
    );
    assert_eq!(
        whoami_by_cookie(&hub, &session(&id)).await,
        Ok("bob".into())
    );
    let old_style = format!("spaceport_token={bob}");
    assert_eq!(
        whoami_by_cookie(&hub, &old_style).await,
        Err(401),
        "a raw-token cookie signs in nothing"
    );
    assert_eq!(
        whoami_by_cookie(&hub, &session(&bob)).await,
        Err(401),
        "a token is not a session id"
    );

    // Sign out, then replay the old cookie.
    let home = send(
        &hub,
        "127.0.0.1",
        "GET",
        "/",
        &[("cookie", &session(&id))],
        None,
    )
    .await;
    assert!(home.body.contains("Sign out"), "{}", home.body);
    let body = format!("csrf={}", home.csrf());
    let out = send(
        &hub,
        "127.0.0.1",
        "POST",
        "/signout",
        &[("cookie", &session(&id)), FORM],
        Some(&body),
    )
    .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.set_cookie(SESSION_COOKIE).as_deref(), Some(""));
    assert_eq!(whoami_by_cookie(&hub, &session(&id)).await, Err(401));
    let replay = send(
        &hub,
        "127.0.0.1",
        "GET",
        "/",
        &[("cookie", &session(&id))],
        None,
    )
    .await;
    assert!(
        replay.body.contains("href=\"/signin\"") && !replay.body.contains("Sign out"),
        "the replayed cookie is signed out: {}",
        replay.body
    );
    assert_eq!(whoami(&hub, &bob).await, 200, "sign-out revokes no token");

    // Revoking the token a session was made from ends the session.
    let (laptop_id, laptop) = new_token(&hub, &bob, "laptop", "write").await;
    let a = sign_in(&hub, "127.0.0.1", &laptop).await;
    let b = sign_in(&hub, "127.0.0.1", &bob).await;
    assert_eq!(whoami_by_cookie(&hub, &session(&a)).await, Ok("bob".into()));
    let (s, body) = hub
        .api_as(&bob, "DELETE", &format!("/api/tokens/{laptop_id}"), None)
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(whoami_by_cookie(&hub, &session(&a)).await, Err(401));
    assert_eq!(
        whoami_by_cookie(&hub, &session(&b)).await,
        Ok("bob".into()),
        "sessions of other tokens go on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_listed_without_values_and_only_their_owner_revokes_them_with_a_write_token() {
    let hub = Hub::start(&[]).await;
    let bob = user(&hub, "bob").await;
    let alice = user(&hub, "alice").await;
    let (ci_id, ci) = new_token(&hub, &bob, "ci", "write").await;
    let (_, reader) = new_token(&hub, &bob, "reader", "read").await;

    let (s, list) = hub.api_as(&bob, "GET", "/api/tokens", None).await;
    assert_eq!(s, 200, "{list}");
    let text = list.to_string();
    for value in [&bob, &ci, &reader] {
        assert!(!text.contains(value.as_str()), "a value is listed: {text}");
    }
    let labels: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["first token", "ci", "reader"]);
    let ci_row = &list[1];
    assert_eq!(ci_row["id"], ci_id);
    assert_eq!(ci_row["role"], "write");
    assert!(ci_row["createdAt"].is_string());
    assert!(ci_row.get("token").is_none() && ci_row.get("hash").is_none());

    let path = format!("/api/tokens/{ci_id}");
    let anon = send(&hub, "127.0.0.1", "GET", "/api/tokens", &[], None).await;
    assert_eq!(anon.status, 401, "{}", anon.body);
    let anon = send(&hub, "127.0.0.1", "DELETE", &path, &[], None).await;
    assert_eq!(anon.status, 401, "{}", anon.body);
    let (s, body) = hub.api_as(&alice, "DELETE", &path, None).await;
    assert_eq!(s, 404, "another user's token is not found: {body}");
    let (s, body) = hub.api_as(&reader, "DELETE", &path, None).await;
    assert_eq!(s, 403, "a read token cannot revoke: {body}");
    let cookie = session(&sign_in(&hub, "127.0.0.1", &bob).await);
    let by_cookie = send(
        &hub,
        "127.0.0.1",
        "DELETE",
        &path,
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(
        by_cookie.status, 401,
        "the cookie does not write through the API"
    );
    assert_eq!(whoami(&hub, &ci).await, 200, "nothing revoked it yet");

    let (s, body) = hub.api_as(&bob, "DELETE", &path, None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(whoami(&hub, &ci).await, 401);
    let (s, _) = hub.api_as(&bob, "DELETE", &path, None).await;
    assert_eq!(s, 404, "gone");
    let (s, body) = hub.api_as(&bob, "DELETE", "/api/tokens/x", None).await;
    assert_eq!(s, 400, "{body}");

    // An admin sees and revokes anyone's.
    let (s, list) = hub.api("GET", "/api/admin/users/bob/tokens", None).await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 2);
    let reader_id = list[1]["id"].as_i64().unwrap();
    let (s, body) = hub
        .api_as(&alice, "GET", "/api/admin/users/bob/tokens", None)
        .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = hub
        .api(
            "DELETE",
            &format!("/api/admin/users/bob/tokens/{reader_id}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(whoami(&hub, &reader).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_bad_tokens_from_one_address_get_429_while_other_addresses_go_on() {
    let hub = Hub::start(&[]).await;
    let bad = [("authorization", "Bearer sp_not_a_real_token_at_all")];
    for i in 0..10 {
        let a = send(&hub, "127.0.0.2", "GET", "/api/whoami-v2", &bad, None).await;
        assert_eq!(a.status, 401, "attempt {i}: {}", a.body);
    }
    let held = send(&hub, "127.0.0.2", "GET", "/api/whoami-v2", &bad, None).await;
    assert_eq!(held.status, 429, "{}", held.body);
    let retry: u64 = held.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(
        held.body.contains("too many failed sign-ins"),
        "{}",
        held.body
    );
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let good = [("authorization", admin.as_str())];
    let held = send(&hub, "127.0.0.2", "GET", "/api/whoami-v2", &good, None).await;
    assert_eq!(held.status, 429, "credentials are not even checked");
    let anon = send(&hub, "127.0.0.2", "GET", "/api/spaces", &[], None).await;
    assert_eq!(anon.status, 200, "requests without credentials still pass");

    let other = send(&hub, "127.0.0.3", "GET", "/api/whoami-v2", &good, None).await;
    assert_eq!(other.status, 200, "{}", other.body);
    let other = send(&hub, "127.0.0.3", "GET", "/api/whoami-v2", &bad, None).await;
    assert_eq!(other.status, 401, "another address has its own count");

    // Failed UI sign-ins and git credentials count too.
    let page = send(&hub, "127.0.0.4", "GET", "/signin", &[], None).await;
    let pre = format!(
        "spaceport_presession={}",
        page.set_cookie("spaceport_presession").unwrap()
    );
    let body = format!("csrf={}&next=/&token=sp_wrong_token_value_123", page.csrf());
    for i in 0..5 {
        let a = send(
            &hub,
            "127.0.0.4",
            "POST",
            "/signin",
            &[("cookie", &pre), FORM],
            Some(&body),
        )
        .await;
        assert_eq!(a.status, 401, "sign-in {i}: {}", a.body);
    }
    let basic = format!("Basic {}", base64_encode(b"bob:sp_wrong_token_value_123"));
    for i in 0..5 {
        let a = send(
            &hub,
            "127.0.0.4",
            "GET",
            "/spaces/admin/nothing/info/refs?service=git-upload-pack",
            &[("authorization", &basic)],
            None,
        )
        .await;
        assert_eq!(a.status, 401, "git {i}: {}", a.body);
    }
    let held = send(
        &hub,
        "127.0.0.4",
        "POST",
        "/signin",
        &[("cookie", &pre), FORM],
        Some(&body),
    )
    .await;
    assert_eq!(held.status, 429, "{}", held.body);
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_lists_makes_and_revokes_tokens_and_revoking_its_own_signs_out() {
    let hub = Hub::start(&[]).await;
    let bob = user(&hub, "bob").await;
    let (_, laptop) = new_token(&hub, &bob, "<b>laptop</b>", "write").await;
    let cookie = session(&sign_in(&hub, "127.0.0.1", &laptop).await);

    let page = send(
        &hub,
        "127.0.0.1",
        "GET",
        "/account",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("&lt;b&gt;laptop&lt;/b&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&laptop) && !page.body.contains(&bob));
    assert!(page.body.contains("(this browser)"), "{}", page.body);

    // Make a token: its value is on the answer, once.
    let body = format!("csrf={}&label=phone&role=read", page.csrf());
    let made = send(
        &hub,
        "127.0.0.1",
        "POST",
        "/account/tokens",
        &[("cookie", &cookie), FORM],
        Some(&body),
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let marker = "<code id=\"new-token\">";
    let start = made.body.find(marker).expect("the new value is shown") + marker.len();
    let value = &made.body[start..start + made.body[start..].find('<').unwrap()];
    assert_eq!(whoami(&hub, value).await, 200);
    let again = send(
        &hub,
        "127.0.0.1",
        "GET",
        "/account",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert!(!again.body.contains(value), "shown once only");

    // Without the CSRF field nothing is revoked.
    let (_, list) = hub.api_as(&laptop, "GET", "/api/tokens", None).await;
    let laptop_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["current"] == true)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let revoke = format!("/account/tokens/{laptop_id}/revoke");
    let forged = send(
        &hub,
        "127.0.0.1",
        "POST",
        &revoke,
        &[("cookie", &cookie), FORM],
        Some("csrf=forged"),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(whoami(&hub, &laptop).await, 200);

    // A session of a read token may look but not revoke.
    let read_cookie = session(&sign_in(&hub, "127.0.0.1", value).await);
    let ro = send(
        &hub,
        "127.0.0.1",
        "GET",
        "/account",
        &[("cookie", &read_cookie)],
        None,
    )
    .await;
    assert!(!ro.body.contains("/revoke\""), "{}", ro.body);
    let body = format!("csrf={}", ro.csrf());
    let refused = send(
        &hub,
        "127.0.0.1",
        "POST",
        &revoke,
        &[("cookie", &read_cookie), FORM],
        Some(&body),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(whoami(&hub, &laptop).await, 200);

    // Revoking the token this browser signed in with signs it out.
    let body = format!("csrf={}", again.csrf());
    let done = send(
        &hub,
        "127.0.0.1",
        "POST",
        &revoke,
        &[("cookie", &cookie), FORM],
        Some(&body),
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.set_cookie(SESSION_COOKIE).as_deref(), Some(""));
    assert_eq!(whoami(&hub, &laptop).await, 401);
    assert_eq!(whoami_by_cookie(&hub, &cookie).await, Err(401));
}
