//! The download API `huggingface_hub` uses (`hf_hub_download`,
//! `snapshot_download`): `GET`/`HEAD /{id}/resolve/{rev}/{path}` for
//! models, `/datasets/{id}/...` and `/spaces/{id}/...`, with the commit
//! (`X-Repo-Commit`), an ETag (the git blob id, or for large files the
//! SHA-256 also given as `X-Linked-Etag` with `X-Linked-Size`, as the Hub
//! gives for LFS files), `Content-Length`, single byte ranges (the
//! client resumes an interrupted download with one) and `If-None-Match`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{Caller, readable, repo_id};
use super::{ApiError, ApiResult};
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::repos::{ByteRange, RepoKind, parse_range};

async fn resolve<E: ContainerEngine>(
    hub: &Hub<E>,
    caller: &Caller,
    kind: RepoKind,
    (owner, name, rev, file): (String, String, String, String),
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let id = repo_id(kind, &owner, &name)?;
    let repo = readable(hub, caller, kind, &id)?;
    let commit = resolve_rev(hub, kind, &repo.id, &rev).await?;
    let entry = hub
        .repos()
        .file_entry(kind, &repo.id, &commit, &file)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            let mut err = ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Entry not found: {file} is not in {} at {rev}", repo.id),
            );
            err.code = Some("EntryNotFound");
            err
        })?;
    let large = if entry.is_large() {
        Some(
            hub.repos()
                .large_blob(kind, &repo.id, &entry.oid)
                .await
                .map_err(ApiError::internal)?,
        )
    } else {
        None
    };
    let etag = match &large {
        Some((_, sha)) => format!("\"{sha}\""),
        None => format!("\"{}\"", entry.oid),
    };
    let size = entry.size;
    let mut out = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    set("x-repo-commit", &commit);
    set("etag", &etag);
    set("accept-ranges", "bytes");
    set("content-type", "application/octet-stream");
    // A repo's file is a user's content on the hub's origin: a browser that
    // opens it must neither sniff it into a page nor run it as one here.
    set("x-content-type-options", "nosniff");
    set("content-security-policy", "default-src 'none'; sandbox");
    if large.is_some() {
        set("x-linked-etag", &etag);
        set("x-linked-size", &size.to_string());
    }
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, start, len) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part { start, end } => {
            tracing::debug!(repo = %repo.id, file = %file, start, end, "serving a byte range");
            out.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
                    .map_err(ApiError::internal)?,
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        ByteRange::Unsatisfiable => {
            out.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).map_err(ApiError::internal)?,
            );
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, out).into_response());
        }
    };
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if method == Method::HEAD {
        return Ok((status, out).into_response());
    }
    let body = match large {
        Some((path, _)) => {
            let mut f = std::fs::File::open(&path).map_err(ApiError::internal)?;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start))
                .map_err(ApiError::internal)?;
            Body::from_stream(file_chunks(f, len))
        }
        None => {
            let bytes = hub
                .repos()
                .blob_bytes(kind, &repo.id, &entry.oid)
                .await
                .map_err(ApiError::internal)?;
            let start = usize::try_from(start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = start
                .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                .min(bytes.len());
            Body::from(bytes[start..end].to_vec())
        }
    };
    let mut resp = (status, out).into_response();
    *resp.body_mut() = body;
    Ok(resp)
}

/// The next `len` bytes of `file`, in chunks of up to 1 MiB, each read
/// straight into the buffer it is sent in: one read per chunk, off the
/// async threads, and no second copy (as through `tokio::fs::File`).
fn file_chunks(
    file: std::fs::File,
    len: u64,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    const CHUNK: u64 = 1 << 20;
    let file = std::sync::Arc::new(file);
    futures_util::stream::try_unfold(len, move |left| {
        let file = file.clone();
        async move {
            if left == 0 {
                return Ok(None);
            }
            let want = left.min(CHUNK);
            let chunk = tokio::task::spawn_blocking(move || {
                use std::io::Read;
                // std reads a File into spare capacity without zeroing it.
                let mut buf = Vec::with_capacity(want as usize);
                (&*file).take(want).read_to_end(&mut buf)?;
                Ok::<_, std::io::Error>(buf)
            })
            .await
            .map_err(std::io::Error::other)??;
            if chunk.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the blob is shorter than its size",
                ));
            }
            let n = chunk.len() as u64;
            Ok(Some((bytes::Bytes::from(chunk), left - n)))
        }
    })
}

/// `recursive` and `expand` of a tree listing.
#[derive(Debug, serde::Deserialize)]
pub struct TreeQuery {
    #[serde(default)]
    recursive: Option<String>,
}

/// `GET /api/{kind}s/{id}/tree/{rev}[/{path}]`: the entries under a
/// folder, as `list_repo_tree` reads them (one page; large files with
/// their SHA-256 as `lfs`).
async fn tree<E: ContainerEngine>(
    hub: &Hub<E>,
    caller: &Caller,
    kind: RepoKind,
    (owner, name, rev, dir): (String, String, String, Option<String>),
    query: TreeQuery,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let id = repo_id(kind, &owner, &name)?;
    let repo = readable(hub, caller, kind, &id)?;
    let commit = resolve_rev(hub, kind, &repo.id, &rev).await?;
    let recursive = query
        .recursive
        .as_deref()
        .is_some_and(|v| matches!(v, "1" | "true" | "True"));
    let items = hub
        .repos()
        .list_tree(kind, &repo.id, &commit, dir.as_deref(), recursive)
        .await
        .map_err(ApiError::internal)?;
    if items.is_empty()
        && let Some(d) = dir.as_deref().filter(|d| !d.is_empty())
    {
        let mut err = ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "Entry not found: {d} is not a folder of {} at {rev}",
                repo.id
            ),
        );
        err.code = Some("EntryNotFound");
        return Err(err);
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut v = serde_json::json!({
            "type": if item.size.is_some() { "file" } else { "directory" },
            "oid": item.oid,
            "size": item.size.unwrap_or(0),
            "path": item.path,
        });
        if let Some(size) = item.size
            && size >= crate::repos::LARGE_FILE_BYTES
        {
            let (_, sha) = hub
                .repos()
                .large_blob(kind, &repo.id, &item.oid)
                .await
                .map_err(ApiError::internal)?;
            v["lfs"] = serde_json::json!({ "oid": sha, "size": size, "pointerSize": 134 });
        }
        out.push(v);
    }
    Ok(axum::Json(serde_json::Value::Array(out)))
}

async fn resolve_rev<E: ContainerEngine>(
    hub: &Hub<E>,
    kind: RepoKind,
    id: &crate::plan::SpaceId,
    rev: &str,
) -> ApiResult<String> {
    hub.repos().resolve(kind, id, rev).await.map_err(|e| {
        let mut err = ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Invalid rev id: {rev} ({e})"),
        );
        err.code = Some("RevisionNotFound");
        err
    })
}

macro_rules! tree_handlers {
    ($root:ident, $sub:ident, $kind:expr) => {
        pub async fn $root<E: ContainerEngine>(
            State(hub): State<Hub<E>>,
            caller: Caller,
            axum::extract::Query(q): axum::extract::Query<TreeQuery>,
            Path((owner, name, rev)): Path<(String, String, String)>,
        ) -> ApiResult<axum::Json<serde_json::Value>> {
            tree(&hub, &caller, $kind, (owner, name, rev, None), q).await
        }

        pub async fn $sub<E: ContainerEngine>(
            State(hub): State<Hub<E>>,
            caller: Caller,
            axum::extract::Query(q): axum::extract::Query<TreeQuery>,
            Path((owner, name, rev, dir)): Path<(String, String, String, String)>,
        ) -> ApiResult<axum::Json<serde_json::Value>> {
            tree(&hub, &caller, $kind, (owner, name, rev, Some(dir)), q).await
        }
    };
}

tree_handlers!(tree_model, tree_model_dir, RepoKind::Model);
tree_handlers!(tree_dataset, tree_dataset_dir, RepoKind::Dataset);
tree_handlers!(tree_space, tree_space_dir, RepoKind::Space);

macro_rules! resolve_handler {
    ($name:ident, $kind:expr) => {
        pub async fn $name<E: ContainerEngine>(
            State(hub): State<Hub<E>>,
            caller: Caller,
            method: Method,
            headers: HeaderMap,
            Path(parts): Path<(String, String, String, String)>,
        ) -> ApiResult<Response> {
            resolve(&hub, &caller, $kind, parts, &method, &headers).await
        }
    };
}

resolve_handler!(resolve_model, RepoKind::Model);
resolve_handler!(resolve_dataset, RepoKind::Dataset);
resolve_handler!(resolve_space, RepoKind::Space);
