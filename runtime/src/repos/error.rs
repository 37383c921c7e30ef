//! Errors of the repo store and of git over HTTP.

use super::RepoKind;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use std::path::PathBuf;

/// Result of the repo store.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// What went wrong with a repo. Messages are lowercase and say what to do;
/// [`IntoResponse`] turns each into a plain-text HTTP answer with a fitting
/// status (git shows plain-text bodies of failed requests to the user).
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{kind} repository {id} not found; create it first")]
    NotFound { kind: RepoKind, id: String },

    #[error("{kind} repository {id} already exists; pick another name or delete it first")]
    AlreadyExists { kind: RepoKind, id: String },

    #[error(
        "invalid repository name '{0}': use 'owner/name' with letters, digits, '-', '_' and '.'"
    )]
    InvalidName(String),

    #[error("revision '{rev}' not found in {id}; use a branch, a tag or a full commit hash")]
    RevisionNotFound { id: String, rev: String },

    #[error("unknown git service '{0}'; git asks for git-upload-pack or git-receive-pack")]
    UnknownService(String),

    #[error("unsupported request: {0}")]
    BadRequest(String),

    #[error("unsupported content type '{0}'; send the request with a git client")]
    UnsupportedMediaType(String),

    #[error("the request is larger than the limit of {limit} bytes; push fewer or smaller files")]
    TooLarge { limit: u64 },

    #[error("failed to decode the gzip request body: {0}")]
    Gzip(String),

    #[error("failed to read the request body: {0}")]
    Body(String),

    #[error("failed to run git {command}: {source}; is git installed and on PATH?")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to run git {command}: {message}")]
    Git { command: String, message: String },

    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to export: {0}")]
    Unsafe(String),

    #[error(
        "failed to export: the tree is larger than the limit of {limit} {what}; raise the export limit"
    )]
    ExportLimit { what: &'static str, limit: u64 },
}

impl RepoError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RepoError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            RepoError::NotFound { .. } | RepoError::RevisionNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            RepoError::AlreadyExists { .. } => StatusCode::CONFLICT,
            RepoError::InvalidName(_)
            | RepoError::BadRequest(_)
            | RepoError::Gzip(_)
            | RepoError::Body(_) => StatusCode::BAD_REQUEST,
            RepoError::UnknownService(_) => StatusCode::FORBIDDEN,
            RepoError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RepoError::TooLarge { .. } | RepoError::ExportLimit { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            RepoError::Unsafe(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RepoError::Spawn { .. } | RepoError::Git { .. } | RepoError::Io { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for RepoError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "git request failed");
        }
        let mut response = (status, format!("{self}\n")).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}
