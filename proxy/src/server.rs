//! The proxy object and its listeners.
//!
//! [`Proxy`] ties the parts together: the current route table (an
//! `ArcSwap`, replaced whole), per-Space state that survives swaps, the
//! upstream client, the plug-ins (access, waker, analytics sink) and the
//! meter. [`Proxy::serve`] accepts plain or TLS connections, speaks HTTP/1.1
//! and HTTP/2 (by ALPN or prior knowledge) with upgrades, and drains
//! gracefully on shutdown. [`Proxy::serve_admin`] answers `/healthz` and
//! `/metrics` on a separate listener so metrics are not public. This module
//! wires; request logic lives in [`crate::forward`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::{AccessChecker, DenyAll};
use crate::config::{ConfigError, ProxyConfig};
use crate::forward::{self, BoxError, ConnInfo, ProxyBody};
use crate::idle::Activity;
use crate::meter::{AnalyticsSink, Meter, NoSink, VisitorHasher};
use crate::route::BoxFuture;
use crate::route::{Route, RouteSource, RouteTable, RoutesRejected, SpaceId, SpaceState};
use crate::space::SpaceRuntime;
use crate::wake::{NoWaker, Waker};

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) table: ArcSwap<RouteTable>,
    spaces: Mutex<HashMap<SpaceId, (Arc<SpaceRuntime>, SpaceState)>>,
    pub(crate) access: Arc<dyn AccessChecker>,
    pub(crate) waker: Arc<dyn Waker>,
    sink: Arc<dyn AnalyticsSink>,
    pub(crate) fallback: Option<Arc<dyn Fallback>>,
    pub(crate) meter: Meter,
    /// The cookies no app may receive or set: the hub's and the app cookie.
    pub(crate) reserved_cookies: Vec<String>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The reverse proxy. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

/// Builds a [`Proxy`]; every plug-in has a safe default.
#[derive(Debug)]
pub struct ProxyBuilder {
    config: ProxyConfig,
    access: Option<Arc<dyn AccessChecker>>,
    waker: Option<Arc<dyn Waker>>,
    sink: Option<Arc<dyn AnalyticsSink>>,
    fallback: Option<Arc<dyn Fallback>>,
}

/// Answers the requests that name no Space at all, on the proxy's own
/// port: a hub serves its API and pages beside the Spaces this way. A
/// request for a Space host that names no Space is never handed over (one
/// Space's host cannot reach anything else), nor is one for a Space.
pub trait Fallback: Send + Sync + 'static {
    /// Answers one request.
    fn call(
        &self,
        req: Request<hyper::body::Incoming>,
        conn: ConnInfo,
    ) -> BoxFuture<'static, Response<ProxyBody>>;
}

impl std::fmt::Debug for dyn Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Fallback")
    }
}

impl std::fmt::Debug for dyn AccessChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn AccessChecker")
    }
}
impl std::fmt::Debug for dyn Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Waker")
    }
}
impl std::fmt::Debug for dyn AnalyticsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn AnalyticsSink")
    }
}

impl ProxyBuilder {
    /// Token checks for private Spaces (default: [`DenyAll`]).
    pub fn access(mut self, checker: impl AccessChecker) -> Self {
        self.access = Some(Arc::new(checker));
        self
    }

    /// Starts stopped Spaces (default: [`NoWaker`]).
    pub fn waker(mut self, waker: impl Waker) -> Self {
        self.waker = Some(Arc::new(waker));
        self
    }

    /// Receives periodic reports (default: [`NoSink`]).
    pub fn sink(mut self, sink: impl AnalyticsSink) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Who answers requests that name no Space (default: a 404 page).
    pub fn fallback(mut self, fallback: impl Fallback) -> Self {
        self.fallback = Some(Arc::new(fallback));
        self
    }

    /// Validates the config and builds the proxy with an empty route table.
    /// When called inside a Tokio runtime, also starts the reporting task.
    pub fn build(self) -> Result<Proxy, ConfigError> {
        self.config.validate()?;
        let hasher = match &self.config.visitor_secret {
            Some(s) => VisitorHasher::new(s),
            None => VisitorHasher::random(),
        };
        let shared = Arc::new(Shared {
            table: ArcSwap::from_pointee(RouteTable::default()),
            spaces: Mutex::new(HashMap::new()),
            access: self.access.unwrap_or_else(|| Arc::new(DenyAll)),
            waker: self.waker.unwrap_or_else(|| Arc::new(NoWaker)),
            sink: self.sink.unwrap_or_else(|| Arc::new(NoSink)),
            fallback: self.fallback,
            meter: Meter::new(hasher),
            reserved_cookies: self
                .config
                .hub_cookies
                .iter()
                .chain(std::iter::once(&self.config.app_cookie))
                .cloned()
                .collect(),
            config: self.config,
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(report_loop(Arc::downgrade(&shared)));
        }
        Ok(Proxy { shared })
    }
}

async fn report_loop(shared: Weak<Shared>) {
    let Some(interval) = shared.upgrade().map(|s| s.config.report_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(s) = shared.upgrade() else { return };
        let reports = s.meter.reports();
        if !reports.is_empty() {
            s.sink.record(reports).await;
        }
    }
}

/// Serves one connection until it ends; once `stop` fires, it finishes
/// the requests in flight and closes (HTTP/2: GOAWAY).
async fn until_stopped<I, S, B>(
    conn: auto::UpgradeableConnection<'_, I, S, TokioExecutor>,
    stop: &CancellationToken,
) -> Result<(), BoxError>
where
    S: hyper::service::Service<Request<hyper::body::Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    tokio::pin!(conn);
    tokio::select! {
        biased;
        r = conn.as_mut() => return r,
        () = stop.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

fn admin_response(status: StatusCode, ctype: &'static str, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

impl Proxy {
    /// Starts building a proxy.
    pub fn builder(config: ProxyConfig) -> ProxyBuilder {
        ProxyBuilder {
            config,
            access: None,
            waker: None,
            fallback: None,
            sink: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// Compiles `routes` and swaps the table in atomically. A route that
    /// cannot be served (invalid, listed twice, or whose host label an
    /// earlier route in `routes` has) is left out, logged and counted; every
    /// other route is applied all the same, so one bad route never freezes
    /// the table. The error lists what was left out. Per-Space state is kept
    /// for Spaces in both tables; a Space's running flag follows its route's
    /// `state` only when that state changed (or the Space is new), so a wake
    /// is not undone by an unrelated update.
    pub fn apply_routes(&self, routes: Vec<Route>) -> Result<(), RoutesRejected> {
        let s = &self.shared;
        let mut spaces = s.spaces.lock().expect("spaces lock");
        let mut next_spaces = HashMap::with_capacity(routes.len());
        let (table, rejected) = RouteTable::build(
            routes,
            s.config.domain.as_deref(),
            &s.config.path_prefix,
            s.config.hub_origin.as_deref(),
            |route, upstreams| {
                let rt = match spaces.get(&route.space) {
                    Some((rt, prev_state)) => {
                        rt.balancer.update(upstreams);
                        if *prev_state != route.state {
                            rt.set_running(route.state == SpaceState::Running);
                        }
                        rt.clone()
                    }
                    None => {
                        let rt = Arc::new(SpaceRuntime::new(
                            route.space.clone(),
                            upstreams,
                            s.meter.space(&route.space),
                        ));
                        rt.set_running(route.state == SpaceState::Running);
                        rt
                    }
                };
                next_spaces.insert(route.space.clone(), (rt.clone(), route.state));
                rt
            },
        );
        s.table.store(Arc::new(table));
        *spaces = next_spaces;
        s.meter.route_updates.with_label_values(&["applied"]).inc();
        s.meter
            .routes_rejected
            .set(i64::try_from(rejected.len()).unwrap_or(i64::MAX));
        for e in &rejected {
            tracing::error!(error = %e, "route left out of the table");
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(RoutesRejected { rejected })
        }
    }

    /// Feeds the table from `source` on a background task until it ends.
    /// Snapshots that are errors are logged and counted and the previous
    /// table stays; routes left out of a snapshot are logged by
    /// [`Proxy::apply_routes`].
    pub fn drive(&self, mut source: impl RouteSource) -> JoinHandle<()> {
        let proxy = self.clone();
        tokio::spawn(async move {
            while let Some(snapshot) = source.next_snapshot().await {
                match snapshot {
                    Ok(routes) => {
                        // Already logged route by route.
                        let _ = proxy.apply_routes(routes);
                    }
                    Err(e) => {
                        proxy
                            .shared
                            .meter
                            .route_updates
                            .with_label_values(&["refused"])
                            .inc();
                        tracing::error!(error = %e, "route update refused; keeping the previous table");
                    }
                }
            }
        })
    }

    /// The current route table.
    pub fn routes(&self) -> Arc<RouteTable> {
        self.shared.table.load_full()
    }

    /// Activity of one Space, for deciding whether it may sleep.
    pub fn activity(&self, space: &SpaceId) -> Option<Activity> {
        let spaces = self.shared.spaces.lock().expect("spaces lock");
        spaces.get(space).map(|(rt, _)| rt.idle.activity())
    }

    /// Activity of every routed Space.
    pub fn activities(&self) -> Vec<(SpaceId, Activity)> {
        let spaces = self.shared.spaces.lock().expect("spaces lock");
        spaces
            .iter()
            .map(|(id, (rt, _))| (id.clone(), rt.idle.activity()))
            .collect()
    }

    /// The Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        self.shared.meter.render()
    }

    /// Handles one request; for embedding the proxy in another server. The
    /// request must carry hyper's upgrade extension for WebSockets to work.
    pub async fn handle<B>(&self, req: Request<B>, conn: ConnInfo) -> Response<ProxyBody>
    where
        B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        forward::handle(self.shared.clone(), req, conn).await
    }

    fn http_builder(&self) -> auto::Builder<TokioExecutor> {
        let limits = self.shared.config.limits;
        let timeouts = self.shared.config.timeouts;
        let mut b = auto::Builder::new(TokioExecutor::new());
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.client_header)
            .writev(false)
            .max_buf_size(limits.max_header_bytes.max(8192) + 1024);
        b.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(Duration::from_secs(30));
        b
    }

    /// Serves Spaces on `listener` (TLS when `tls` is set) until `shutdown`
    /// resolves, then stops accepting and waits up to the drain timeout for
    /// open connections.
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let builder = self.http_builder();
        // Open connections, and the signal that asks them to finish.
        let tracker = TaskTracker::new();
        let stop = CancellationToken::new();
        let handshake = self.shared.config.timeouts.tls_handshake;
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let builder = builder.clone();
            let stop = stop.clone();
            let tls = tls.clone();
            tracker.spawn(async move {
                let gauge = shared.meter.connections.clone();
                gauge.inc();
                let conn = ConnInfo {
                    peer,
                    tls: tls.is_some(),
                };
                let service = forward::service(shared, conn);
                let result = match tls {
                    None => {
                        let c =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        until_stopped(c, &stop).await
                    }
                    Some(acceptor) => {
                        match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => {
                                let c = builder
                                    .serve_connection_with_upgrades(TokioIo::new(s), service);
                                until_stopped(c, &stop).await
                            }
                            Ok(Err(e)) => Err(e.into()),
                            Err(_) => Err("tls handshake timed out".into()),
                        }
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                gauge.dec();
            });
        }
        drop(listener);
        stop.cancel();
        tracker.close();
        let drain = self.shared.config.timeouts.drain;
        if tokio::time::timeout(drain, tracker.wait()).await.is_err() {
            tracing::warn!(?drain, "drain timed out; closing remaining connections");
        }
        Ok(())
    }

    /// Serves `/healthz` and `/metrics` until `shutdown` resolves.
    pub async fn serve_admin(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                () = &mut shutdown => return Ok(()),
            };
            let proxy = self.clone();
            let builder = builder.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let proxy = proxy.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(match req.uri().path() {
                            "/healthz" => {
                                admin_response(StatusCode::OK, "text/plain", "ok\n".into())
                            }
                            "/metrics" => admin_response(
                                StatusCode::OK,
                                "text/plain; version=0.0.4",
                                proxy.metrics_text(),
                            ),
                            _ => admin_response(
                                StatusCode::NOT_FOUND,
                                "text/plain",
                                "not found\n".into(),
                            ),
                        })
                    }
                });
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    }
}
