//! The Hugging Face-compatible HTTP API of the hub, as the
//! `huggingface_hub` client calls it (`HfApi(endpoint=...)`), plus the
//! hub's own admin endpoints for users, organizations and tokens.
//!
//! Errors are JSON `{"error": "..."}` with the same words in
//! `X-Error-Message`, which is where the client looks; an unknown or hidden
//! repo answers 404 with `X-Error-Code: RepoNotFound`, so the client raises
//! `RepositoryNotFoundError`. A private Space is indistinguishable from a
//! missing one to whoever may not read it.

pub mod admin;
pub mod auth;
pub mod files;
pub mod logs;
pub mod repos;
pub mod spaces;

use axum::Json;
use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

use super::Hub;
use crate::engine::ContainerEngine;

/// An API failure: status, machine code, words for a person.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: None,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    /// The repo does not exist, or the caller may not know it does.
    pub fn repo_not_found(kind: crate::repos::RepoKind, id: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: Some("RepoNotFound"),
            message: format!(
                "Repository Not Found for {}: {id}. Check the name, and pass a token that may read it if it is private.",
                kind.as_str()
            ),
        }
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error in the API");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}"),
        )
    }
}

impl From<crate::state::StateError> for ApiError {
    fn from(e: crate::state::StateError) -> Self {
        use crate::state::StateError as S;
        match &e {
            S::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            S::AlreadyExists(_) => ApiError::conflict(e.to_string()),
            // Not 409: clients read 409 as "it exists already" and, with
            // `exist_ok`, would carry on as if the Space were theirs.
            S::HostTaken { .. } => ApiError::bad_request(e.to_string()),
            S::Invalid(_) => ApiError::bad_request(e.to_string()),
            _ => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        // Header values cannot carry newlines or non-ASCII: keep the first line.
        let first: String = self
            .message
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&first) {
            resp.headers_mut().insert("x-error-message", v);
        }
        if let Some(code) = self.code {
            resp.headers_mut()
                .insert("x-error-code", HeaderValue::from_static(code));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose syntax errors become clear 400s (axum's default
/// rejection is plain text).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("failed to read the body: {e}")))?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "the request needs a JSON body".to_string(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Largest API request body.
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// Reads every API request's body before the handler runs. A handler that
/// refuses early (bad token, no access) would otherwise answer with the
/// body unread, and the server then closes the connection, which a client
/// reusing it for its next request sees as "disconnected without a
/// response".
async fn read_body_first(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Err(_) => {
            let mut resp = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
            .into_response();
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

/// The API routes, to be merged into the hub's router.
pub fn router<E: ContainerEngine>() -> Router<Hub<E>> {
    routes::<E>().layer(axum::middleware::from_fn(read_body_first))
}

fn routes<E: ContainerEngine>() -> Router<Hub<E>> {
    Router::new()
        .route("/api/whoami-v2", get(admin::whoami::<E>))
        .route("/api/repos/create", post(repos::create::<E>))
        .route("/api/repos/delete", delete(repos::delete_repo::<E>))
        .route("/api/spaces", get(repos::list_spaces::<E>))
        .route("/api/models", get(repos::list_models::<E>))
        .route("/api/datasets", get(repos::list_datasets::<E>))
        .route("/api/spaces/{owner}/{name}", get(repos::space_info::<E>))
        .route(
            "/api/spaces/{owner}/{name}/revision/{*rev}",
            get(repos::space_info_at::<E>),
        )
        .route("/api/models/{owner}/{name}", get(repos::model_info::<E>))
        .route(
            "/api/models/{owner}/{name}/revision/{*rev}",
            get(repos::model_info_at::<E>),
        )
        .route(
            "/api/datasets/{owner}/{name}",
            get(repos::dataset_info::<E>),
        )
        .route(
            "/api/datasets/{owner}/{name}/revision/{*rev}",
            get(repos::dataset_info_at::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/runtime",
            get(spaces::runtime::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/hardware",
            post(spaces::hardware::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/sleeptime",
            post(spaces::sleeptime::<E>),
        )
        .route("/api/spaces/{owner}/{name}/pause", post(spaces::pause::<E>))
        .route(
            "/api/spaces/{owner}/{name}/volumes",
            put(spaces::set_volumes::<E>).delete(spaces::delete_volumes::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/restart",
            post(spaces::restart::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/secrets",
            get(spaces::secrets::<E>)
                .post(spaces::add_secret::<E>)
                .delete(spaces::delete_secret::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/variables",
            get(spaces::variables::<E>)
                .post(spaces::add_variable::<E>)
                .delete(spaces::delete_variable::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/logs/{which}",
            get(logs::logs::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/analytics",
            get(spaces::analytics::<E>),
        )
        .route("/api/spaces/hardware", get(spaces::hardware_list::<E>))
        .route(
            "/api/admin/users",
            post(admin::create_user::<E>).get(admin::list_users::<E>),
        )
        .route("/api/admin/orgs", post(admin::create_org::<E>))
        .route(
            "/api/admin/orgs/{org}/members",
            post(admin::add_member::<E>),
        )
        .route(
            "/api/tokens",
            post(admin::create_token::<E>).get(admin::list_tokens::<E>),
        )
        .route("/api/tokens/{id}", delete(admin::revoke_token::<E>))
        .route(
            "/api/admin/users/{user}/tokens",
            get(admin::list_user_tokens::<E>),
        )
        .route(
            "/api/admin/users/{user}/tokens/{id}",
            delete(admin::revoke_user_token::<E>),
        )
        .route(
            "/api/models/{owner}/{name}/tree/{rev}",
            get(files::tree_model::<E>),
        )
        .route(
            "/api/models/{owner}/{name}/tree/{rev}/{*path}",
            get(files::tree_model_dir::<E>),
        )
        .route(
            "/api/datasets/{owner}/{name}/tree/{rev}",
            get(files::tree_dataset::<E>),
        )
        .route(
            "/api/datasets/{owner}/{name}/tree/{rev}/{*path}",
            get(files::tree_dataset_dir::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/tree/{rev}",
            get(files::tree_space::<E>),
        )
        .route(
            "/api/spaces/{owner}/{name}/tree/{rev}/{*path}",
            get(files::tree_space_dir::<E>),
        )
        .route(
            "/{owner}/{name}/resolve/{rev}/{*path}",
            get(files::resolve_model::<E>).head(files::resolve_model::<E>),
        )
        .route(
            "/datasets/{owner}/{name}/resolve/{rev}/{*path}",
            get(files::resolve_dataset::<E>).head(files::resolve_dataset::<E>),
        )
        .route(
            "/spaces/{owner}/{name}/resolve/{rev}/{*path}",
            get(files::resolve_space::<E>).head(files::resolve_space::<E>),
        )
}
