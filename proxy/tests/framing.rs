//! How the proxy reads the responses of apps that frame them oddly, or
//! wrongly, or with intent: raw upstreams on loopback write exact bytes,
//! and a real client reads what the proxy makes of them. Whatever an app
//! sends, the proxy must agree with itself on where each response ends, so
//! that no byte of one response reaches the visitor of another.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use http_body_util::{BodyExt, Empty};

/// An upstream answering each request with the bytes `reply` gives for
/// its path (`None`: close without answering), and closing the connection
/// after paths that start with `/close`. Counts its connections.
async fn scripted(reply: fn(&str) -> Option<Vec<u8>>) -> (SocketAddr, Arc<AtomicUsize>) {
    raw_upstream(move |head: &str| {
        let path = head.split(' ').nth(1).unwrap_or("/");
        reply(path).map(|bytes| (bytes, path.starts_with("/close")))
    })
    .await
}

fn replies(path: &str) -> Option<Vec<u8>> {
    let r: &[u8] = match path {
        "/plain" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain",
        "/chunked" => {
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4;ext=1\r\nchun\r\n3\r\nked\r\n0\r\nx-trailer: t\r\n\r\n"
        }
        // Both framings: chunked governs, the length is dropped.
        "/both" => {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n5\r\nwhole\r\n0\r\n\r\n"
        }
        // A second response smuggled after the first one's end.
        "/smuggle" => {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nstolen"
        }
        "/conflict" => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nplain!",
        "/negative" => b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        "/bad-chunk" => {
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
        }
        "/interim" => {
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal"
        }
        "/switch" => b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        "/garbage" => b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        "/no-content" => b"HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
        "/close-delimited" => b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        "/close-short" => b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
        "/close-silent" => return None,
        _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
    };
    Some(r.to_vec())
}

/// Sends one GET on its own client connection; the status and body, or the
/// client's error when the response was cut off.
async fn fetch(addr: SocketAddr, path: &str) -> Result<(u16, http::HeaderMap, String), String> {
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("host", "alice-framing.spaces.test")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client_empty().request(req))
        .await
        .expect("an answer within 10 s")
        .map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

fn client_empty() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<bytes::Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn well_framed_responses_pass_whole_and_the_connection_is_reused() {
    let (up, conns) = scripted(replies).await;
    let (_p, addr) = proxy(config(), vec![route("alice/framing", up)], |b| b).await;
    for _ in 0..3 {
        let (status, _, body) = fetch(addr, "/plain").await.unwrap();
        assert_eq!((status, body.as_str()), (200, "plain"));
        let (status, headers, body) = fetch(addr, "/chunked").await.unwrap();
        assert_eq!((status, body.as_str()), (200, "chunked"));
        assert!(!headers.contains_key("x-trailer"), "trailers are dropped");
        let (status, _, body) = fetch(addr, "/interim").await.unwrap();
        assert_eq!((status, body.as_str()), (200, "final"), "1xx are skipped");
        let (status, _, body) = fetch(addr, "/no-content").await.unwrap();
        assert_eq!((status, body.as_str()), (204, ""));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1, "one connection for all");
}

#[tokio::test]
async fn a_smuggled_response_never_reaches_the_next_visitor() {
    let (up, conns) = scripted(replies).await;
    let (_p, addr) = proxy(config(), vec![route("alice/framing", up)], |b| b).await;
    let (status, _, body) = fetch(addr, "/smuggle").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "ok"));
    // Bytes past the response's end: the connection is not reused, so the
    // next request gets its own answer, not "stolen".
    let (status, _, body) = fetch(addr, "/plain").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "plain"));
    assert_eq!(conns.load(Ordering::SeqCst), 2);

    // Chunked with a length: the chunked body, no stale length, and a
    // connection that is not reused.
    let (status, headers, body) = fetch(addr, "/both").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "whole"));
    assert_ne!(
        headers.get("content-length").map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    let before = conns.load(Ordering::SeqCst);
    let (_, _, body) = fetch(addr, "/plain").await.unwrap();
    assert_eq!(body, "plain");
    assert_eq!(conns.load(Ordering::SeqCst), before + 1, "a new connection");
}

#[tokio::test]
async fn malformed_responses_are_a_502_naming_the_space() {
    let (up, _) = scripted(replies).await;
    let (_p, addr) = proxy(config(), vec![route("alice/framing", up)], |b| b).await;
    for path in [
        "/conflict",
        "/negative",
        "/switch",
        "/garbage",
        "/close-silent",
    ] {
        let (status, _, body) = fetch(addr, path).await.unwrap();
        assert_eq!(status, 502, "{path}: {body}");
        assert!(body.contains("alice/framing"), "{path}: {body}");
    }
    // After all that, a good response still comes through.
    let (status, _, body) = fetch(addr, "/plain").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "plain"));
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_for_the_client_not_a_short_success() {
    let (up, _) = scripted(replies).await;
    let (_p, addr) = proxy(config(), vec![route("alice/framing", up)], |b| b).await;
    // The head said 10 bytes and 5 came: the client must see the cut.
    assert!(fetch(addr, "/close-short").await.is_err());
    // A chunk size that is not hex: the body stops with an error.
    assert!(fetch(addr, "/bad-chunk").await.is_err());
    // A body that runs to the close is whole when the app closes.
    let (status, _, body) = fetch(addr, "/close-delimited").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "until the end"));
}
