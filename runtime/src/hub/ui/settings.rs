//! The settings forms of a Space: each POST checks the CSRF token, then
//! the same access the API checks, then does what the API does, and
//! redirects back to the settings page (303, so a reload does not post
//! again). A refused change shows the page again with the reason.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use spaceport_proxy::Visibility;
use spaceport_proxy::pages::escape as esc;

use super::pages::{is_owner, owners_only, settings_data};
use super::{UiState, Viewer, html, layout, not_found};
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::hub::api::ApiError;
use crate::hub::api::auth::{readable, repo_id};
use crate::repos::RepoKind;

type Ui = Extension<Arc<UiState>>;

/// Why a form's change was refused, for its owner.
fn refusal(e: ApiError) -> String {
    e.message
}

pub async fn action<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Path((owner, name, action)): Path<(String, String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = viewer.check_csrf(&ui, form.get("csrf")) {
        return *r;
    }
    let chrome = viewer.chrome(&ui);
    let Some(repo) = repo_id(RepoKind::Space, &owner, &name)
        .ok()
        .and_then(|id| readable(&hub, &viewer.caller, RepoKind::Space, &id).ok())
    else {
        return not_found(&chrome, viewer.identity().is_some());
    };
    if !is_owner(&hub, &viewer, &repo.id) {
        return owners_only(&chrome, &viewer, &repo);
    }
    let field = |k: &str| form.get(k).map(|v| v.trim()).unwrap_or_default();
    let optional = |k: &str| Some(field(k)).filter(|v| !v.is_empty());
    let result: Result<(), String> = match action.as_str() {
        "hardware" => hub
            .set_hardware(&repo, field("flavor"), None)
            .map(drop)
            .map_err(refusal),
        "sleep" => match field("seconds").parse::<i64>() {
            Ok(s) => hub.set_sleep_time(&repo, s).map(drop).map_err(refusal),
            Err(_) => Err("the sleep time must be a whole number of seconds, or -1".into()),
        },
        "visibility" => {
            let v = match field("visibility") {
                "public" => Some(Visibility::Public),
                "protected" => Some(Visibility::Protected),
                "private" => Some(Visibility::Private),
                _ => None,
            };
            match v {
                None => Err("visibility must be public, protected or private".into()),
                Some(v) => match hub.store().set_visibility(RepoKind::Space, &repo.id, v) {
                    Ok(_) => {
                        hub.refresh_routes();
                        hub.entry(&repo.id).bump();
                        hub.settings_synced(&repo.id);
                        Ok(())
                    }
                    Err(e) => Err(refusal(e.into())),
                },
            }
        }
        "secret" => {
            // The value is taken as typed: spaces may matter in a secret.
            let value = form.get("value").cloned().unwrap_or_default();
            match hub
                .store()
                .set_secret(&repo.id, field("key"), &value, optional("description"))
            {
                Ok(()) => {
                    hub.settings_changed(&repo.id);
                    Ok(())
                }
                Err(e) => Err(refusal(e.into())),
            }
        }
        "secret-delete" => match hub.store().delete_secret(&repo.id, field("key")) {
            Ok(true) => {
                hub.settings_changed(&repo.id);
                Ok(())
            }
            Ok(false) => Err(format!("there is no secret {}", field("key"))),
            Err(e) => Err(refusal(e.into())),
        },
        "variable" => {
            let value = form.get("value").cloned().unwrap_or_default();
            match hub
                .store()
                .set_variable(&repo.id, field("key"), &value, optional("description"))
            {
                Ok(()) => {
                    hub.settings_changed(&repo.id);
                    Ok(())
                }
                Err(e) => Err(refusal(e.into())),
            }
        }
        "variable-delete" => match hub.store().delete_variable(&repo.id, field("key")) {
            Ok(true) => {
                hub.settings_changed(&repo.id);
                Ok(())
            }
            Ok(false) => Err(format!("there is no variable {}", field("key"))),
            Err(e) => Err(refusal(e.into())),
        },
        "restart" => hub
            .restart(&repo.id, false)
            .await
            .map(drop)
            .map_err(refusal),
        "rebuild" => hub.restart(&repo.id, true).await.map(drop).map_err(refusal),
        "pause" => hub.pause(&repo.id).await.map(drop).map_err(refusal),
        _ => {
            return super::error_page(
                StatusCode::NOT_FOUND,
                &chrome,
                "No such setting",
                "This form does not exist.",
            );
        }
    };
    match result {
        Ok(()) => {
            Redirect::to(&format!("/spaces/{}/settings?done={action}", repo.id)).into_response()
        }
        Err(why) => {
            let repo = hub
                .store()
                .repo(RepoKind::Space, &repo.id)
                .ok()
                .flatten()
                .unwrap_or(repo);
            let data = settings_data(&hub, &ui, &viewer, &repo).await;
            let body = format!(
                "<p class=\"notice err\" role=\"alert\">Not saved: {}</p>{}",
                esc(&why),
                super::space::render_settings(&data)
            );
            html(
                StatusCode::BAD_REQUEST,
                layout::page(&format!("Settings of {}", repo.id), &chrome, &body),
            )
        }
    }
}
