//! Repos kept by the hub: bare git repos of Spaces, models and datasets,
//! and git's smart HTTP protocol over them.
//!
//! - [`RepoStore`]: the repos on disk (`<root>/<kind plural>/<owner>/<name>.git`):
//!   create, delete, read a branch, resolve a revision, list and export a
//!   commit's files.
//! - [`info_refs`], [`upload_pack`], [`receive_pack`]: the three git
//!   endpoints, as plain async functions for the hub's handlers. A push
//!   hands back a [`PushWatch`] that tells, once git is done, which refs
//!   moved: the hub queues a build when a Space's `main` did.
//! - [`basic_auth_password`], [`unauthorized`]: what the hub needs to
//!   authenticate git clients (the decision itself is the hub's).

mod beneath;
mod body;
mod error;
mod extract;
mod files;
mod hooks;
mod http;
mod kind;
mod store;

pub use beneath::{BeneathError, MAX_LINK_HOPS, resolve_beneath};
pub use body::{GzipStream, Pumped, pump};
pub use error::{RepoError, Result};
pub use extract::{ExportLimits, ExportStats, extract_tar};
pub use files::{ByteRange, FileEntry, LARGE_FILE_BYTES, TreeItem, parse_range};
pub use hooks::{ENV_LOGS_URL, ENV_PUSH_REPORT, ENV_PUSHER, ENV_SPACE_URL};
pub use http::{
    GitService, PushContext, PushOutcome, PushWatch, RefUpdate, basic_auth_password,
    basic_auth_user, info_refs, parse_repo_id, receive_pack, unauthorized, upload_pack,
};
pub use kind::RepoKind;
pub use store::{DEFAULT_MAX_FETCH_REQUEST_BYTES, DEFAULT_MAX_PUSH_BYTES, RepoStore};
