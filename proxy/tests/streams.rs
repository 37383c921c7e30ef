//! Streaming through the proxy: WebSocket, SSE, HTTP/2,
//! TLS with ALPN, balancing, and idle tracking of open streams.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn websocket(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut().insert("host", host.parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

async fn next_text(ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> String {
    let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    msg.into_text().unwrap().to_string()
}

#[tokio::test]
async fn websocket_echoes_through_host_and_path_routes() {
    let up = upstream("ws").await;
    let (_p, addr) = proxy(config(), vec![route("alice/chat", up.addr)], |b| b).await;
    let mut ws = websocket(addr, "alice-chat.spaces.test", "/ws").await;
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        assert_eq!(next_text(&mut ws).await, format!("hello {i}"));
    }
    ws.send(Message::binary(vec![7u8; 100_000])).await.unwrap();
    let big = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(big.into_data().len(), 100_000);
    let mut via_path = websocket(addr, "hub.test", "/apps/alice/chat/ws").await;
    via_path.send(Message::text("prefixed")).await.unwrap();
    assert_eq!(next_text(&mut via_path).await, "prefixed");
}

#[tokio::test]
async fn sse_events_arrive_one_by_one_and_count_as_open_streams() {
    let up = upstream("sse").await;
    let (p, addr) = proxy(config(), vec![route("alice/stream", up.addr)], |b| b).await;
    let req = http::Request::get(format!("http://{addr}/sse"))
        .header("host", "alice-stream.spaces.test")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let space = "alice/stream".parse().unwrap();
    for i in 0..5 {
        // The next event is only produced after the previous one arrived:
        // a proxy that buffered would never deliver it and time out here.
        up.sse.send(format!("event {i}")).await.unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\n\n") {
            let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
                .await
                .expect("event delivered without waiting for more")
                .unwrap()
                .unwrap();
            got.extend_from_slice(&frame.into_data().unwrap());
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("data: event {i}\n\n")
        );
        assert_eq!(p.activity(&space).unwrap().open_streams, 1);
    }
    drop(body);
    eventually("the SSE stream to close", || {
        p.activity(&space).unwrap().open_streams == 0
    })
    .await;
}

#[tokio::test]
async fn http2_client_with_prior_knowledge_is_served() {
    let up = upstream("h2").await;
    let (_p, addr) = proxy(config(), vec![route("alice/demo", up.addr)], |b| b).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut streams = Vec::new();
    for i in 0..10 {
        let req = http::Request::get(format!("http://alice-demo.spaces.test/echo?i={i}"))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        streams.push(send.send_request(req));
    }
    for (i, s) in streams.into_iter().enumerate() {
        let resp = s.await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["uri"], format!("/echo?i={i}"));
        assert_eq!(v["headers"]["host"][0], "alice-demo.spaces.test");
    }
    // :authority and a contradicting Host header are refused.
    let req = http::Request::get("http://alice-demo.spaces.test/echo")
        .header("host", "bob-secret.spaces.test")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send.send_request(req).await.unwrap().status(), 400);
}

#[tokio::test]
async fn tls_negotiates_h2_by_alpn_with_a_wildcard_certificate() {
    let up = upstream("tls").await;
    let cert = rcgen::generate_simple_self_signed(vec!["*.spaces.test".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let acceptor = spaceport_proxy::tls::acceptor(&cert_path, &key_path).unwrap();

    let proxy = spaceport_proxy::Proxy::builder(config()).build().unwrap();
    proxy
        .apply_routes(vec![route("alice/demo", up.addr)])
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let p = proxy.clone();
    tokio::spawn(async move {
        p.serve(listener, Some(acceptor), std::future::pending())
            .await
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    for (alpn, want) in [
        (
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            http::Version::HTTP_2,
        ),
        (vec![], http::Version::HTTP_11),
    ] {
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        cfg.alpn_protocols = alpn;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("alice-demo.spaces.test").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(tls);
        let req = http::Request::get("https://alice-demo.spaces.test/echo")
            .header("host", "alice-demo.spaces.test")
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
        let resp = if want == http::Version::HTTP_2 {
            let mut req = req;
            req.headers_mut().remove("host");
            let (mut s, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            s.send_request(req).await.unwrap()
        } else {
            let (mut s, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let (mut parts, body) = req.into_parts();
            parts.uri = "/echo".parse().unwrap();
            s.send_request(http::Request::from_parts(parts, body))
                .await
                .unwrap()
        };
        assert_eq!(resp.version(), want);
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["headers"]["x-forwarded-proto"][0], "https");
    }
}

#[tokio::test]
async fn idle_tracking_counts_a_long_lived_websocket_as_active() {
    let up = upstream("ws").await;
    let (p, addr) = proxy(config(), vec![route("alice/chat", up.addr)], |b| b).await;
    let space = "alice/chat".parse().unwrap();
    let mut ws = websocket(addr, "alice-chat.spaces.test", "/ws").await;
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "hi");
    eventually("the tunnel to be counted", || {
        p.activity(&space).unwrap().open_streams == 1
    })
    .await;
    // The socket stays open and silent; the Space must not look idle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = p.activity(&space).unwrap();
    assert_eq!(a.idle_for, Duration::ZERO, "{a:?}");
    assert_eq!(
        metric(&p, "spaceport_proxy_open_streams{space=\"alice/chat\"}"),
        Some(1.0)
    );
    ws.close(None).await.unwrap();
    drop(ws);
    eventually("the tunnel to close", || {
        p.activity(&space).unwrap().open_streams == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(p.activity(&space).unwrap().idle_for >= Duration::from_millis(100));
}

#[tokio::test]
async fn replicas_are_balanced_by_outstanding_requests_with_sticky_cookies() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let mut r = route("alice/multi", a.addr);
    r.upstreams.push(b.addr.to_string());
    let (_p, addr) = proxy(config(), vec![r], |b| b).await;
    let host = "alice-multi.spaces.test";

    // One request parked on a replica makes the other the least loaded.
    let parked = tokio::spawn(get(addr, host, "/slow", &[]));
    tokio::select! {
        () = a.entered.notified() => {}
        () = b.entered.notified() => {}
    }
    let first = get(addr, host, "/echo", &[]).await;
    let free = first.json()["tag"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        assert_eq!(
            get(addr, host, "/echo", &[]).await.json()["tag"],
            free.as_str()
        );
    }
    a.release.notify_one();
    b.release.notify_one();
    let parked = parked.await.unwrap();
    assert_ne!(parked.headers["x-upstream"], free.as_str());

    // The cookie pins a visitor to its replica, whatever the load.
    let cookie = parked.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("spaceport_replica="), "{cookie}");
    let pinned = parked.headers["x-upstream"].to_str().unwrap().to_owned();
    for _ in 0..5 {
        let got = get(addr, host, "/echo", &[("cookie", &cookie)]).await;
        assert_eq!(got.json()["tag"], pinned.as_str());
        assert!(
            got.headers.get("set-cookie").is_none(),
            "no new cookie when it already matches"
        );
    }
}

#[tokio::test]
async fn a_dead_replica_is_ejected_and_requests_still_succeed() {
    let a = upstream("alive").await;
    let mut r = route("alice/multi", dead_port().await);
    r.upstreams.push(a.addr.to_string());
    let (p, addr) = proxy(config(), vec![r], |b| b).await;
    for _ in 0..6 {
        let got = get(addr, "alice-multi.spaces.test", "/echo", &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.json()["tag"], "alive");
    }
    let ejections = metric(
        &p,
        "spaceport_proxy_upstream_ejections_total{space=\"alice/multi\"}",
    )
    .unwrap();
    assert!(
        (1.0..=2.0).contains(&ejections),
        "ejected once, not retried every time: {ejections}"
    );
}
