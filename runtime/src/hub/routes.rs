//! What the proxy is told: one route per Space, rebuilt from the database
//! and what serves whenever something changes.

use spaceport_proxy::{Route, SpaceState};

use super::{Hub, Serving};
use crate::engine::ContainerEngine;
use crate::repos::RepoKind;
use crate::stage::Stage;
use crate::state::Repo;

impl<E: ContainerEngine> Hub<E> {
    /// The route of one Space now.
    pub(crate) fn route_of(&self, repo: &Repo) -> Route {
        let space = &repo.id;
        let entry = self.entry(space);
        let meta = entry.meta.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut route = Route::new(space.to_route_id(), "127.0.0.1:1");
        route.upstreams.clear();
        route.visibility = repo.visibility;
        route.disable_embedding = meta.disable_embedding;
        route.custom_headers = meta.custom_headers;
        route.health_path = meta.health_path;
        route.state = SpaceState::Stopped;
        if repo.settings.paused {
            return route;
        }
        match entry.serving() {
            Serving::Static(_) => {
                // A static Space's app is its repo's files: a protected
                // Space (app open, files private) would publish the files
                // git and the API refuse, so its site follows the repo's
                // visibility instead.
                if route.visibility == spaceport_proxy::Visibility::Protected {
                    route.visibility = spaceport_proxy::Visibility::Private;
                }
                if let Some(addr) = self.inner.statics.addr(space) {
                    route.upstreams.push(addr.to_string());
                    route.state = SpaceState::Running;
                    route.health_path = "/".into();
                }
            }
            Serving::Container => {
                if let Some(status) = self.inner.runner.status(space) {
                    if let Some(port) = status.host_port {
                        route
                            .upstreams
                            .push(format!("{}:{port}", self.inner.runner_bind_ip()));
                    }
                    let up = matches!(
                        status.stage,
                        Stage::Running | Stage::RunningBuilding | Stage::RunningAppStarting
                    );
                    if up && !route.upstreams.is_empty() {
                        route.state = SpaceState::Running;
                    }
                }
            }
            Serving::Nothing => {}
        }
        route
    }

    /// Rebuilds the proxy's table from every Space.
    pub fn refresh_routes(&self) {
        let Some(proxy) = self.proxy() else { return };
        let _one_at_a_time = self.inner.routing.lock().unwrap_or_else(|p| p.into_inner());
        let mut repos = match self.inner.store.repos(RepoKind::Space) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "failed to read the Spaces for the route table");
                return;
            }
        };
        // The hub refuses new Spaces whose host label is taken, but an older
        // database may hold two that share one. The proxy keeps the first
        // route of a contested label, so the oldest Space keeps its host
        // (as the Kubernetes controller does) and the order is the same
        // after a restart.
        repos.sort_by_cached_key(|r| (r.created_at, r.id.to_string().to_ascii_lowercase()));
        let routes: Vec<Route> = repos.iter().map(|r| self.route_of(r)).collect();
        // The proxy applies the other routes all the same and logs each
        // left-out one.
        if let Err(e) = proxy.apply_routes(routes) {
            tracing::warn!(error = %e, "some Spaces were left out of the route table");
        }
    }
}

impl<E> super::Inner<E> {
    pub(crate) fn runner_bind_ip(&self) -> &str {
        "127.0.0.1"
    }
}
