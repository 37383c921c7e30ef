//! git over HTTP at the Hub's URLs: `/spaces/<owner>/<name>`,
//! `/<owner>/<name>` (models) and `/datasets/<owner>/<name>`, each with
//! `/info/refs`, `/git-upload-pack` and `/git-receive-pack` (a `.git`
//! suffix on the name works too). Credentials are HTTP basic auth with an
//! access token as the password, as on Hugging Face. A push that moves a
//! Space's main branch queues a build and deploy.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::HeaderMap;
use serde::Deserialize;

use super::Hub;
use super::api::auth::{Caller, Identity, readable, repo_id, writable};
use super::deploy::Reason;
use crate::engine::ContainerEngine;
use crate::repos::{self, PushContext, RepoKind};
use crate::state::Repo;

/// The git routes of all three repo kinds.
pub fn router<E: ContainerEngine>() -> Router<Hub<E>> {
    let mut r = Router::new();
    for (prefix, kind) in [
        ("/spaces", RepoKind::Space),
        ("/datasets", RepoKind::Dataset),
        ("", RepoKind::Model),
    ] {
        r = r
            .route(
                &format!("{prefix}/{{owner}}/{{name}}/info/refs"),
                get(move |hub, path, query, headers| {
                    info_refs::<E>(hub, path, query, headers, kind)
                }),
            )
            .route(
                &format!("{prefix}/{{owner}}/{{name}}/git-upload-pack"),
                post(move |hub, path, headers, body| {
                    upload_pack::<E>(hub, path, headers, body, kind)
                }),
            )
            .route(
                &format!("{prefix}/{{owner}}/{{name}}/git-receive-pack"),
                post(move |hub, path, headers, body| {
                    receive_pack::<E>(hub, path, headers, body, kind)
                }),
            );
    }
    r
}

#[derive(Debug, Deserialize)]
struct ServiceQuery {
    service: Option<String>,
}

/// Turns an API refusal into what git understands: 401 with a
/// basic-auth challenge when no (valid) credentials came, so git asks for
/// them; the same words otherwise.
fn refuse(e: super::api::ApiError, caller: &Caller) -> Response {
    if caller.0.is_none() && matches!(e.status.as_u16(), 401 | 403 | 404) {
        return repos::unauthorized();
    }
    (e.status, format!("{}\n", e.message)).into_response()
}

fn git_error(e: repos::RepoError) -> Response {
    (e.status(), format!("{e}\n")).into_response()
}

/// The caller, with a bad token answered by git's 401 challenge.
fn caller_or_challenge<E: ContainerEngine>(
    hub: &Hub<E>,
    headers: &HeaderMap,
) -> Result<Caller, Box<Response>> {
    match super::api::auth::request_token(headers) {
        None => Ok(Caller(None)),
        Some(token) => match hub.store().authenticate(&token) {
            Ok(Some((user, token))) => Ok(Caller(Some(Identity { user, token }))),
            Ok(None) => {
                let mut resp = repos::unauthorized();
                resp.extensions_mut().insert(super::authlimit::AuthFailed);
                Err(Box::new(resp))
            }
            Err(e) => Err(Box::new(super::api::ApiError::internal(e).into_response())),
        },
    }
}

/// Who calls, and the repo if they may read it (or change it, with
/// `write`); otherwise the refusal git understands.
fn authorize<E: ContainerEngine>(
    hub: &Hub<E>,
    headers: &HeaderMap,
    kind: RepoKind,
    owner: &str,
    name: &str,
    write: bool,
) -> Result<(Repo, Option<Identity>), Box<Response>> {
    let caller = caller_or_challenge(hub, headers)?;
    let allowed = repo_id(kind, owner, name).and_then(|id| {
        if write {
            writable(hub, &caller, kind, &id).map(|(r, who)| (r, Some(who)))
        } else {
            readable(hub, &caller, kind, &id).map(|r| (r, None))
        }
    });
    allowed.map_err(|e| Box::new(refuse(e, &caller)))
}

async fn info_refs<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<ServiceQuery>,
    headers: HeaderMap,
    kind: RepoKind,
) -> Response {
    let Some(service) = q.service else {
        return (
            http::StatusCode::FORBIDDEN,
            "only the smart HTTP protocol is served: use git 1.6.6 or newer\n",
        )
            .into_response();
    };
    let write = service == "git-receive-pack";
    let repo = match authorize(&hub, &headers, kind, &owner, &name, write) {
        Ok((r, _)) => r,
        Err(refusal) => return *refusal,
    };
    repos::info_refs(hub.repos(), kind, &repo.id, &service, &headers)
        .await
        .unwrap_or_else(git_error)
}

async fn upload_pack<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
    kind: RepoKind,
) -> Response {
    let repo = match authorize(&hub, &headers, kind, &owner, &name, false) {
        Ok((r, _)) => r,
        Err(refusal) => return *refusal,
    };
    repos::upload_pack(hub.repos(), kind, &repo.id, &headers, body)
        .await
        .unwrap_or_else(git_error)
}

async fn receive_pack<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
    kind: RepoKind,
) -> Response {
    let (repo, who) = match authorize(&hub, &headers, kind, &owner, &name, true) {
        Ok((r, Some(who))) => (r, who),
        Ok((_, None)) => unreachable!("a write check names its caller"),
        Err(refusal) => return *refusal,
    };
    let mut push = PushContext::new(who.user.name.clone());
    if kind == RepoKind::Space {
        push = push
            .env(repos::ENV_SPACE_URL, hub.config().space_url(&repo.id))
            .env(
                repos::ENV_LOGS_URL,
                format!(
                    "{}/api/spaces/{}/logs/build",
                    hub.config().public_url.trim_end_matches('/'),
                    repo.id
                ),
            );
    }
    let (response, watch) =
        match repos::receive_pack(hub.repos(), kind, &repo.id, &headers, body, push).await {
            Ok(r) => r,
            Err(e) => return git_error(e),
        };
    if kind == RepoKind::Space {
        let hub = hub.clone();
        let space = repo.id.clone();
        tokio::spawn(async move {
            let outcome = watch.await;
            if let Some(commit) = outcome.main_moved_to() {
                tracing::info!(%space, %commit, pusher = %who.user.name, "push to main; deploying");
                let c = commit.to_owned();
                let _ = hub
                    .store()
                    .update_repo(RepoKind::Space, &space, |s| s.commit = Some(c));
                hub.request_deploy(&space, Reason::Push);
            } else if let Some(e) = outcome.error {
                tracing::info!(%space, error = %e, "push ended without moving main");
            }
        });
    }
    response
}
