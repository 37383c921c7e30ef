//! Static Spaces need no container: each is served from its exported tree
//! by a small file server on a loopback port, and the proxy forwards to it
//! like to any other upstream, so metering, embedding and access rules are
//! the same as for containers.
//!
//! The server never follows a link out of its folder: each request path is
//! resolved component by component within the folder (see
//! [`resolve_beneath`]), so a link that leaves it, however spelled, serves
//! as a missing file even if such a link got onto disk; only the resolved,
//! link-free path is opened.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::plan::SpaceId;
use crate::repos::resolve_beneath;

/// The file server of one site: `index` at `/`, the folder's files below
/// it (`index.html` for a folder), and the site's own 404.html (with
/// status 404) for missing files. No directory listings.
/// `spaceport serve-static` serves the same router on its own.
pub fn site_router(root: &Path, index: &str) -> Router {
    let site = Arc::new(SiteFiles {
        root: root.to_owned(),
        index: PathBuf::from(index),
    });
    Router::new().fallback(move |req: Request| {
        let site = Arc::clone(&site);
        async move { site.answer(req).await }
    })
}

/// What a request path names inside the site's folder.
enum Found {
    File(PathBuf),
    Folder,
    Missing,
}

struct SiteFiles {
    root: PathBuf,
    index: PathBuf,
}

impl SiteFiles {
    async fn answer(&self, req: Request) -> Response {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, HeaderValue::from_static("GET,HEAD"))],
            )
                .into_response();
        }
        let path = req.uri().path().to_owned();
        let Some(rel) = request_path(&path) else {
            return self.not_found(req).await;
        };
        let rel = if rel.as_os_str().is_empty() {
            self.index.clone()
        } else {
            rel
        };
        match self.locate(&rel) {
            Found::File(file) => serve_file(file, req).await,
            Found::Folder if path.ends_with('/') => match self.locate(&rel.join("index.html")) {
                Found::File(file) => serve_file(file, req).await,
                _ => self.not_found(req).await,
            },
            Found::Folder => {
                // Relative links in the folder's index.html need the slash.
                // One leading slash only: `//name` would send the browser
                // to another host.
                let mut location = format!("/{}/", path.trim_start_matches('/'));
                if let Some(query) = req.uri().query() {
                    location.push('?');
                    location.push_str(query);
                }
                match HeaderValue::from_str(&location) {
                    Ok(location) => (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(header::LOCATION, location)],
                    )
                        .into_response(),
                    Err(_) => self.not_found(req).await,
                }
            }
            Found::Missing => self.not_found(req).await,
        }
    }

    /// Resolves `rel` within the folder; a path that leads outside (or
    /// that cannot be read) is missing.
    fn locate(&self, rel: &Path) -> Found {
        let resolved = match resolve_beneath(&self.root, rel) {
            Ok(resolved) => resolved,
            Err(e) => {
                tracing::debug!(error = %e, "a static site refused a path");
                return Found::Missing;
            }
        };
        let full = self.root.join(resolved);
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_file() => Found::File(full),
            Ok(meta) if meta.is_dir() => Found::Folder,
            _ => Found::Missing,
        }
    }

    /// The site's own 404.html with status 404, or an empty 404.
    async fn not_found(&self, mut req: Request) -> Response {
        let Found::File(page) = self.locate(Path::new("404.html")) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        // The page is sent whole, whatever the request asked of the
        // missing file.
        for name in [
            header::RANGE,
            header::IF_RANGE,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
            header::IF_NONE_MATCH,
            header::IF_MATCH,
        ] {
            req.headers_mut().remove(name);
        }
        let mut response = serve_file(page, req).await;
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    }
}

/// Content types, HEAD, conditional and range requests as tower-http
/// answers them; `file` is already resolved and free of links.
async fn serve_file(file: PathBuf, req: Request) -> Response {
    match ServeFile::new(file).oneshot(req).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

/// The request path as relative components, percent-decoded; `None` for
/// paths no file can have (`..`, NUL, bad escapes, non-UTF-8).
fn request_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    let mut rel = PathBuf::new();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p if p.contains('\0') || p.contains('\\') => return None,
            p => rel.push(p),
        }
    }
    Some(rel)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One static site being served.
#[derive(Debug)]
struct Site {
    addr: SocketAddr,
    root: PathBuf,
    task: JoinHandle<()>,
}

/// The file servers of all static Spaces.
#[derive(Debug, Default)]
pub struct StaticSites {
    sites: Mutex<HashMap<SpaceId, Site>>,
}

impl StaticSites {
    /// Serves `root` (the site's folder) with `index` at `/`, replacing the
    /// Space's previous site once the new one listens. Returns its address.
    pub async fn serve(
        &self,
        space: &SpaceId,
        root: &Path,
        index: &str,
    ) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = site_router(root, index);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "a static site stopped serving");
            }
        });
        let old = self.sites.lock().unwrap_or_else(|p| p.into_inner()).insert(
            space.clone(),
            Site {
                addr,
                root: root.to_owned(),
                task,
            },
        );
        if let Some(old) = old {
            // In-flight requests to the old server finish on their own
            // connections; new ones already go to the new address.
            old.task.abort();
        }
        Ok(addr)
    }

    /// Where the Space's site listens.
    pub fn addr(&self, space: &SpaceId) -> Option<SocketAddr> {
        self.sites
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(space)
            .map(|s| s.addr)
    }

    /// The folder the Space's site serves.
    pub fn root(&self, space: &SpaceId) -> Option<PathBuf> {
        self.sites
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(space)
            .map(|s| s.root.clone())
    }

    /// Stops serving the Space.
    pub fn stop(&self, space: &SpaceId) -> bool {
        let site = self
            .sites
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(space);
        match site {
            Some(s) => {
                s.task.abort();
                true
            }
            None => false,
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::fs;
    use std::os::unix::fs::symlink;

    const SECRET: &[u8] = b"the-secret-key-bytes";

    /// A site folder with the usual pages, and beside it a secret that
    /// links written by hand try to reach.
    fn site() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secret.key"), SECRET).unwrap();
        let root = dir.path().join("site");
        fs::create_dir_all(root.join("docs")).unwrap();
        fs::write(root.join("index.html"), b"<h1>home</h1>").unwrap();
        fs::write(root.join("docs/index.html"), b"<h1>docs</h1>").unwrap();
        fs::write(root.join("404.html"), b"<h1>lost</h1>").unwrap();
        fs::write(root.join("style.css"), b"body{color:red}").unwrap();
        symlink("index.html", root.join("alias.html")).unwrap();
        (dir, root)
    }

    async fn get(root: &Path, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Response) {
        let mut req = Request::builder().uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = site_router(root, "index.html")
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        (response.status(), response)
    }

    async fn body(response: Response) -> Vec<u8> {
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn serves_index_folders_aliases_ranges_and_its_own_404_page() {
        let (_dir, root) = site();
        let (status, r) = get(&root, "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body(r).await, b"<h1>home</h1>");
        let (status, r) = get(&root, "/docs/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body(r).await, b"<h1>docs</h1>");
        let (status, r) = get(&root, "/docs?x=1", &[]).await;
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "/docs/?x=1");
        // Never a redirect to another host (`//docs/` is one).
        let (status, r) = get(&root, "//docs", &[]).await;
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "/docs/");
        let (status, r) = get(&root, "/alias.html", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body(r).await, b"<h1>home</h1>");
        let (status, r) = get(&root, "/style.css", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css");
        let (status, r) = get(&root, "/style.css", &[("range", "bytes=0-3")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(body(r).await, b"body");
        let (status, r) = get(&root, "/nothing/here.html", &[("range", "bytes=0-3")]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body(r).await, b"<h1>lost</h1>");
        let (status, _) = get(&root, "/docs/../index.html", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let req = Request::builder()
            .method(Method::HEAD)
            .uri("/index.html")
            .body(Body::empty())
            .unwrap();
        let r = site_router(&root, "index.html").oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "13");
        assert!(body(r).await.is_empty());
        let req = Request::builder()
            .method(Method::POST)
            .uri("/index.html")
            .body(Body::empty())
            .unwrap();
        let r = site_router(&root, "index.html").oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn never_serves_through_a_link_out_of_its_folder() {
        let (dir, root) = site();
        // Links a checked export would refuse, put on disk by hand.
        symlink("../secret.key", root.join("plain.key")).unwrap();
        symlink(".", root.join("r")).unwrap();
        symlink("r/r/r/r/../secret.key", root.join("chain.key")).unwrap();
        symlink(dir.path().join("secret.key"), root.join("absolute.key")).unwrap();
        symlink("..", root.join("up")).unwrap();
        symlink("up", root.join("up2")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        // The kernel does reach the secret through them.
        assert_eq!(fs::read(root.join("chain.key")).unwrap(), SECRET);
        for path in [
            "/plain.key",
            "/chain.key",
            "/absolute.key",
            "/up/secret.key",
            "/up2/secret.key",
            "/r/r/up/secret.key",
            "/%2e%2e/secret.key",
            "/up%2fsecret.key",
            "/etc/passwd",
            "/loop",
        ] {
            let (status, r) = get(&root, path, &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            let bytes = body(r).await;
            assert_eq!(bytes, b"<h1>lost</h1>", "{path}");
        }
        // A 404.html that leads outside is not served either.
        fs::remove_file(root.join("404.html")).unwrap();
        symlink("../secret.key", root.join("404.html")).unwrap();
        let (status, r) = get(&root, "/missing", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body(r).await.is_empty());
        // Nor an index that does.
        let (status, _) = get(&root, "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        let req = Request::builder().uri("/").body(Body::empty()).unwrap();
        let r = site_router(&root, "chain.key").oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
