//! The hub's router: the API, git over HTTP, health and metrics, and
//! plain pages listing the Spaces (the full web UI is its own module).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::Hub;
use super::api::auth::{Caller, readable, repo_id};
use crate::engine::ContainerEngine;
use crate::repos::RepoKind;
use spaceport_proxy::pages::escape as esc;

/// Everything the hub answers on its port (Space requests aside).
pub fn router<E: ContainerEngine>(hub: Hub<E>) -> Router {
    Router::new()
        .merge(super::api::router::<E>())
        .merge(super::git::router::<E>())
        .route("/", get(index::<E>))
        .route("/spaces/{owner}/{name}", get(space_page::<E>))
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

async fn metrics<E: ContainerEngine>(State(hub): State<Hub<E>>) -> Response {
    let text = hub.metrics_text();
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response()
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}li{{margin:.4rem 0}}code{{background:#eee;padding:0 .2rem}}.stage{{font-size:.8rem;padding:.1rem .4rem;border-radius:.3rem;background:#eef}}</style></head><body>{body}</body></html>",
        esc(title)
    ))
}

async fn index<E: ContainerEngine>(State(hub): State<Hub<E>>, caller: Caller) -> Response {
    let repos = match hub.store().repos(RepoKind::Space) {
        Ok(r) => r,
        Err(e) => return super::api::ApiError::internal(e).into_response(),
    };
    let mut items = String::new();
    for repo in repos {
        if readable(&hub, &caller, RepoKind::Space, &repo.id).is_err() {
            continue;
        }
        let view = hub.view(&repo);
        items.push_str(&format!(
            "<li><a href=\"/spaces/{id}\">{id}</a> <span class=\"stage\">{stage}</span> <a href=\"{url}\">{url}</a></li>",
            id = esc(&repo.id.to_string()),
            stage = view.stage,
            url = esc(&hub.config().space_url(&repo.id)),
        ));
    }
    if items.is_empty() {
        items.push_str("<li>No Spaces yet: create one with the API and git push to it.</li>");
    }
    page("spaceport", &format!("<h1>Spaces</h1><ul>{items}</ul>")).into_response()
}

async fn space_page<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let repo = match repo_id(RepoKind::Space, &owner, &name)
        .and_then(|id| readable(&hub, &caller, RepoKind::Space, &id))
    {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let view = hub.view(&repo);
    let url = hub.config().space_url(&repo.id);
    let body = format!(
        "<h1>{id}</h1><p>Stage: <span class=\"stage\">{stage}</span> {msg}</p><p>App: <a href=\"{url}\">{url}</a> (also <a href=\"{path}\">{path}</a>)</p><p>Git: <code>git clone {git}</code></p>{frame}",
        id = esc(&repo.id.to_string()),
        stage = view.stage,
        msg = view.message.as_deref().map(esc).unwrap_or_default(),
        url = esc(&url),
        path = esc(&hub.config().space_path_url(&repo.id)),
        git = esc(&hub.config().space_page(&repo.id)),
        frame = if view.stage == crate::stage::Stage::Running {
            format!(
                "<iframe src=\"{}\" style=\"width:100%;height:70vh;border:1px solid #ccc\"></iframe>",
                esc(&hub.config().space_path_url(&repo.id))
            )
        } else {
            String::new()
        }
    );
    page(&repo.id.to_string(), &body).into_response()
}
