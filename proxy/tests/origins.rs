//! Origins, against real upstreams on loopback: what crosses between an
//! app and the hub or another app. A path-routed app shares one origin with
//! everything on the port, so it is sandboxed and gets and sets no cookies;
//! an app on its own host cannot set the hub's cookies or `Domain` cookies,
//! never receives them, and never receives a visitor's hub token; a private
//! app opens in the hub's frame through a ticket exchanged for a cookie of
//! its own host.

mod common;

use common::*;
use spaceport_proxy::{AccessChecker, AppPass, BoxFuture, SpaceId, Visibility};

/// Accepts the ticket `good-ticket` for bob/secret (exchanged for the cookie
/// value `pass-1`), the bearer `s3cret`, and recognises `hf_` tokens as the
/// hub's.
struct Tickets;

impl AccessChecker for Tickets {
    fn allows<'a>(&'a self, space: &'a SpaceId, token: &'a str) -> BoxFuture<'a, bool> {
        let ok = space.to_string() == "bob/secret" && matches!(token, "pass-1" | "s3cret");
        Box::pin(async move { ok })
    }

    fn exchange<'a>(
        &'a self,
        space: &'a SpaceId,
        ticket: &'a str,
    ) -> BoxFuture<'a, Option<AppPass>> {
        let ok = space.to_string() == "bob/secret" && ticket == "good-ticket";
        Box::pin(async move {
            ok.then(|| AppPass {
                value: "pass-1".into(),
                max_age: std::time::Duration::from_secs(600),
            })
        })
    }

    fn is_hub_credential(&self, credential: &str) -> bool {
        credential.starts_with("hf_")
    }
}

/// An app that sets the cookies a hostile app would.
async fn cookie_setter() -> std::net::SocketAddr {
    let (addr, _) = raw_upstream(|_| {
        Some((
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/html\r\n\
set-cookie: theme=dark; Path=/\r\n\
set-cookie: spaceport_session=attacker; Path=/\r\n\
set-cookie: __Host-spaceport_session=attacker; Path=/; Secure\r\n\
set-cookie: spaceport_app=forged; Path=/\r\n\
set-cookie: wide=1; Domain=spaces.test; Path=/\r\n\r\nok"
                .to_vec(),
            false,
        ))
    })
    .await;
    addr
}

fn set_cookies(got: &Got) -> Vec<String> {
    got.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_path_routed_app_is_sandboxed_and_neither_gets_nor_sets_cookies() {
    let echo = upstream("demo").await;
    let setter = cookie_setter().await;
    let (_p, addr) = proxy(
        config(),
        vec![
            route("alice/demo", echo.addr),
            route("alice/setter", setter),
        ],
        |b| b,
    )
    .await;
    let got = get(
        addr,
        "hub.test",
        "/apps/alice/demo/echo",
        &[("cookie", "spaceport_session=hub-session; theme=dark")],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.seen("cookie"),
        None,
        "no cookie of the shared origin reaches a path-routed app"
    );
    let csp = got.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("sandbox "), "{csp}");
    assert!(!csp.contains("allow-same-origin"), "{csp}");
    let set = get(addr, "hub.test", "/apps/alice/setter/", &[]).await;
    assert_eq!(set.status, 200);
    assert_eq!(set_cookies(&set), Vec::<String>::new());
    assert!(
        set.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox ")
    );
}

#[tokio::test]
async fn an_app_on_its_own_host_cannot_set_the_hubs_cookies_or_domain_cookies() {
    let setter = cookie_setter().await;
    let (_p, addr) = proxy(config(), vec![route("alice/setter", setter)], |b| b).await;
    let got = get(addr, "alice-setter.spaces.test", "/", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(set_cookies(&got), ["theme=dark; Path=/"]);
    assert!(
        got.headers.get("content-security-policy").is_none(),
        "an app on its own origin is not sandboxed"
    );
}

#[tokio::test]
async fn the_hubs_cookies_and_a_visitors_hub_token_never_reach_an_app() {
    let echo = upstream("demo").await;
    let (_p, addr) = proxy(config(), vec![route("alice/demo", echo.addr)], |b| {
        b.access(Tickets)
    })
    .await;
    let got = get(
        addr,
        "alice-demo.spaces.test",
        "/echo",
        &[
            (
                "cookie",
                "spaceport_session=t; __Host-spaceport_session=u; spaceport_app=v; theme=dark",
            ),
            ("authorization", "Bearer hf_visitor"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.seen("cookie").unwrap(), "theme=dark");
    assert_eq!(got.seen("authorization"), None);
    let own = get(
        addr,
        "alice-demo.spaces.test",
        "/echo",
        &[("authorization", "Bearer the-apps-own-key")],
    )
    .await;
    assert_eq!(
        own.seen("authorization").unwrap(),
        "Bearer the-apps-own-key",
        "an app's own scheme passes"
    );
}

#[tokio::test]
async fn a_ticket_opens_a_private_app_on_its_own_host_through_a_cookie() {
    let echo = upstream("bob").await;
    let mut secret = route("bob/secret", echo.addr);
    secret.visibility = Visibility::Private;
    let (_p, addr) = proxy(config(), vec![secret], |b| b.access(Tickets)).await;
    let host = "bob-secret.spaces.test";

    let signed = get(addr, host, "/page?x=1&__sign=good-ticket&y=2", &[]).await;
    assert_eq!(signed.status, 303);
    assert_eq!(
        signed.headers["location"], "/page?x=1&y=2",
        "the ticket leaves the URL"
    );
    let cookie = set_cookies(&signed).join("\n");
    assert!(cookie.starts_with("spaceport_app=pass-1;"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Max-Age=600"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");

    let with_cookie = get(addr, host, "/echo", &[("cookie", "spaceport_app=pass-1")]).await;
    assert_eq!(with_cookie.status, 200);
    assert_eq!(with_cookie.seen("cookie"), None, "the app never sees it");

    let bad = get(addr, host, "/echo?__sign=forged", &[]).await;
    assert_eq!(bad.status, 404, "a bad ticket is no way in");
    assert!(set_cookies(&bad).is_empty());
    let via_path = get(
        addr,
        "hub.test",
        "/apps/bob/secret/echo?__sign=good-ticket",
        &[],
    )
    .await;
    assert_eq!(
        via_path.status, 404,
        "no ticket exchange on the shared origin"
    );
    let via_path_cookie = get(
        addr,
        "hub.test",
        "/apps/bob/secret/echo",
        &[("cookie", "spaceport_app=pass-1")],
    )
    .await;
    assert_eq!(via_path_cookie.status, 404, "a path route reads no cookie");
}

#[tokio::test]
async fn on_localhost_the_app_cookie_works_inside_the_hubs_frame() {
    let echo = upstream("bob").await;
    let mut secret = route("bob/secret", echo.addr);
    secret.visibility = Visibility::Private;
    let mut cfg = config();
    cfg.domain = Some("localhost".into());
    let (_p, addr) = proxy(cfg, vec![secret], |b| b.access(Tickets)).await;
    let signed = get(
        addr,
        "bob-secret.localhost:8080",
        "/?__sign=good-ticket",
        &[],
    )
    .await;
    assert_eq!(signed.status, 303);
    assert_eq!(signed.headers["location"], "/");
    let cookie = set_cookies(&signed).join("\n");
    assert!(
        cookie.contains("SameSite=None; Secure; Partitioned"),
        "{cookie}"
    );
    // Elsewhere over plain HTTP browsers refuse SameSite=None without TLS.
    let mut plain = config();
    plain.domain = Some("spaces.test".into());
    let echo2 = upstream("bob").await;
    let mut secret2 = route("bob/secret", echo2.addr);
    secret2.visibility = Visibility::Private;
    let (_p2, addr2) = proxy(plain, vec![secret2], |b| b.access(Tickets)).await;
    let lax = get(addr2, "bob-secret.spaces.test", "/?__sign=good-ticket", &[]).await;
    assert!(set_cookies(&lax).join("").contains("SameSite=Lax"));
}
