//! Shared test fixtures: real upstreams and a real proxy on loopback.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, any, post};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use spaceport_proxy::{Proxy, ProxyBuilder, ProxyConfig, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify, mpsc};

/// A running upstream app.
pub struct Upstream {
    pub addr: SocketAddr,
    /// Feeds `/sse`: each string becomes one event.
    pub sse: mpsc::Sender<String>,
    /// Releases requests waiting in `/slow`.
    pub release: Arc<Notify>,
    /// Signalled when a request enters `/slow`.
    pub entered: Arc<Notify>,
}

#[derive(Clone)]
struct AppState {
    tag: &'static str,
    sse_rx: Arc<Mutex<Option<mpsc::Receiver<String>>>>,
    release: Arc<Notify>,
    entered: Arc<Notify>,
}

async fn echo(State(s): State<AppState>, req: Request) -> Response {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.to_string())
            .or_default()
            .push(v.to_str().unwrap_or("?").to_owned());
    }
    let body = serde_json::json!({
        "tag": s.tag,
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers,
    });
    (
        [
            ("content-type", "application/json"),
            ("x-upstream", s.tag),
            ("connection", "x-resp-hop"),
            ("x-resp-hop", "1"),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn page(State(s): State<AppState>) -> Response {
    (
        [
            ("content-type", "text/html; charset=utf-8"),
            ("x-upstream", s.tag),
        ],
        "<!doctype html><title>app</title><p>hello</p>",
    )
        .into_response()
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let reply = match msg {
                Message::Text(t) => Message::Text(t),
                Message::Binary(b) => Message::Binary(b),
                Message::Close(_) => break,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

async fn sse(State(s): State<AppState>) -> Response {
    let rx = s
        .sse_rx
        .lock()
        .await
        .take()
        .expect("one /sse stream per upstream");
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        Some((
            Ok::<_, Infallible>(Bytes::from(format!("data: {event}\n\n"))),
            rx,
        ))
    });
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn upload(body: Body) -> Response {
    let mut stream = body.into_data_stream();
    let mut n: u64 = 0;
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => n += c.len() as u64,
            Err(_) => return (StatusCode::BAD_REQUEST, "body error").into_response(),
        }
    }
    n.to_string().into_response()
}

async fn download(Path(n): Path<u64>) -> Response {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let stream = futures_util::stream::unfold(n, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let take = left.min(chunk.len() as u64);
            Some((
                Ok::<_, Infallible>(chunk.slice(..take as usize)),
                left - take,
            ))
        }
    });
    (
        [("content-type", "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn slow(State(s): State<AppState>) -> Response {
    s.entered.notify_one();
    s.release.notified().await;
    (StatusCode::OK, [("x-upstream", s.tag)], "released").into_response()
}

async fn hang() -> Response {
    std::future::pending::<()>().await;
    unreachable!()
}

/// Starts an upstream on an ephemeral loopback port.
pub async fn upstream(tag: &'static str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    upstream_on(tag, listener).await
}

/// Starts an upstream on a given listener.
pub async fn upstream_on(tag: &'static str, listener: TcpListener) -> Upstream {
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(16);
    let release = Arc::new(Notify::new());
    let entered = Arc::new(Notify::new());
    let state = AppState {
        tag,
        sse_rx: Arc::new(Mutex::new(Some(rx))),
        release: release.clone(),
        entered: entered.clone(),
    };
    let app = Router::new()
        .route("/page", routing::get(page))
        .route("/ws", routing::get(ws))
        .route("/sse", routing::get(sse))
        .route("/upload", post(upload))
        .route("/download/{n}", routing::get(download))
        .route("/slow", any(slow))
        .route("/hang", any(hang))
        .fallback(echo)
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Upstream {
        addr,
        sse: tx,
        release,
        entered,
    }
}

/// The default test config: host routing under `spaces.test`.
pub fn config() -> ProxyConfig {
    ProxyConfig {
        domain: Some("spaces.test".into()),
        hub_origin: Some("https://hub.test".into()),
        ..ProxyConfig::default()
    }
}

/// A proxy serving `routes` on an ephemeral loopback port.
pub async fn proxy(
    config: ProxyConfig,
    routes: Vec<Route>,
    customize: impl FnOnce(ProxyBuilder) -> ProxyBuilder,
) -> (Proxy, SocketAddr) {
    let proxy = customize(Proxy::builder(config)).build().unwrap();
    proxy.apply_routes(routes).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let p = proxy.clone();
    tokio::spawn(async move {
        p.serve(listener, None, std::future::pending())
            .await
            .unwrap()
    });
    (proxy, addr)
}

pub fn route(space: &str, upstream: SocketAddr) -> Route {
    Route::new(space.parse().unwrap(), upstream.to_string())
}

/// What a client got back.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A request header as the upstream saw it (from the echo endpoint).
    pub fn seen(&self, name: &str) -> Option<String> {
        let v = self.json();
        v["headers"][name].as_array().map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request with an explicit Host header.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> Got {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from_static(body))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .expect("response within 30 s")
        .expect("request sent");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Got {
    send(addr, "GET", host, path, headers, b"").await
}

/// Polls `cond` every 10 ms for up to 30 s: a handshake, not a timing assumption.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A loopback port with nothing listening.
pub async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// The value of one metric line, e.g. `spaceport_proxy_visits_total{space="a/b"}`.
pub fn metric(proxy: &Proxy, series: &str) -> Option<f64> {
    proxy.metrics_text().lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

/// The next request head on `s` (bodies are not read), with what was read
/// past it kept in `buf`; `None` once the connection ends.
pub async fn read_head(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..at + 4]).into_owned();
            buf.drain(..at + 4);
            return Some(head);
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An upstream that answers each request head with the raw bytes `reply`
/// gives for it, then closes the connection when `reply` says so (`None`:
/// closes without answering). Bodies are not read. Counts its connections.
pub async fn raw_upstream<F>(reply: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(&str) -> Option<(Vec<u8>, bool)> + Clone + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(head) = read_head(&mut s, &mut buf).await {
                    let Some((bytes, close)) = reply(&head) else {
                        return;
                    };
                    if s.write_all(&bytes).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (addr, conns)
}
