//! The controller's HTTP surface: `/healthz`, `/readyz`, `/metrics`, and
//! the build logs at `/logs/{namespace}/{name}/build` (plain text; with
//! `Accept: text/event-stream` the log is followed as server-sent events).
//! Other routers (the push webhooks) are merged in by the caller.

use crate::builds;
use crate::crd::Space;
use crate::reconcile::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::stream::{self, StreamExt};
use kube::runtime::reflector::Store;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::watch;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    pub ctx: Arc<Context>,
    /// The Spaces the controller watches (for the by-stage gauge).
    pub spaces: Store<Space>,
    /// Whether the watch cache has been filled once.
    pub ready: watch::Receiver<bool>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState").finish_non_exhaustive()
    }
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/logs/{namespace}/{name}/build", get(build_log))
        .with_state(state)
}

async fn readyz(State(s): State<HttpState>) -> Response {
    if *s.ready.borrow() {
        "ready\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the Space cache is filling\n",
        )
            .into_response()
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    let spaces = s.spaces.state();
    let body = s.ctx.metrics.render(spaces.iter().map(|a| a.as_ref()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn build_log(
    State(s): State<HttpState>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(log) = s.ctx.builds.log(&builds::key(&namespace, &name)) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no build of {namespace}/{name} has run on this controller since it started\n"),
        )
            .into_response();
    };
    let follow = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !follow {
        let mut text = log.lines().join("\n");
        text.push('\n');
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    }
    let (past, rx) = log.subscribe();
    let past = stream::iter(past);
    let live = stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => return Some((line, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let events = past
        .chain(live)
        .map(|line| Ok::<_, Infallible>(Event::default().data(line)));
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
