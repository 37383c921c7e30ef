//! One port for everything: a request whose host is a Space's
//! (`<owner>-<name>.<domain>`) or whose path is under `/apps/<owner>/<name>/`
//! goes through the proxy to the Space; everything else is the hub (API,
//! git, web pages).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use spaceport_proxy::route::Resolution;
use spaceport_proxy::{ConnInfo, Proxy};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// The host a request is for, without its port.
fn request_host(req: &Request<Incoming>) -> String {
    let raw = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    strip_port(&raw).to_owned()
}

/// `host[:port]` or `[v6][:port]` without the port.
pub fn strip_port(raw: &str) -> &str {
    if raw.starts_with('[') {
        return raw.find(']').map_or(raw, |i| &raw[..=i]);
    }
    raw.split(':').next().unwrap_or(raw)
}

/// Whether the proxy, rather than the hub, answers this request.
pub fn is_space_request(proxy: &Proxy, host: &str, path: &str) -> bool {
    !matches!(proxy.routes().resolve(host, path), Resolution::NotFound)
}

async fn dispatch(
    proxy: Proxy,
    hub: Router,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Result<Response<Body>, Infallible> {
    let host = request_host(&req);
    if is_space_request(&proxy, &host, req.uri().path()) {
        let resp = proxy.handle(req, conn).await;
        return Ok(resp.map(Body::new));
    }
    let mut req = req.map(Body::new);
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(conn.peer));
    Ok(hub
        .oneshot(req)
        .await
        .unwrap_or_else(|never| match never {}))
}

/// Serves the hub and its Spaces on `listener` until `shutdown` resolves,
/// then waits up to `drain` for open connections.
pub async fn serve(
    proxy: Proxy,
    hub: Router,
    listener: TcpListener,
    drain: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let hub = hub.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let conn = ConnInfo { peer, tls: false };
            let svc = hyper::service::service_fn(move |req| {
                dispatch(proxy.clone(), hub.clone(), req, conn)
            });
            let c = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            if let Err(e) = watcher.watch(c.into_owned()).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?drain, "drain timed out; closing remaining connections");
    }
    Ok(())
}
