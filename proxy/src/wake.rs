//! Waking sleeping Spaces: one wake per Space, however many requests wait.
//!
//! A request for a stopped Space joins the Space's pending wake or starts one.
//! The wake runs on its own task (so a visitor who gives up does not cancel
//! it): it asks the [`Waker`] to start the Space, then probes the Space's
//! upstreams (as the route source reports them by then) until one answers its
//! health path with a status below 500, and marks the Space running. Browsers
//! wait a short while and then get a self-refreshing "waking up" page; API
//! clients are held up to a longer limit and then get 503 with Retry-After.
//! This module never decides that a Space should sleep; see [`crate::idle`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::route::{BoxFuture, CompiledRoute, SpaceId};
use crate::server::Shared;

/// Starts stopped Spaces. The runtime implements it with Docker (start the
/// container, then update the route's upstream if the port changed); the
/// controller by scaling the Deployment to one replica.
///
/// `wake` must be idempotent (a Space already starting or running is fine)
/// and may return as soon as the start is under way: the proxy itself waits
/// for the health check. If the upstream address changes, push the new route
/// through the [`crate::RouteSource`] before returning. Once healthy, the
/// proxy treats the Space as running until a later snapshot changes its state.
pub trait Waker: Send + Sync + 'static {
    /// Starts `space`.
    fn wake<'a>(&'a self, space: &'a SpaceId) -> BoxFuture<'a, Result<(), WakeError>>;
}

/// Why a wake failed; shown on the 503 page.
#[derive(Debug, Clone, thiserror::Error)]
#[error("failed to wake: {0}")]
pub struct WakeError(pub String);

/// Refuses every wake: stopped Spaces stay unavailable. The default.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWaker;

impl Waker for NoWaker {
    fn wake<'a>(&'a self, _: &'a SpaceId) -> BoxFuture<'a, Result<(), WakeError>> {
        Box::pin(async { Err(WakeError("this proxy has no waker configured".into())) })
    }
}

/// Wake settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeConfig {
    /// How long a browser asking for HTML waits before the waking page.
    pub browser_hold: Duration,
    /// How long any other client is held before 503.
    pub api_hold: Duration,
    /// Give up a wake after this long.
    pub timeout: Duration,
    /// Timeout of one health probe.
    pub probe_timeout: Duration,
    /// Retry-After and page refresh, in seconds.
    pub retry_after: u32,
}

impl Default for WakeConfig {
    fn default() -> Self {
        Self {
            browser_hold: Duration::from_secs(2),
            api_hold: Duration::from_secs(60),
            timeout: Duration::from_secs(300),
            probe_timeout: Duration::from_secs(2),
            retry_after: 5,
        }
    }
}

/// Progress of one wake, broadcast to every waiting request.
#[derive(Debug, Clone)]
pub enum WakeState {
    /// Still starting.
    Pending,
    /// Healthy.
    Ready,
    /// Gave up.
    Failed(Arc<str>),
}

/// What a waiting request learns.
#[derive(Debug)]
pub(crate) enum Outcome {
    Ready,
    StillWaking,
    Failed(String),
}

struct WaitingGuard(prometheus::IntGauge);

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Joins or starts the wake of `route`'s Space and waits up to `hold`.
pub(crate) async fn await_awake(
    shared: &Arc<Shared>,
    route: &Arc<CompiledRoute>,
    hold: Duration,
) -> Outcome {
    let rt = &route.runtime;
    let mut rx = {
        let mut slot = rt.wake.lock().expect("wake lock");
        if rt.running() {
            return Outcome::Ready;
        }
        match &*slot {
            Some(rx) => rx.clone(),
            None => {
                let (tx, rx) = watch::channel(WakeState::Pending);
                *slot = Some(rx.clone());
                tokio::spawn(run_wake(shared.clone(), route.clone(), tx));
                rx
            }
        }
    };
    let gauge = rt.meter.waiting().clone();
    gauge.inc();
    let _waiting = WaitingGuard(gauge);
    let waited =
        tokio::time::timeout(hold, rx.wait_for(|s| !matches!(s, WakeState::Pending))).await;
    match waited {
        Err(_) => Outcome::StillWaking,
        Ok(Err(_)) => Outcome::Failed("the wake was abandoned".into()),
        Ok(Ok(state)) => match &*state {
            WakeState::Ready | WakeState::Pending => Outcome::Ready,
            WakeState::Failed(why) => Outcome::Failed(why.to_string()),
        },
    }
}

async fn run_wake(shared: Arc<Shared>, route: Arc<CompiledRoute>, tx: watch::Sender<WakeState>) {
    let rt = route.runtime.clone();
    let cfg = shared.config.wake;
    let start = Instant::now();
    let result: Result<(), String> = async {
        shared
            .waker
            .wake(&rt.space)
            .await
            .map_err(|e| e.to_string())?;
        let mut pause = Duration::from_millis(20);
        loop {
            for ep in rt.balancer.endpoints().iter() {
                let probe = crate::forward::probe(
                    &shared,
                    ep.authority(),
                    &route.route.health_path,
                    cfg.probe_timeout,
                );
                if probe.await {
                    return Ok(());
                }
            }
            if start.elapsed() >= cfg.timeout {
                return Err(format!(
                    "the app did not become healthy within {:?}",
                    cfg.timeout
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
    .await;
    let elapsed = start.elapsed();
    rt.meter.wake(result.is_ok(), elapsed);
    let state = match result {
        Ok(()) => {
            tracing::info!(space = %rt.space, ?elapsed, "space woke");
            rt.set_running(true);
            WakeState::Ready
        }
        Err(why) => {
            tracing::warn!(space = %rt.space, %why, "wake failed");
            WakeState::Failed(why.into())
        }
    };
    *rt.wake.lock().expect("wake lock") = None;
    tx.send_replace(state);
}
