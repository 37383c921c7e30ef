//! Waking a stopped Space: one wake for many waiting requests, the waking
//! page for browsers, 503 with Retry-After for API clients.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use spaceport_proxy::{
    BoxFuture, ChannelRoutes, RouteUpdates, SpaceId, SpaceState, WakeError, Waker,
};
use tokio::sync::Notify;

/// Counts calls; on release, starts an upstream on a new port and publishes
/// it as the Space's route, as the Docker runtime does.
struct StartOnRelease {
    calls: Arc<AtomicUsize>,
    release: Arc<Notify>,
    routes: RouteUpdates,
}

impl Waker for StartOnRelease {
    fn wake<'a>(&'a self, space: &'a SpaceId) -> BoxFuture<'a, Result<(), WakeError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.release.notified().await;
            let up = upstream("woken").await;
            let mut r = route(&space.to_string(), up.addr);
            r.state = SpaceState::Running;
            self.routes.upsert(r);
            std::mem::forget(up.sse);
            Ok(())
        })
    }
}

#[tokio::test]
async fn fifty_waiting_requests_share_one_wake_and_all_succeed() {
    let mut stopped = route("alice/sleepy", dead_port().await);
    stopped.state = SpaceState::Stopped;
    let (updates, source) = ChannelRoutes::new(vec![stopped.clone()]);
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let waker = StartOnRelease {
        calls: calls.clone(),
        release: release.clone(),
        routes: updates.clone(),
    };
    let (p, addr) = proxy(config(), vec![stopped], |b| b.waker(waker)).await;
    p.drive(source);

    let requests: Vec<_> = (0..50)
        .map(|i| {
            tokio::spawn(get(
                addr,
                "alice-sleepy.spaces.test",
                Box::leak(format!("/echo?i={i}").into_boxed_str()),
                &[],
            ))
        })
        .collect();
    let waiting = "spaceport_proxy_wake_waiting_requests{space=\"alice/sleepy\"}";
    eventually("50 requests to be held", || {
        metric(&p, waiting) == Some(50.0)
    })
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one wake for all waiting requests"
    );
    release.notify_one();
    for (i, r) in requests.into_iter().enumerate() {
        let got = r.await.unwrap();
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.json()["tag"], "woken");
        assert_eq!(got.json()["uri"], format!("/echo?i={i}"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        metric(
            &p,
            "spaceport_proxy_wakes_total{result=\"ok\",space=\"alice/sleepy\"}"
        ),
        Some(1.0)
    );
    assert_eq!(metric(&p, waiting), Some(0.0));
    // Awake now: later requests go straight through, even after an unrelated route update.
    updates.upsert(route("bob/other", dead_port().await));
    eventually("the update to land", || p.routes().len() == 2).await;
    assert_eq!(
        get(addr, "alice-sleepy.spaces.test", "/echo", &[])
            .await
            .status,
        200
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Never finishes starting.
struct Stuck(Arc<AtomicUsize>);

impl Waker for Stuck {
    fn wake<'a>(&'a self, _: &'a SpaceId) -> BoxFuture<'a, Result<(), WakeError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn browsers_get_a_waking_page_and_api_clients_503_with_retry_after() {
    let mut stopped = route("alice/sleepy", dead_port().await);
    stopped.state = SpaceState::Stopped;
    let mut cfg = config();
    cfg.wake.browser_hold = Duration::from_millis(50);
    cfg.wake.api_hold = Duration::from_millis(200);
    cfg.wake.retry_after = 7;
    let calls = Arc::new(AtomicUsize::new(0));
    let (_p, addr) = proxy(cfg, vec![stopped], |b| b.waker(Stuck(calls.clone()))).await;
    let page = get(
        addr,
        "alice-sleepy.spaces.test",
        "/",
        &[("accept", "text/html,*/*")],
    )
    .await;
    assert_eq!(page.status, 503);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(
        page.text().contains("alice/sleepy is waking up"),
        "{}",
        page.text()
    );
    assert!(page.text().contains("http-equiv=\"refresh\" content=\"7\""));
    let api = get(
        addr,
        "alice-sleepy.spaces.test",
        "/api/predict",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(api.status, 503);
    assert_eq!(api.headers["retry-after"], "7");
    assert!(
        api.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second request joined the pending wake"
    );
}

struct Fails;

impl Waker for Fails {
    fn wake<'a>(&'a self, _: &'a SpaceId) -> BoxFuture<'a, Result<(), WakeError>> {
        Box::pin(async { Err(WakeError("no GPU free".into())) })
    }
}

#[tokio::test]
async fn a_failed_wake_is_a_503_naming_the_reason() {
    let mut stopped = route("alice/sleepy", dead_port().await);
    stopped.state = SpaceState::Stopped;
    let (p, addr) = proxy(config(), vec![stopped], |b| b.waker(Fails)).await;
    let got = get(addr, "alice-sleepy.spaces.test", "/", &[]).await;
    assert_eq!(got.status, 503);
    assert!(got.text().contains("no GPU free"), "{}", got.text());
    assert_eq!(
        metric(
            &p,
            "spaceport_proxy_wakes_total{result=\"failed\",space=\"alice/sleepy\"}"
        ),
        Some(1.0)
    );
}
