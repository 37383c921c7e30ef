//! Static Spaces need no container: each is served from its exported tree
//! by a small file server on a loopback port, and the proxy forwards to it
//! like to any other upstream, so metering, embedding and access rules are
//! the same as for containers.

use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::task::JoinHandle;
use tower_http::services::{ServeDir, ServeFile};

use crate::plan::SpaceId;

/// The file server of one site: `index` at `/`, the folder's files below
/// it, and the site's own 404.html (with status 404) for missing files.
/// `spaceport serve-static` serves the same router on its own.
pub fn site_router(root: &Path, index: &str) -> Router {
    let dir = ServeDir::new(root)
        .append_index_html_on_directories(true)
        .not_found_service(ServeFile::new(root.join("404.html")));
    Router::new()
        .route_service("/", ServeFile::new(root.join(index)))
        .fallback_service(dir)
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
