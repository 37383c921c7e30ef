//! Routing, headers, access, embedding, limits and failure pages, against
//! real upstreams on loopback.

mod common;

use std::time::Duration;

use common::*;
use spaceport_proxy::{Route, StaticTokens, Visibility};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tokens() -> StaticTokens {
    let mut m = std::collections::HashMap::new();
    m.insert(
        "bob/secret".parse().unwrap(),
        std::collections::HashSet::from(["s3cret".to_owned()]),
    );
    StaticTokens::new(m)
}

#[tokio::test]
async fn host_route_reaches_the_space_and_normalises_the_label() {
    let up = upstream("mixed").await;
    let (_p, addr) = proxy(config(), vec![route("Alice_B/My.App", up.addr)], |b| b).await;
    let got = get(addr, "alice-b-my-app.spaces.test", "/echo?q=1", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["tag"], "mixed");
    assert_eq!(got.json()["uri"], "/echo?q=1");
    assert_eq!(got.seen("host").unwrap(), "alice-b-my-app.spaces.test");
    let upper = get(addr, "ALICE-B-MY-APP.Spaces.Test:8080", "/echo", &[]).await;
    assert_eq!(upper.status, 200);
    assert_eq!(
        get(addr, "nobody-here.spaces.test", "/echo", &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn path_prefix_route_strips_the_prefix_and_sets_forwarded_headers() {
    let up = upstream("alice").await;
    let (_p, addr) = proxy(config(), vec![route("alice/demo", up.addr)], |b| b).await;
    let got = get(
        addr,
        "hub.test",
        "/apps/alice/demo/queue/join?x=1",
        &[("x-forwarded-for", "6.6.6.6")],
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["uri"], "/queue/join?x=1");
    assert_eq!(got.seen("x-forwarded-prefix").unwrap(), "/apps/alice/demo");
    assert_eq!(got.seen("x-forwarded-host").unwrap(), "hub.test");
    assert_eq!(got.seen("x-forwarded-proto").unwrap(), "http");
    assert_eq!(
        got.seen("x-forwarded-for").unwrap(),
        "127.0.0.1",
        "client XFF is not trusted"
    );
    assert_eq!(
        got.seen("forwarded").unwrap(),
        "for=127.0.0.1;host=\"hub.test\";proto=http"
    );
    let redirect = get(addr, "hub.test", "/apps/alice/demo?x=1", &[]).await;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.headers["location"], "/apps/alice/demo/?x=1");
    assert_eq!(
        get(addr, "hub.test", "/apps/alice/other/", &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways_and_request_ids_flow() {
    let up = upstream("alice").await;
    let (_p, addr) = proxy(config(), vec![route("alice/demo", up.addr)], |b| b).await;
    let got = get(
        addr,
        "alice-demo.spaces.test",
        "/echo",
        &[
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("proxy-authorization", "x"),
            ("x-keep", "1"),
        ],
    )
    .await;
    assert_eq!(got.seen("x-hop"), None);
    assert_eq!(got.seen("te"), None);
    assert_eq!(got.seen("proxy-authorization"), None);
    assert_eq!(got.seen("x-keep").unwrap(), "1");
    assert!(
        got.headers.get("x-resp-hop").is_none(),
        "response header named in Connection"
    );
    let direct = get(up.addr, "x", "/echo", &[]).await;
    assert_eq!(
        direct.headers["x-resp-hop"], "1",
        "the upstream does send it"
    );
    let id = got.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(got.seen("x-request-id").unwrap(), id);
    let kept = get(
        addr,
        "alice-demo.spaces.test",
        "/echo",
        &[("x-request-id", "trace-42")],
    )
    .await;
    assert_eq!(kept.headers["x-request-id"], "trace-42");
    assert_eq!(kept.seen("x-request-id").unwrap(), "trace-42");
}

#[tokio::test]
async fn private_space_is_404_without_a_token_and_200_with_one() {
    let up = upstream("bob").await;
    let mut secret = route("bob/secret", up.addr);
    secret.visibility = Visibility::Private;
    let (_p, addr) = proxy(config(), vec![secret, route("alice/demo", up.addr)], |b| {
        b.access(tokens())
    })
    .await;
    let none = get(addr, "bob-secret.spaces.test", "/echo", &[]).await;
    let missing = get(addr, "nobody-none.spaces.test", "/echo", &[]).await;
    assert_eq!(none.status, 404);
    assert_eq!(
        none.body, missing.body,
        "a private Space looks exactly like no Space"
    );
    let wrong = get(
        addr,
        "bob-secret.spaces.test",
        "/echo",
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status, 404);
    let bearer = get(
        addr,
        "bob-secret.spaces.test",
        "/echo",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(bearer.status, 200);
    assert_eq!(
        bearer.seen("authorization"),
        None,
        "the hub token is not passed to the app"
    );
    let cookie = get(
        addr,
        "bob-secret.spaces.test",
        "/echo",
        &[("cookie", "theme=dark; spaceport_app=s3cret")],
    )
    .await;
    assert_eq!(cookie.status, 200);
    assert_eq!(cookie.seen("cookie").unwrap(), "theme=dark");
    let hub_cookie = get(
        addr,
        "bob-secret.spaces.test",
        "/echo",
        &[("cookie", "spaceport_session=s3cret")],
    )
    .await;
    assert_eq!(
        hub_cookie.status, 404,
        "the hub's own cookie opens no app: it never belongs on an app's host"
    );
    let via_path = get(
        addr,
        "hub.test",
        "/apps/bob/secret/echo",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(via_path.status, 200);
    // A token for bob/secret opens nothing else, and public Spaces need none.
    assert_eq!(
        get(addr, "alice-demo.spaces.test", "/echo", &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn host_spoofing_cannot_reach_another_space() {
    let alice = upstream("alice").await;
    let bob = upstream("bob").await;
    let mut secret = route("bob/secret", bob.addr);
    secret.visibility = Visibility::Private;
    let (_p, addr) = proxy(
        config(),
        vec![route("alice/demo", alice.addr), secret],
        |b| b.access(tokens()),
    )
    .await;

    // A Space host never falls back to path routing.
    let via_path = get(addr, "alice-demo.spaces.test", "/apps/bob/secret/echo", &[]).await;
    assert_eq!(via_path.json()["tag"], "alice");
    // X-Forwarded-Host from the client neither routes nor reaches the app.
    let xfh = get(
        addr,
        "alice-demo.spaces.test",
        "/echo",
        &[("x-forwarded-host", "bob-secret.spaces.test")],
    )
    .await;
    assert_eq!(xfh.json()["tag"], "alice");
    assert_eq!(
        xfh.seen("x-forwarded-host").unwrap(),
        "alice-demo.spaces.test"
    );

    // An absolute-form target that disagrees with Host is refused.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET http://bob-secret.spaces.test/echo HTTP/1.1\r\nhost: alice-demo.spaces.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(!out.contains("\"tag\""), "{out}");

    // Two Host headers are refused.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /echo HTTP/1.1\r\nhost: alice-demo.spaces.test\r\nhost: bob-secret.spaces.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");

    // A look-alike host outside the domain routes nowhere.
    assert_eq!(
        get(addr, "bob-secret.spaces.test.evil.test", "/echo", &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn frame_ancestors_and_custom_headers_follow_the_route() {
    let up = upstream("a").await;
    let mut closed = route("alice/closed", up.addr);
    closed.disable_embedding = true;
    closed
        .custom_headers
        .insert("cross-origin-opener-policy".into(), "same-origin".into());
    closed
        .custom_headers
        .insert("Cross-Origin-Embedder-Policy".into(), "require-corp".into());
    let (_p, addr) = proxy(config(), vec![closed, route("alice/open", up.addr)], |b| b).await;
    let c = get(addr, "alice-closed.spaces.test", "/page", &[]).await;
    assert_eq!(
        c.headers["content-security-policy"],
        "frame-ancestors 'self' https://hub.test"
    );
    assert_eq!(c.headers["cross-origin-opener-policy"], "same-origin");
    assert_eq!(c.headers["cross-origin-embedder-policy"], "require-corp");
    assert!(c.headers.get("x-frame-options").is_none());
    let o = get(addr, "alice-open.spaces.test", "/page", &[]).await;
    assert!(o.headers.get("content-security-policy").is_none());
    assert!(o.headers.get("cross-origin-opener-policy").is_none());
    let mut bad = route("alice/bad", up.addr);
    bad.custom_headers.insert("set-cookie".into(), "x=1".into());
    assert!(
        _p.apply_routes(vec![bad]).is_err(),
        "headers outside the allowlist are refused"
    );
}

#[tokio::test]
async fn failure_pages_name_the_space_with_502_503_504() {
    let up = upstream("a").await;
    let mut cfg = config();
    cfg.timeouts.response_head = Duration::from_millis(300);
    let mut stopped = route("carol/asleep", up.addr);
    stopped.state = spaceport_proxy::SpaceState::Stopped;
    let (_p, addr) = proxy(
        cfg,
        vec![
            route("carol/dead", dead_port().await),
            route("carol/slow", up.addr),
            stopped,
        ],
        |b| b,
    )
    .await;
    let html = [("accept", "text/html")];
    let bad = get(addr, "carol-dead.spaces.test", "/", &html).await;
    assert_eq!(bad.status, 502);
    assert!(bad.text().contains("carol/dead"), "{}", bad.text());
    assert_eq!(bad.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(bad.headers["x-content-type-options"], "nosniff");
    let slow = get(addr, "carol-slow.spaces.test", "/hang", &[]).await;
    assert_eq!(slow.status, 504);
    assert!(slow.text().contains("carol/slow"));
    let dead_5xx = r#"spaceport_proxy_requests_total{class="5xx",space="carol/dead"}"#;
    assert_eq!(
        metric(&_p, dead_5xx),
        Some(1.0),
        "proxy-made failures are metered"
    );
    let asleep = get(addr, "carol-asleep.spaces.test", "/", &[]).await;
    assert_eq!(asleep.status, 503);
    assert!(asleep.text().contains("carol/asleep"));
    assert!(asleep.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn header_and_body_limits_answer_431_and_413() {
    let up = upstream("a").await;
    let mut cfg = config();
    cfg.limits.max_header_bytes = 4096;
    cfg.limits.max_body_bytes = 1000;
    let (_p, addr) = proxy(cfg, vec![route("alice/demo", up.addr)], |b| b).await;
    let big = "x".repeat(5000);
    let got = get(addr, "alice-demo.spaces.test", "/echo", &[("x-big", &big)]).await;
    assert_eq!(got.status, 431);
    let small = send(
        addr,
        "POST",
        "alice-demo.spaces.test",
        "/upload",
        &[],
        &[b'a'; 1000],
    )
    .await;
    assert_eq!(small.text(), "1000");
    let declared = send(
        addr,
        "POST",
        "alice-demo.spaces.test",
        "/upload",
        &[],
        &[b'a'; 1001],
    )
    .await;
    assert_eq!(declared.status, 413);
    // A chunked body has no Content-Length; it is cut while streaming.
    let chunks = futures_util::stream::iter((0..4).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from(vec![
            b'a';
            400
        ])))
    }));
    let body = http_body_util::StreamBody::new(chunks);
    let req = http::Request::post(format!("http://{addr}/upload"))
        .header("host", "alice-demo.spaces.test")
        .body(body)
        .unwrap();
    let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn healthz_metrics_and_visits() {
    let up = upstream("a").await;
    let (p, addr) = proxy(config(), vec![route("alice/demo", up.addr)], |b| b).await;
    assert_eq!(
        get(addr, "proxy.internal", "/healthz", &[]).await.status,
        200
    );
    let browser = [("accept", "text/html,*/*"), ("user-agent", "test-browser")];
    for _ in 0..3 {
        assert_eq!(
            get(addr, "alice-demo.spaces.test", "/page", &browser)
                .await
                .status,
            200
        );
    }
    get(addr, "alice-demo.spaces.test", "/echo", &browser).await; // JSON: not a page view
    get(addr, "alice-demo.spaces.test", "/app.js", &browser).await; // asset
    get(addr, "nobody-x.spaces.test", "/", &[]).await;
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let p2 = p.clone();
    tokio::spawn(async move { p2.serve_admin(admin, std::future::pending()).await });
    let m = get(admin_addr, "localhost", "/metrics", &[]).await;
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(
        text.contains("spaceport_proxy_visits_total{space=\"alice/demo\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("spaceport_proxy_unique_visitors{space=\"alice/demo\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("spaceport_proxy_requests_total{class=\"2xx\",space=\"alice/demo\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("spaceport_proxy_unrouted_requests_total 1"),
        "{text}"
    );
    assert!(metric(&p, "spaceport_proxy_sent_bytes_total{space=\"alice/demo\"}").unwrap() > 0.0);
    assert!(
        text.contains(
            "spaceport_proxy_response_head_duration_seconds_count{space=\"alice/demo\"} 5"
        )
    );
    assert_eq!(
        get(admin_addr, "localhost", "/healthz", &[]).await.status,
        200
    );
}

#[tokio::test]
async fn route_swap_keeps_open_connections_and_moves_new_requests() {
    let old = upstream("old").await;
    let new = upstream("new").await;
    let (p, addr) = proxy(config(), vec![route("alice/demo", old.addr)], |b| b).await;
    let slow = tokio::spawn(get(addr, "alice-demo.spaces.test", "/slow", &[]));
    old.entered.notified().await;
    p.apply_routes(vec![
        route("alice/demo", new.addr),
        route("bob/other", new.addr),
    ])
    .unwrap();
    assert_eq!(
        get(addr, "alice-demo.spaces.test", "/echo", &[])
            .await
            .json()["tag"],
        "new"
    );
    old.release.notify_one();
    let finished = slow.await.unwrap();
    assert_eq!(
        finished.status, 200,
        "the in-flight request finished on the old upstream"
    );
    assert_eq!(finished.headers["x-upstream"], "old");
    // An invalid route is left out and reported; the rest of the update
    // still applies.
    let err = p
        .apply_routes(vec![
            Route::new("x/y".parse().unwrap(), "nope"),
            route("bob/other", new.addr),
        ])
        .unwrap_err();
    assert_eq!(err.rejected.len(), 1, "{err}");
    assert_eq!(
        get(addr, "bob-other.spaces.test", "/echo", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        get(addr, "alice-demo.spaces.test", "/echo", &[])
            .await
            .status,
        404,
        "the update without alice/demo was applied"
    );
}

#[tokio::test]
async fn a_colliding_route_never_freezes_the_table_for_the_other_spaces() {
    let up = upstream("up").await;
    let (p, addr) = proxy(config(), vec![route("alice/my-app", up.addr)], |b| b).await;
    let mut private = route("alice/my-app", up.addr);
    private.visibility = Visibility::Private;
    // `alice-my/app` wants the host label `alice/my-app` has; the update
    // also makes `alice/my-app` private and adds a new Space.
    let err = p
        .apply_routes(vec![
            private,
            route("alice-my/app", up.addr),
            route("carol/new", up.addr),
        ])
        .unwrap_err();
    assert_eq!(err.rejected.len(), 1, "{err}");
    assert!(err.to_string().contains("alice-my/app"), "{err}");
    assert_eq!(
        get(addr, "alice-my-app.spaces.test", "/echo", &[])
            .await
            .status,
        404,
        "the visibility change was applied"
    );
    assert_eq!(
        get(addr, "carol-new.spaces.test", "/echo", &[])
            .await
            .status,
        200,
        "the new Space is served"
    );
    assert_eq!(
        get(addr, "hub.test", "/apps/alice-my/app/echo", &[])
            .await
            .status,
        404,
        "the left-out Space has no path route either"
    );
    assert_eq!(metric(&p, "spaceport_proxy_routes_rejected"), Some(1.0));
    p.apply_routes(vec![route("carol/new", up.addr)]).unwrap();
    assert_eq!(metric(&p, "spaceport_proxy_routes_rejected"), Some(0.0));
}

#[tokio::test]
async fn shutdown_stops_accepting_and_drains_in_flight_requests() {
    let up = upstream("a").await;
    let proxy = spaceport_proxy::Proxy::builder(config()).build().unwrap();
    proxy
        .apply_routes(vec![route("alice/demo", up.addr)])
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let p = proxy.clone();
    let server = tokio::spawn(async move {
        p.serve(listener, None, async {
            let _ = stopped.await;
        })
        .await
    });
    let slow = tokio::spawn(get(addr, "alice-demo.spaces.test", "/slow", &[]));
    up.entered.notified().await;
    stop.send(()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "listener still open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !server.is_finished(),
        "the server waits for the in-flight request"
    );
    up.release.notify_one();
    assert_eq!(slow.await.unwrap().status, 200);
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Answers every request it is handed with its path, as a hub would.
struct Hub;

impl spaceport_proxy::Fallback for Hub {
    fn call(
        &self,
        req: http::Request<hyper::body::Incoming>,
        _: spaceport_proxy::ConnInfo,
    ) -> spaceport_proxy::BoxFuture<'static, http::Response<spaceport_proxy::forward::ProxyBody>>
    {
        use http_body_util::BodyExt;
        let text = format!("hub: {}", req.uri().path());
        Box::pin(async move {
            http::Response::new(
                http_body_util::Full::new(bytes::Bytes::from(text))
                    .map_err(|e| match e {})
                    .boxed(),
            )
        })
    }
}

#[tokio::test]
async fn requests_naming_no_space_go_to_the_fallback_and_no_others() {
    let up = upstream("space").await;
    let (_p, addr) = proxy(config(), vec![route("alice/demo", up.addr)], |b| {
        b.fallback(Hub)
    })
    .await;
    // Not a Space: the hub answers.
    let got = get(addr, "hub.example", "/api/whoami-v2", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "hub: /api/whoami-v2");
    // A Space, by host and by path prefix: the Space answers.
    let got = get(addr, "alice-demo.spaces.test", "/echo", &[]).await;
    assert_eq!(got.json()["tag"], "space");
    let got = get(addr, "hub.example", "/apps/alice/demo/echo", &[]).await;
    assert_eq!(got.json()["tag"], "space");
    // A Space host naming no Space is never handed to the hub.
    let got = get(addr, "nobody-here.spaces.test", "/api/whoami-v2", &[]).await;
    assert_eq!(got.status, 404);
    assert!(!got.text().starts_with("hub:"), "{}", got.text());
}

/// An upstream that counts its connections and answers every request on
/// a connection with `ok`, closing the connection after one response when
/// `close_after_one` is set (without saying so in a header, as a crashed
/// or restarted app would).
async fn counting_upstream(
    close_after_one: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    raw_upstream(move |head: &str| {
        let head = head.to_ascii_lowercase();
        let reply: &[u8] = if head.starts_with("head ") {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
        } else if head.contains("/empty") {
            b"HTTP/1.1 204 No Content\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        Some((reply.to_vec(), close_after_one))
    })
    .await
}

#[tokio::test]
async fn upstream_connections_are_reused_and_a_closed_one_is_not() {
    use std::sync::atomic::Ordering;
    // Kept alive: sequential requests of every kind share one connection.
    let (up, conns) = counting_upstream(false).await;
    let (_p, addr) = proxy(config(), vec![route("alice/pool", up)], |b| b).await;
    for (i, (method, path)) in [("GET", "/"), ("HEAD", "/"), ("GET", "/empty")]
        .iter()
        .cycle()
        .take(30)
        .enumerate()
    {
        let got = send(addr, method, "alice-pool.spaces.test", path, &[], b"").await;
        assert!(got.status.is_success(), "request {i}: {}", got.status);
        if *method == "GET" && *path == "/" {
            assert_eq!(got.text(), "ok");
        }
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1, "one pooled connection");

    // Closed by the app after each response: every request still succeeds,
    // each on a new connection.
    let (up, conns) = counting_upstream(true).await;
    let (_p, addr) = proxy(config(), vec![route("alice/closing", up)], |b| b).await;
    for i in 0..10 {
        let got = get(addr, "alice-closing.spaces.test", "/", &[]).await;
        assert_eq!(got.status, 200, "request {i}: {}", got.text());
        assert_eq!(got.text(), "ok");
        // Give the proxy's side of the closed connection time to see the
        // close, as it would between two real visits.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(conns.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn an_app_answering_before_the_upload_ends_does_not_stall_the_next_request() {
    // The app answers a POST at once, without reading its body, and keeps
    // the connection; it answers a GET with `ok`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(head) = read_head(&mut s, &mut buf).await {
                    if head.starts_with("POST") {
                        let _ = s
                            .write_all(
                                b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n",
                            )
                            .await;
                        // Holds the connection, reading nothing more.
                        std::future::pending::<()>().await;
                    }
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let (_p, addr) = proxy(config(), vec![route("alice/upload", up)], |b| b).await;
    // A client starts a large upload and stalls after the first bytes.
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(
            b"POST /upload HTTP/1.1\r\nhost: alice-upload.spaces.test\r\ncontent-length: 1000000\r\n\r\n",
        )
        .await
        .unwrap();
    client.write_all(&[b'x'; 1000]).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(client.read(&mut byte).await.unwrap(), 1, "the proxy closed");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // The upload's connection to the app cannot take a request until the
    // upload ends; the next visit must not wait for it.
    let next = tokio::time::timeout(
        Duration::from_secs(10),
        get(addr, "alice-upload.spaces.test", "/", &[]),
    )
    .await
    .expect("the next request is answered while the upload stalls");
    assert_eq!(next.status, 200);
    assert_eq!(next.text(), "ok");
    drop(client);
}
