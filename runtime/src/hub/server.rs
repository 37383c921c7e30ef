//! One port for everything: the proxy serves it, and hands every request
//! that names no Space (not a Space's host `<owner>-<name>.<domain>`, not
//! under `/apps/<owner>/<name>/`) to the hub's router: API, git, pages.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use spaceport_proxy::forward::ProxyBody;
use spaceport_proxy::{BoxFuture, ConnInfo, Fallback};
use tower::ServiceExt;

/// The hub's router as the proxy's fallback.
#[derive(Debug, Clone)]
pub struct HubFallback(pub Router);

impl Fallback for HubFallback {
    fn call(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> BoxFuture<'static, Response<ProxyBody>> {
        let router = self.0.clone();
        Box::pin(async move {
            let mut req = req.map(Body::new);
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(conn.peer));
            let resp = router
                .oneshot(req)
                .await
                .unwrap_or_else(|never| match never {});
            resp.map(|b| SyncBody(Mutex::new(b)).map_err(Into::into).boxed())
        })
    }
}

/// The router's body made `Sync`, as the proxy's boxed body must be (only
/// one task polls it; the lock is never contended).
struct SyncBody(Mutex<Body>);

impl hyper::body::Body for SyncBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let body = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        Pin::new(body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).size_hint()
    }
}
