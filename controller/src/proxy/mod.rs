//! `spaceport-controller proxy`: the spaceport proxy, fed from the cluster.
//!
//! The data plane is the `spaceport-proxy` crate; this module plugs it into
//! Kubernetes through the proxy's four seams: [`watch::KubeRoutes`] (routes
//! from watched Spaces and EndpointSlices, folded by the pure
//! [`routes::fold`]), [`waker::SpaceWaker`] (a wake is the Space's wake
//! annotation), [`activity::ActivitySink`] (visits move the Space's
//! `status.lastActivity`) and [`access::HubAccess`] (tokens for private Spaces
//! are checked against the hub). A replica keeps nothing the others need:
//! everything it learns comes from the API server or the hub, and everything
//! it says goes to the API server, so any number run side by side.
//!
//! This module must not decide when a Space sleeps or wakes: the controller's
//! reconcile does, from what the proxies write.

pub mod access;
pub mod activity;
pub mod routes;
pub mod waker;
pub mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use k8s_openapi::jiff::{Timestamp, Unit};
use kube::Client;
use spaceport_proxy::{Proxy, ProxyConfig, SpaceId};

use self::routes::SpaceView;

/// The field manager the proxies write under.
pub const FIELD_MANAGER: &str = "spaceport-proxy";

/// A source of the current time, replaceable in tests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock, to the second (the form Space timestamps take).
pub fn system_clock() -> Clock {
    Arc::new(|| {
        Timestamp::now()
            .round(Unit::Second)
            .unwrap_or_else(|_| Timestamp::now())
    })
}

/// What the route source last saw of each Space, shared with the waker and
/// the activity sink so they decide from the same picture as the routes.
#[derive(Debug, Clone, Default)]
pub struct Directory(Arc<RwLock<Arc<BTreeMap<SpaceId, SpaceView>>>>);

impl Directory {
    /// Replaces the whole picture.
    pub fn replace(&self, spaces: BTreeMap<SpaceId, SpaceView>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(spaces);
    }

    /// What is known of one Space.
    pub fn get(&self, space: &SpaceId) -> Option<SpaceView> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(space)
            .cloned()
    }
}

/// The proxy's settings, from the command line.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Where visitors connect.
    pub listen: SocketAddr,
    /// Where `/metrics` and `/healthz` are served.
    pub metrics_listen: SocketAddr,
    /// Spaces are served at `<namespace>-<name>.<domain>`; without it, only
    /// at the path `/apps/<namespace>/<name>/`.
    pub domain: Option<String>,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// The hub that checks tokens for private Spaces.
    pub hub_url: Option<String>,
    /// Trust X-Forwarded-* and Forwarded from the client (behind an Ingress).
    pub trust_forwarded: bool,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("invalid --namespace {0:?}: expected a DNS label such as team-a")]
    Namespace(String),
    #[error(transparent)]
    Hub(#[from] access::HubUrlError),
    #[error("invalid proxy setting: {0}")]
    Proxy(#[from] spaceport_proxy::ConfigError),
}

impl ProxyOptions {
    /// Checks every setting and makes the proxy's own configuration, before
    /// any port is bound.
    pub fn proxy_config(&self) -> Result<ProxyConfig, OptionsError> {
        for ns in &self.namespaces {
            let ok = !ns.is_empty()
                && ns.len() <= 63
                && ns
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !ns.starts_with('-')
                && !ns.ends_with('-');
            if !ok {
                return Err(OptionsError::Namespace(ns.clone()));
            }
        }
        let hub_origin = match &self.hub_url {
            Some(url) => Some(access::HubUrl::parse(url)?.origin().to_owned()),
            None => None,
        };
        let config = ProxyConfig {
            domain: self.domain.clone().filter(|d| !d.is_empty()),
            hub_origin,
            trust_forwarded: self.trust_forwarded,
            ..ProxyConfig::default()
        };
        config.validate()?;
        Ok(config)
    }

    /// The namespaces to watch, without repeats.
    pub fn watched_namespaces(&self) -> Vec<String> {
        let mut ns = self.namespaces.clone();
        ns.sort();
        ns.dedup();
        ns
    }
}

/// Builds the proxy with its cluster plugs and starts feeding it routes.
/// Serving is the caller's: see [`Proxy::serve`] and [`Proxy::serve_admin`].
pub fn build(
    client: Client,
    options: &ProxyOptions,
    config: ProxyConfig,
) -> Result<Proxy, OptionsError> {
    let directory = Directory::default();
    let clock = system_clock();
    let hub = options
        .hub_url
        .as_deref()
        .map(access::HubUrl::parse)
        .transpose()?;
    if hub.is_none() {
        tracing::warn!("no --hub-url: private Spaces answer 404 to everyone");
    }
    let proxy = Proxy::builder(config)
        .access(access::HubAccess::new(hub).map_err(OptionsError::Hub)?)
        .waker(waker::SpaceWaker::new(
            client.clone(),
            directory.clone(),
            clock.clone(),
        ))
        .sink(activity::ActivitySink::new(
            client.clone(),
            directory.clone(),
            clock,
        ))
        .build()?;
    let source = watch::KubeRoutes::start(client, &options.watched_namespaces(), directory);
    proxy.drive(source);
    Ok(proxy)
}
