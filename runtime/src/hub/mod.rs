//! The hub of `spaceport up`: one process that keeps the repos, answers the
//! Hugging Face API and git, and builds, runs, serves, sleeps and wakes the
//! Spaces on one machine.
//!
//! [`Hub`] ties the parts together: the [`crate::state::Store`] (users,
//! tokens, Spaces and their settings, secrets, analytics), the
//! [`crate::repos::RepoStore`] (bare git repos), the [`Builder`] and the
//! [`Runner`] (images and containers), the static file servers, and the
//! proxy, whose route table the hub rewrites whenever a Space changes.
//! The modules split it by concern: [`deploy`] (push -> config -> plan ->
//! build -> run), [`routes`] (what the proxy is told), [`sleep`] (idle Spaces
//! sleep, visits wake them), [`status`] (the stage the API reports),
//! [`api`] (the HTTP API), [`git`] (git over HTTP), [`server`] (the one port).
//! [`backend`] is the seam for running the Spaces elsewhere (a cluster):
//! with a backend attached, deploys, pauses, deletes, stages and logs go to
//! it instead of the local Builder and Runner.

pub mod api;
pub mod authlimit;
pub mod backend;
pub mod deploy;
pub mod examples;
pub mod git;
pub mod metrics;
pub mod plugs;
pub mod routes;
pub mod server;
pub mod sleep;
pub mod statics;
pub mod status;
pub mod tickets;
pub mod ui;
pub mod volumes;
pub mod web;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spaceport_proxy::Proxy;
use tokio::sync::watch;

use crate::build::{BuildHandle, Builder};
use crate::engine::ContainerEngine;
use crate::hardware::FlavorCatalog;
use crate::plan::{PlanSettings, SpaceId};
use crate::repos::RepoStore;
use crate::run::Runner;
use crate::stage::Stage;
use crate::state::Store;

pub use statics::StaticSites;

/// Settings of a hub, fixed at start.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Where the database, the repos and the exported trees live.
    pub data_dir: PathBuf,
    /// Spaces are served at `<owner>-<name>.<domain>`.
    pub domain: String,
    /// The hub's URL as users reach it (`http://localhost:8080`).
    pub public_url: String,
    /// The port the hub listens on, for the Space URLs it prints.
    pub port: u16,
    /// How plans are made (base images, default flavor, ...).
    pub plan: PlanSettings,
    /// The hardware on offer.
    pub catalog: FlavorCatalog,
    /// Sleep time of Spaces whose owner set none, in seconds; -1: never.
    pub default_sleep_secs: i64,
    /// How often idle Spaces are looked for.
    pub sleep_check: Duration,
    /// Largest size of the model and dataset cache; `None`: no limit.
    pub cache_max_bytes: Option<u64>,
    /// Where models and datasets that are not on this hub come from
    /// (an HF-compatible endpoint and its token); `None`: nowhere.
    pub models_upstream: Option<(String, Option<String>)>,
}

impl HubConfig {
    /// Whether the hub is served over HTTPS (its public URL says so).
    pub fn secure(&self) -> bool {
        self.public_url.starts_with("https:")
    }

    /// The URL of a Space's app: `http://owner-name.domain:port/`.
    pub fn space_url(&self, space: &SpaceId) -> String {
        let scheme = if self.public_url.starts_with("https:") {
            "https"
        } else {
            "http"
        };
        let port = match (scheme, self.port) {
            ("http", 80) | ("https", 443) => String::new(),
            (_, p) => format!(":{p}"),
        };
        format!("{scheme}://{}{port}/", space.host(&self.domain))
    }

    /// The path-routed URL of a Space's app, for clients that cannot
    /// resolve `*.localhost` (glibc resolvers: Python, many tools).
    pub fn space_path_url(&self, space: &SpaceId) -> String {
        format!(
            "{}/apps/{}/{}/",
            self.public_url.trim_end_matches('/'),
            space.owner(),
            space.name()
        )
    }

    /// The Space's page (and git URL) on the hub.
    pub fn space_page(&self, space: &SpaceId) -> String {
        format!("{}/spaces/{space}", self.public_url.trim_end_matches('/'))
    }
}

/// What the hub keeps in memory about one Space, beside the database.
#[derive(Debug)]
pub(crate) struct SpaceEntry {
    /// A stage the hub decided (config error, no app file, ...); `None`
    /// means: ask the runner, or the static server.
    pub(crate) phase: Mutex<Option<(Stage, Option<String>)>>,
    /// The latest build.
    pub(crate) build: Mutex<Option<BuildHandle>>,
    /// Deploys of one Space run one at a time.
    pub(crate) deploying: tokio::sync::Mutex<()>,
    /// How the Space serves now.
    pub(crate) serving: Mutex<Serving>,
    /// Whether a task follows the runner's status of this Space.
    pub(crate) followed: Mutex<bool>,
    /// What the deployed README says about serving (headers, health path).
    pub(crate) meta: Mutex<RouteMeta>,
    /// Bumped on every change the API or the UI may want to see.
    pub(crate) changed: watch::Sender<u64>,
}

/// What the proxy needs from a Space's deployed README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteMeta {
    pub(crate) disable_embedding: bool,
    pub(crate) custom_headers: std::collections::BTreeMap<String, String>,
    pub(crate) health_path: String,
}

impl Default for RouteMeta {
    fn default() -> Self {
        RouteMeta {
            disable_embedding: false,
            custom_headers: Default::default(),
            health_path: "/".into(),
        }
    }
}

/// How a Space serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Serving {
    /// Not at all.
    #[default]
    Nothing,
    /// From its files, by the hub (commit served).
    Static(String),
    /// From a container the runner keeps.
    Container,
}

impl SpaceEntry {
    fn new() -> Self {
        SpaceEntry {
            phase: Mutex::new(None),
            build: Mutex::new(None),
            deploying: tokio::sync::Mutex::new(()),
            serving: Mutex::new(Serving::Nothing),
            followed: Mutex::new(false),
            meta: Mutex::new(RouteMeta::default()),
            changed: watch::channel(0).0,
        }
    }

    pub(crate) fn set_phase(&self, phase: Option<(Stage, Option<String>)>) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
        self.bump();
    }

    pub(crate) fn phase(&self) -> Option<(Stage, Option<String>)> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn serving(&self) -> Serving {
        self.serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_serving(&self, s: Serving) {
        *self.serving.lock().unwrap_or_else(|p| p.into_inner()) = s;
        self.bump();
    }

    /// Cancels the Space's build if one is running (a finished build
    /// ignores it).
    pub(crate) fn cancel_build(&self, reason: &str) {
        if let Some(b) = self
            .build
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            b.cancel(reason);
        }
    }

    pub(crate) fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The single-node platform. Cheap to clone.
#[derive(Debug)]
pub struct Hub<E> {
    pub(crate) inner: Arc<Inner<E>>,
}

impl<E> Clone for Hub<E> {
    fn clone(&self) -> Self {
        Hub {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Inner<E> {
    pub(crate) config: HubConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) repos: RepoStore,
    pub(crate) builder: Builder<E>,
    pub(crate) runner: Runner<E>,
    pub(crate) statics: StaticSites,
    pub(crate) proxy: Mutex<Option<Proxy>>,
    pub(crate) spaces: Mutex<HashMap<SpaceId, Arc<SpaceEntry>>>,
    /// Serializes route table rewrites so that an older snapshot never
    /// lands after a newer one.
    pub(crate) routing: Mutex<()>,
    /// The hub's gauges, once set.
    pub(crate) metrics: std::sync::OnceLock<metrics::HubMetrics>,
    /// The node's model and dataset cache (`<data>/cache/hub`).
    pub(crate) cache: crate::hubcache::HubCache,
    /// The cache snapshots each Space mounts, and what its last fill did.
    pub(crate) mounts: Mutex<HashMap<SpaceId, volumes::Mounted>>,
    /// Where the Spaces run when not on this machine.
    pub(crate) backend: std::sync::OnceLock<Arc<dyn backend::SpaceBackend>>,
    /// Failed authentications per client address.
    pub(crate) auth_limiter: authlimit::AuthLimiter,
}

impl<E: ContainerEngine> Hub<E> {
    /// A hub over its parts. Call [`Hub::attach_proxy`] before serving.
    pub fn new(
        config: HubConfig,
        store: Arc<Store>,
        repos: RepoStore,
        builder: Builder<E>,
        runner: Runner<E>,
    ) -> Self {
        let cache = crate::hubcache::HubCache::new(config.data_dir.join("cache").join("hub"));
        Hub {
            inner: Arc::new(Inner {
                cache,
                mounts: Mutex::new(HashMap::new()),
                config,
                store,
                repos,
                builder,
                runner,
                statics: StaticSites::default(),
                proxy: Mutex::new(None),
                spaces: Mutex::new(HashMap::new()),
                routing: Mutex::new(()),
                metrics: std::sync::OnceLock::new(),
                backend: std::sync::OnceLock::new(),
                auth_limiter: authlimit::AuthLimiter::default(),
            }),
        }
    }

    /// Gives the hub the proxy whose routes it keeps.
    pub fn attach_proxy(&self, proxy: Proxy) {
        *self.inner.proxy.lock().unwrap_or_else(|p| p.into_inner()) = Some(proxy);
        self.refresh_routes();
    }

    /// Gives the hub its gauges (shown on `/metrics` with the proxy's).
    pub fn attach_metrics(&self, metrics: metrics::HubMetrics) {
        let _ = self.inner.metrics.set(metrics);
    }

    /// The hub's and the proxy's metrics, in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let mut text = self
            .inner
            .metrics
            .get()
            .map(|m| m.render(self))
            .unwrap_or_default();
        text.push_str(&self.inner.cache.metrics_text());
        text.push_str(&self.mounts_metrics_text());
        if let Some(p) = self.proxy() {
            text.push_str(&p.metrics_text());
        }
        text
    }

    pub(crate) fn proxy(&self) -> Option<Proxy> {
        self.inner
            .proxy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The failed-authentication counts per client address.
    pub fn auth_limiter(&self) -> &authlimit::AuthLimiter {
        &self.inner.auth_limiter
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    pub fn repos(&self) -> &RepoStore {
        &self.inner.repos
    }

    pub fn runner(&self) -> &Runner<E> {
        &self.inner.runner
    }

    pub(crate) fn entry(&self, space: &SpaceId) -> Arc<SpaceEntry> {
        self.inner
            .spaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(space.clone())
            .or_insert_with(|| Arc::new(SpaceEntry::new()))
            .clone()
    }

    pub(crate) fn forget(&self, space: &SpaceId) {
        self.inner
            .spaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(space);
    }

    /// A Space's record, or why there is none.
    pub(crate) fn space_repo(&self, space: &SpaceId) -> Result<crate::state::Repo, String> {
        self.inner
            .store
            .repo(crate::repos::RepoKind::Space, space)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no Space {space}"))
    }

    /// Follows changes of a Space's stage (for SSE and tests).
    pub fn changes(&self, space: &SpaceId) -> watch::Receiver<u64> {
        self.entry(space).changed.subscribe()
    }
}
