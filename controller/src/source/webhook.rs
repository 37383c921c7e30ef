//! Push webhooks: `POST /hooks/github`, `/hooks/gitea` and
//! `/hooks/spaceport`. A push to a repository and ref that Spaces follow
//! moves their `spaceport.dev/commit` annotation, so they build without
//! waiting for the poller.
//!
//! With a shared secret configured, every request must carry a valid
//! HMAC-SHA256 signature (else 401) and the pushed commit is taken from the
//! payload. Without one, anyone can call the hook, so the payload only says
//! *which* Spaces to look at: their ref is resolved again with
//! `git ls-remote` and that commit is used, so a forged request can make
//! spaceport look sooner but never build a commit of its choosing, and
//! each Space is looked at no more than once per [`UNSIGNED_COOLDOWN`], so
//! a flood of requests does not become a flood of git fetches.
//! Bodies are capped at [`MAX_BODY`]; a GitHub `ping` is 200; a malformed
//! event is 400 with the reason; otherwise 202 with `{"matched": N}`.

use super::api::{self, annotated_commit};
use super::lsremote::{LS_REMOTE_LIMIT, resolve};
use super::push::{Provider, Push, parse_push, verify_signature};
use crate::crd::Space;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest webhook body read.
pub const MAX_BODY: usize = 1024 * 1024;
/// Shortest time between two unsigned lookups of one Space's ref.
pub const UNSIGNED_COOLDOWN: Duration = Duration::from_secs(10);

/// What the hooks need: the Spaces, the API, and the shared secret.
#[derive(Clone)]
pub struct HookState {
    pub store: Store<Space>,
    pub client: Client,
    pub secret: Option<Arc<[u8]>>,
    /// When each Space's ref was last looked up for an unsigned request.
    looked_up: Arc<Mutex<HashMap<String, Instant>>>,
}

impl std::fmt::Debug for HookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookState")
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// The webhook routes, to be merged into the controller's HTTP server.
pub fn router(store: Store<Space>, client: Client, secret: Option<Vec<u8>>) -> Router {
    let state = HookState {
        store,
        client,
        secret: secret.filter(|s| !s.is_empty()).map(Arc::from),
        looked_up: Arc::default(),
    };
    Router::new()
        .route("/hooks/github", post(github))
        .route("/hooks/gitea", post(gitea))
        .route("/hooks/spaceport", post(spaceport))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn github(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(Provider::GitHub, &s, &headers, &body).await
}

async fn gitea(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(Provider::Gitea, &s, &headers, &body).await
}

async fn spaceport(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(Provider::Spaceport, &s, &headers, &body).await
}

impl HookState {
    /// Whether an unsigned request may look up this Space's ref now (and
    /// records that it does).
    fn may_look_up(&self, key: &str, now: Instant) -> bool {
        let mut looked_up = self.looked_up.lock().unwrap_or_else(|p| p.into_inner());
        looked_up.retain(|_, at| now.duration_since(*at) < UNSIGNED_COOLDOWN);
        if looked_up.contains_key(key) {
            return false;
        }
        looked_up.insert(key.to_owned(), now);
        true
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

fn matched(n: usize) -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({ "matched": n }))).into_response()
}

async fn handle(
    provider: Provider,
    state: &HookState,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let trusted = match &state.secret {
        Some(secret) => {
            let signature = headers
                .get(provider.signature_header())
                .map(|v| v.as_bytes());
            if let Err(e) = verify_signature(provider, secret, body, signature) {
                return error(StatusCode::UNAUTHORIZED, e.to_string());
            }
            true
        }
        None => false,
    };
    let event = headers
        .get(provider.event_header())
        .and_then(|v| v.to_str().ok())
        .unwrap_or("push");
    match event {
        "ping" => return (StatusCode::OK, axum::Json(json!({ "ok": true }))).into_response(),
        "push" => {}
        _ => return matched(0),
    }
    let push = match parse_push(body) {
        Ok(p) => p,
        Err(reason) => {
            let form = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            let reason = if form {
                format!("{reason} (set the webhook's content type to application/json)")
            } else {
                reason
            };
            return error(StatusCode::BAD_REQUEST, reason);
        }
    };
    if push.is_deletion() {
        return matched(0);
    }
    let mut spaces: Vec<Arc<Space>> = state
        .store
        .state()
        .into_iter()
        .filter(|s| s.spec.source.git.as_ref().is_some_and(|g| push.concerns(g)))
        .collect();
    spaces.sort_by_key(|s| (s.namespace(), s.name_any()));
    let mut failures = Vec::new();
    for space in &spaces {
        if let Err(e) = update(state, space, &push, trusted).await {
            tracing::warn!(space = %space.name_any(), "push webhook: {e}");
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        return (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({ "matched": spaces.len(), "error": failures.join("; ") })),
        )
            .into_response();
    }
    matched(spaces.len())
}

/// Moves one Space's annotation to the pushed commit (trusted), or to the
/// commit its ref resolves to now (untrusted).
async fn update(
    state: &HookState,
    space: &Space,
    push: &Push,
    trusted: bool,
) -> Result<(), String> {
    let ns = space.namespace().ok_or("a Space without a namespace")?;
    let name = space.name_any();
    let commit = if trusted {
        push.after.clone()
    } else {
        if !state.may_look_up(&format!("{ns}/{name}"), Instant::now()) {
            return Ok(());
        }
        let git = space.spec.source.git.as_ref().ok_or("no git source")?;
        let creds = match &git.credentials_secret {
            Some(secret) => Some(
                api::credentials(&state.client, &ns, secret)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        resolve(&git.url, &git.r#ref, creds.as_ref(), LS_REMOTE_LIMIT)
            .await
            .map_err(|e| format!("{ns}/{name}: {e}"))?
    };
    if annotated_commit(space) == Some(commit.as_str()) {
        return Ok(());
    }
    api::set_commit(&state.client, &ns, &name, &commit)
        .await
        .map_err(|e| e.to_string())
}
