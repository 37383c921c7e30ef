//! The hub's router: the API, git over HTTP, the web UI, health and
//! metrics. The metrics name every Space, private ones included, with their
//! traffic, so only an admin's token (or signed-in session) reads them.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Hub;
use super::api::auth::Caller;
use crate::engine::ContainerEngine;

/// Everything the hub answers on its port (Space requests aside).
pub fn router<E: ContainerEngine>(hub: Hub<E>) -> Router {
    Router::new()
        .merge(super::api::router::<E>())
        .merge(super::git::router::<E>())
        .merge(super::ui::router::<E>(&hub))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::<E>))
        .fallback(not_found)
        .with_state(hub)
}

async fn not_found() -> Response {
    super::api::ApiError::new(
        http::StatusCode::NOT_FOUND,
        "no such page or API endpoint on this hub",
    )
    .into_response()
}

async fn metrics<E: ContainerEngine>(State(hub): State<Hub<E>>, caller: Caller) -> Response {
    let who = match caller.required() {
        Ok(who) => who,
        Err(e) => return e.into_response(),
    };
    if !who.user.admin {
        return super::api::ApiError::forbidden(
            "only an admin may read the metrics: they name every Space, private ones included",
        )
        .into_response();
    }
    let text = hub.metrics_text();
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}
