//! 100 MB up and down through the proxy with bounded memory. In a test
//! binary of its own so that no other test shares the process whose RSS it
//! measures.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Samples this process's RSS until dropped; reports the peak.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssWatch {
    fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(rss_bytes()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self { peak, stop }
    }
    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn hundred_megabytes_stream_both_ways_in_bounded_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let up = upstream("big").await;
    let (_p, addr) = proxy(config(), vec![route("alice/files", up.addr)], |b| b).await;
    let before = rss_bytes();
    let watch = RssWatch::start();

    let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
    let chunks =
        futures_util::stream::iter((0..SIZE / chunk.len() as u64).map(move |_| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(chunk.clone()))
        }));
    let req = http::Request::post(format!("http://{addr}/upload"))
        .header("host", "alice-files.spaces.test")
        .body(http_body_util::StreamBody::new(chunks))
        .unwrap();
    let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let n = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(n, SIZE.to_string());

    let req = http::Request::get(format!("http://{addr}/download/{SIZE}"))
        .header("host", "alice-files.spaces.test")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        total += frame
            .unwrap()
            .into_data()
            .map(|d| d.len() as u64)
            .unwrap_or(0);
    }
    assert_eq!(total, SIZE);
    let growth = watch.peak().saturating_sub(before);
    eprintln!(
        "peak RSS growth while streaming 2 x 100 MB: {} KB",
        growth >> 10
    );
    assert!(
        growth < 40 * 1024 * 1024,
        "peak RSS grew by {} MB while streaming 200 MB",
        growth >> 20
    );
}
