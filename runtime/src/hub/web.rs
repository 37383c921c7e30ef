//! The hub's router: the API, git over HTTP, the web UI, health and
//! metrics, behind the limit on failed authentications per client address
//! ([`super::authlimit`]). The metrics name every Space, private ones
//! included, with their traffic, so only an admin's token (or signed-in
//! session) reads them.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, Method, StatusCode, header};

use super::Hub;
use super::api::auth::{Caller, session_cookie_name};
use super::authlimit::{AuthFailed, ClientAddr, client_addr};
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
        .layer(axum::middleware::from_fn_with_state(
            hub.clone(),
            limit_failed_auth::<E>,
        ))
        .with_state(hub)
}

/// Whether a request presents credentials: a token, a session cookie, or
/// the sign-in form (whose token is in the body).
fn carries_credentials(req: &Request, secure: bool) -> bool {
    req.headers().contains_key(header::AUTHORIZATION)
        || spaceport_proxy::access::cookie(req.headers(), session_cookie_name(secure))
            .is_some_and(|v| !v.is_empty())
        || (req.method() == Method::POST && req.uri().path() == "/signin")
}

/// Answers 429 to credentials from an address that failed too often, before
/// anything checks them, and counts the failures that handlers mark.
async fn limit_failed_auth<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return next.run(req).await;
    };
    let limiter = hub.auth_limiter();
    let ip = client_addr(req.headers(), peer, limiter.trusts_forwarded());
    let mut req = req;
    req.extensions_mut().insert(ClientAddr(ip));
    if carries_credentials(&req, hub.config().secure())
        && let Some(wait) = hub.auth_limiter().blocked(ip, Instant::now())
    {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut resp = super::api::ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many failed sign-ins from this address: try again in {secs} seconds"),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }
    let resp = next.run(req).await;
    if resp.extensions().get::<AuthFailed>().is_some() {
        hub.auth_limiter().failed(ip, Instant::now());
    }
    resp
}

async fn not_found() -> Response {
    super::api::ApiError::new(
        StatusCode::NOT_FOUND,
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
