//! Repos: create, delete, describe, list.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, readable, repo_id};
use super::{ApiError, ApiResult, JsonBody};
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::hub::deploy::Reason;
use crate::plan::SpaceId;
use crate::repos::RepoKind;
use crate::state::{NewRepo, Repo};

/// Unix seconds as the Hub writes times: `2026-11-28T09:10:11.000Z`.
pub fn iso_time(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    let s = crate::build::utc_timestamp(t);
    // utc_timestamp gives "YYYY-MM-DD HH:MM:SS"
    format!("{}.000Z", s.replacen(' ', "T", 1))
}

const SDKS: [&str; 4] = ["gradio", "streamlit", "docker", "static"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    name: String,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    private: Option<bool>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    sdk: Option<String>,
    #[serde(default)]
    hardware: Option<String>,
    #[serde(default)]
    sleep_time_seconds: Option<i64>,
    #[serde(default)]
    secrets: Option<Vec<KeyValueDesc>>,
    #[serde(default)]
    variables: Option<Vec<KeyValueDesc>>,
}

#[derive(Debug, Deserialize)]
pub struct KeyValueDesc {
    key: String,
    value: String,
    #[serde(default)]
    description: Option<String>,
}

/// The repo's web URL (also its git URL), on the host the client used:
/// the client refuses a URL whose host differs from its endpoint's.
pub fn repo_url<E: ContainerEngine>(
    hub: &Hub<E>,
    headers: &http::HeaderMap,
    kind: RepoKind,
    id: &SpaceId,
) -> String {
    let base = request_base(hub, headers);
    format!("{base}{}/{id}", kind.url_prefix())
}

/// `scheme://host[:port]` of this request, or the configured public URL.
pub fn request_base<E: ContainerEngine>(hub: &Hub<E>, headers: &http::HeaderMap) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        });
    match host {
        Some(h) => {
            let scheme = headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .filter(|v| *v == "https" || *v == "http")
                .unwrap_or(if hub.config().public_url.starts_with("https:") {
                    "https"
                } else {
                    "http"
                });
            format!("{scheme}://{h}")
        }
        None => hub.config().public_url.trim_end_matches('/').to_owned(),
    }
}

pub async fn create<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    headers: http::HeaderMap,
    JsonBody(body): JsonBody<CreateRequest>,
) -> ApiResult<Response> {
    let who = caller.writer()?.clone();
    let kind: RepoKind = body
        .kind
        .as_deref()
        .unwrap_or("model")
        .parse()
        .map_err(ApiError::bad_request)?;
    // The client sends either name + organization, or "owner/name" in name.
    let (owner, name) = match (body.organization.as_deref(), body.name.split_once('/')) {
        (Some(org), None) => (org.to_owned(), body.name.clone()),
        (None, Some((o, n))) => (o.to_owned(), n.to_owned()),
        (None, None) => (who.user.name.clone(), body.name.clone()),
        (Some(org), Some((o, n))) if org == o => (o.to_owned(), n.to_owned()),
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give the owner either in \"organization\" or in \"name\", not both",
            ));
        }
    };
    let id = SpaceId::parse(&format!("{owner}/{name}"))
        .map_err(|e| ApiError::bad_request(format!("invalid repo name '{owner}/{name}': {e}")))?;
    if hub.store().owner(id.owner())?.is_none() {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            format!("no user or organization named '{}'", id.owner()),
        ));
    }
    if !hub.store().can_write(&who.user, id.owner())? {
        return Err(ApiError::forbidden(format!(
            "{} may not create repos for '{}'",
            who.user.name,
            id.owner()
        )));
    }
    let sdk = match kind {
        RepoKind::Space => {
            let sdk = body.sdk.clone().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "a Space needs an \"sdk\": one of {}",
                    SDKS.join(", ")
                ))
            })?;
            if !SDKS.contains(&sdk.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "unknown sdk '{sdk}': use one of {}",
                    SDKS.join(", ")
                )));
            }
            Some(sdk)
        }
        _ => None,
    };
    if let Some(h) = &body.hardware
        && hub.config().catalog.get(h).is_none()
    {
        return Err(ApiError::bad_request(format!(
            "unknown hardware flavor '{h}': this hub offers {}",
            hub.config().catalog.names().join(", ")
        )));
    }
    let visibility = match (body.visibility.as_deref(), body.private) {
        (Some("private"), _) | (None, Some(true)) => spaceport_proxy::Visibility::Private,
        (Some("protected"), _) => spaceport_proxy::Visibility::Protected,
        (Some("public"), _) | (None, _) => spaceport_proxy::Visibility::Public,
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "unknown visibility '{other}': use public, protected or private"
            )));
        }
    };
    if let Some(existing) = hub.store().repo(kind, &id)? {
        // The client reads `url` even from this answer (exist_ok=True).
        let url = repo_url(&hub, &headers, kind, &existing.id);
        let message = format!(
            "You already created this {} repo: {}",
            kind.as_str(),
            existing.id
        );
        let mut resp = (
            http::StatusCode::CONFLICT,
            Json(json!({ "error": message, "url": url })),
        )
            .into_response();
        if let Ok(v) = http::HeaderValue::from_str(&message) {
            resp.headers_mut().insert("x-error-message", v);
        }
        return Ok(resp);
    }
    let mut new = NewRepo::new(kind, id.clone(), &who.user.name);
    new.visibility = visibility;
    new.settings.sdk = sdk;
    new.settings.hardware = body.hardware.clone();
    new.settings.sleep_time = body.sleep_time_seconds;
    let repo = hub.store().create_repo(new)?;
    if let Err(e) = hub.repos().create(kind, &repo.id).await {
        let _ = hub.store().delete_repo(kind, &repo.id);
        return Err(ApiError::internal(format!(
            "failed to create the git repo: {e}"
        )));
    }
    for s in body.secrets.unwrap_or_default() {
        hub.store()
            .set_secret(&repo.id, &s.key, &s.value, s.description.as_deref())?;
    }
    for v in body.variables.unwrap_or_default() {
        hub.store()
            .set_variable(&repo.id, &v.key, &v.value, v.description.as_deref())?;
    }
    if kind == RepoKind::Space {
        hub.entry(&repo.id).bump();
        hub.refresh_routes();
    }
    let url = repo_url(&hub, &headers, kind, &repo.id);
    Ok(Json(json!({
        "url": url,
        "name": repo.id.to_string(),
        "id": repo.id.to_string(),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub struct DeleteRequest {
    name: String,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

pub async fn delete_repo<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    JsonBody(body): JsonBody<DeleteRequest>,
) -> ApiResult<Json<Value>> {
    let kind: RepoKind = body
        .kind
        .as_deref()
        .unwrap_or("model")
        .parse()
        .map_err(ApiError::bad_request)?;
    let full = match (&body.organization, body.name.contains('/')) {
        (Some(o), false) => format!("{o}/{}", body.name),
        _ => body.name.clone(),
    };
    let id = SpaceId::parse(&full).map_err(|_| ApiError::repo_not_found(kind, &full))?;
    let (repo, _) = super::auth::writable(&hub, &caller, kind, &id)?;
    if kind == RepoKind::Space {
        hub.remove_space(&repo.id).await;
    }
    hub.store().delete_repo(kind, &repo.id)?;
    if let Err(e) = hub.repos().delete(kind, &repo.id).await {
        tracing::warn!(repo = %repo.id, error = %e, "failed to delete the git repo");
    }
    hub.refresh_routes();
    Ok(Json(json!({})))
}

#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    search: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list<E: ContainerEngine>(
    hub: &Hub<E>,
    caller: &Caller,
    kind: RepoKind,
    q: &ListQuery,
) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for repo in hub.store().repos(kind)? {
        if let Some(a) = &q.author
            && !repo.id.owner().eq_ignore_ascii_case(a)
        {
            continue;
        }
        if let Some(s) = &q.search
            && !repo
                .id
                .to_string()
                .to_ascii_lowercase()
                .contains(&s.to_ascii_lowercase())
        {
            continue;
        }
        if readable(hub, caller, kind, &repo.id).is_err() {
            continue;
        }
        out.push(summary_json(hub, &repo));
        if q.limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(Json(Value::Array(out)))
}

pub async fn list_spaces<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&hub, &caller, RepoKind::Space, &q).await
}

pub async fn list_models<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&hub, &caller, RepoKind::Model, &q).await
}

pub async fn list_datasets<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&hub, &caller, RepoKind::Dataset, &q).await
}

fn summary_json<E: ContainerEngine>(hub: &Hub<E>, repo: &Repo) -> Value {
    let mut v = json!({
        "_id": repo.id.to_string(),
        "id": repo.id.to_string(),
        "author": repo.id.owner(),
        "private": repo.private,
        "createdAt": iso_time(repo.created_at),
        "likes": 0,
        "tags": [],
    });
    if let Some(c) = &repo.settings.commit {
        v["sha"] = Value::from(c.clone());
    }
    if repo.kind == RepoKind::Space {
        v["sdk"] = Value::from(repo.settings.sdk.clone());
        v["subdomain"] = Value::from(repo.id.host_label());
        v["host"] = Value::from(
            hub.config()
                .space_url(&repo.id)
                .trim_end_matches('/')
                .to_string(),
        );
        v["runtime"] = super::spaces::runtime_json(hub, repo);
    }
    v
}

/// `?blobs=true` of a repo's info: siblings with their blob ids, sizes
/// and, for large files, their SHA-256 (`model_info(files_metadata=True)`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct InfoQuery {
    #[serde(default)]
    blobs: Option<String>,
}

async fn info<E: ContainerEngine>(
    hub: &Hub<E>,
    caller: &Caller,
    kind: RepoKind,
    (owner, name): (&str, &str),
    rev: Option<&str>,
    query: &InfoQuery,
) -> ApiResult<Json<Value>> {
    let blobs = query
        .blobs
        .as_deref()
        .is_some_and(|v| matches!(v, "1" | "true" | "True"));
    let id = repo_id(kind, owner, name)?;
    let repo = readable(hub, caller, kind, &id)?;
    let mut v = summary_json(hub, &repo);
    let sha = match rev {
        Some(r) => match hub.repos().resolve(kind, &repo.id, r).await {
            Ok(sha) => Some(sha),
            // A new repo has no commit yet; its default branch is still
            // a fine thing to ask about.
            Err(_)
                if r == "main"
                    && hub
                        .repos()
                        .head(kind, &repo.id, "main")
                        .await
                        .is_ok_and(|h| h.is_none()) =>
            {
                None
            }
            Err(e) => {
                let mut err = ApiError::new(
                    http::StatusCode::NOT_FOUND,
                    format!("Invalid rev id: {r} ({e})"),
                );
                err.code = Some("RevisionNotFound");
                return Err(err);
            }
        },
        None => hub
            .repos()
            .head(kind, &repo.id, "main")
            .await
            .map_err(ApiError::internal)?,
    };
    let mut siblings = Vec::new();
    if let Some(sha) = &sha {
        v["sha"] = Value::from(sha.clone());
        if blobs {
            let items = hub
                .repos()
                .list_tree(kind, &repo.id, sha, None, true)
                .await
                .map_err(ApiError::internal)?;
            for item in items {
                let Some(size) = item.size else { continue };
                let mut s = json!({ "rfilename": item.path, "blobId": item.oid, "size": size });
                if size >= crate::repos::LARGE_FILE_BYTES {
                    let (_, sha256) = hub
                        .repos()
                        .large_blob(kind, &repo.id, &item.oid)
                        .await
                        .map_err(ApiError::internal)?;
                    s["lfs"] = json!({ "sha256": sha256, "size": size, "pointerSize": 134 });
                }
                siblings.push(s);
            }
        } else {
            for (path, size) in hub
                .repos()
                .list_files(kind, &repo.id, sha)
                .await
                .map_err(ApiError::internal)?
            {
                siblings.push(json!({ "rfilename": path, "size": size }));
            }
        }
        if let Ok(Some(readme)) = hub
            .repos()
            .read_file(kind, &repo.id, sha, "README.md", 4 << 20)
            .await
        {
            let parsed = crate::config::parse_readme(&readme);
            if let Some(config) = parsed.config
                && let Ok(card) = serde_json::to_value(&config)
            {
                v["cardData"] = card;
            }
        }
    }
    v["siblings"] = Value::Array(siblings);
    v["lastModified"] = Value::from(iso_time(repo.created_at));
    v["disabled"] = Value::from(false);
    v["gated"] = Value::from(false);
    Ok(Json(v))
}

macro_rules! info_handlers {
    ($plain:ident, $at:ident, $kind:expr) => {
        pub async fn $plain<E: ContainerEngine>(
            State(hub): State<Hub<E>>,
            caller: Caller,
            Path((owner, name)): Path<(String, String)>,
            Query(q): Query<InfoQuery>,
        ) -> ApiResult<Json<Value>> {
            info(&hub, &caller, $kind, (&owner, &name), None, &q).await
        }

        pub async fn $at<E: ContainerEngine>(
            State(hub): State<Hub<E>>,
            caller: Caller,
            Path((owner, name, rev)): Path<(String, String, String)>,
            Query(q): Query<InfoQuery>,
        ) -> ApiResult<Json<Value>> {
            info(&hub, &caller, $kind, (&owner, &name), Some(&rev), &q).await
        }
    };
}

info_handlers!(space_info, space_info_at, RepoKind::Space);
info_handlers!(model_info, model_info_at, RepoKind::Model);
info_handlers!(dataset_info, dataset_info_at, RepoKind::Dataset);

impl<E: ContainerEngine> Hub<E> {
    /// Stops everything of a Space that is being deleted.
    pub async fn remove_space(&self, space: &SpaceId) {
        let entry = self.entry(space);
        entry.cancel_build("the Space was deleted");
        if let Some(backend) = self.backend() {
            if let Err(e) = backend.delete(space).await {
                tracing::warn!(%space, error = %e, "failed to delete the Space from its backend");
            }
            self.forget(space);
            return;
        }
        self.inner.statics.stop(space);
        if self.inner.runner.status(space).is_some() {
            let _ = self.inner.runner.stop(space).await;
        }
        let trees = self
            .config()
            .data_dir
            .join("trees")
            .join(space.owner())
            .join(space.name());
        let _ = std::fs::remove_dir_all(trees);
        self.forget(space);
    }

    /// Deploys, after a restart of the hub, the Spaces that should run but
    /// do not (containers still running were adopted by the runner).
    pub async fn recover(&self, adopted: &[SpaceId]) {
        if self.backend().is_some() {
            // The backend keeps what runs; nothing was lost with the hub.
            return;
        }
        let Ok(repos) = self.store().repos(RepoKind::Space) else {
            return;
        };
        for repo in repos {
            if adopted.contains(&repo.id) || self.inner.runner.is_sleeping(&repo.id) {
                self.follow_adopted(&repo.id);
                continue;
            }
            if repo.settings.paused || repo.settings.commit.is_none() {
                continue;
            }
            self.request_deploy(&repo.id, Reason::Recover);
        }
        self.refresh_routes();
    }
}
