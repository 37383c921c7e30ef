//! Helpers for the proxy benchmark script (`proxy/bench/run.sh`):
//!
//! - `upstream ADDR`: a minimal HTTP/1.1 server answering every request with a
//!   fixed 13-byte body, and accepting WebSocket upgrades that it then holds
//!   open (the far end for the idle-WebSocket measurement).
//! - `rate URL HOST RATE SECONDS CONNS`: an open-loop load generator. Each
//!   connection sends on a fixed schedule and latency is measured from the
//!   scheduled send time, so a stall is not hidden by sending less (the same
//!   correction wrk2 makes). Prints `p50_us p99_us p999_us sent errors`.
//! - `hold-ws ADDR HOST PATH COUNT`: opens COUNT WebSockets, prints `ready`,
//!   and holds them until stdin closes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("BENCH_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1),
        )
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("upstream") => rt.block_on(upstream(args[1].parse().expect("addr"))),
        Some("rate") => rt.block_on(rate(&args[1..])),
        Some("hold-ws") => rt.block_on(hold_ws(&args[1..])),
        _ => {
            eprintln!(
                "usage: bench_tool upstream ADDR | rate URL HOST RATE SECONDS CONNS | hold-ws ADDR HOST PATH COUNT"
            );
            std::process::exit(2);
        }
    }
}

async fn upstream(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    println!("listening on {addr}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|mut req: Request<hyper::body::Incoming>| async move {
                if req.headers().contains_key(hyper::header::UPGRADE) {
                    let key = req.headers().get("sec-websocket-key").cloned();
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(up) = on.await {
                            let mut io = TokioIo::new(up);
                            let mut buf = [0u8; 64];
                            while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
                        }
                    });
                    let accept = key
                        .map(|k| {
                            tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                                k.as_bytes(),
                            )
                        })
                        .unwrap_or_default();
                    let resp = Response::builder()
                        .status(101)
                        .header("connection", "upgrade")
                        .header("upgrade", "websocket")
                        .header("sec-websocket-accept", accept)
                        .body(Full::new(Bytes::new()))
                        .expect("response");
                    return Ok::<_, Infallible>(resp);
                }
                let _ = req.into_body().collect().await;
                Ok(Response::builder()
                    .header("content-type", "text/plain")
                    .body(Full::new(Bytes::from_static(b"hello, world\n")))
                    .expect("response"))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

async fn rate(args: &[String]) {
    let url: hyper::Uri = args[0].parse().expect("url");
    let host = args[1].clone();
    let rate: f64 = args[2].parse().expect("rate");
    let secs: f64 = args[3].parse().expect("seconds");
    let conns: usize = args[4].parse().expect("conns");
    let addr: SocketAddr = url
        .authority()
        .expect("authority")
        .as_str()
        .parse()
        .expect("ip:port");
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let per_conn = (rate * secs / conns as f64) as usize;
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (host, path) = (host.clone(), url.path().to_owned());
        tasks.push(tokio::spawn(async move {
            let connect = || async {
                let stream = TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
                tokio::spawn(conn);
                send
            };
            let mut send = connect().await;
            let offset = interval.mul_f64(c as f64 / conns as f64);
            let mut lat = Vec::with_capacity(per_conn);
            let mut errors = 0usize;
            for i in 0..per_conn {
                let due = start + offset + interval.mul_f64(i as f64);
                tokio::time::sleep_until(due.into()).await;
                let req = Request::get(path.as_str())
                    .header("host", host.as_str())
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                match send.send_request(req).await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.into_body().collect().await;
                        lat.push(due.elapsed().as_micros() as u64);
                    }
                    _ => {
                        errors += 1;
                        // A server that closed the connection: reconnect, as browsers do.
                        if send.is_closed() {
                            send = connect().await;
                        }
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("task");
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let q = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{} {} {} {} {}",
        q(0.50),
        q(0.99),
        q(0.999),
        all.len(),
        errors
    );
}

async fn hold_ws(args: &[String]) {
    let addr: SocketAddr = args[0].parse().expect("addr");
    let host = args[1].clone();
    let path = args[2].clone();
    let count: usize = args[3].parse().expect("count");
    let mut held = Vec::with_capacity(count);
    let mut failed = 0;
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let mut batch = Vec::new();
        for _ in chunk {
            let (host, path) = (host.clone(), path.clone());
            batch.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.ok()?;
                let req = format!(
                    "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
                     sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                );
                s.write_all(req.as_bytes()).await.ok()?;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).await.ok()? == 0 {
                        return None;
                    }
                    head.push(byte[0]);
                }
                head.starts_with(b"HTTP/1.1 101").then_some(s)
            }));
        }
        for b in batch {
            match b.await.expect("task") {
                Some(s) => held.push(s),
                None => failed += 1,
            }
        }
    }
    println!("ready {} failed {failed}", held.len());
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await;
    drop(held);
}
