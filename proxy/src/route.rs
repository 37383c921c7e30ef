//! Routes: which Space a request is for, and where that Space runs.
//!
//! A [`RouteTable`] is an immutable, compiled snapshot of every [`Route`]: a
//! map from host label (`<owner>-<name>`) and from path prefix
//! (`/apps/<owner>/<name>/`) to the Space's live state. Tables are built off the
//! request path and swapped in whole by [`crate::Proxy::apply_routes`], so a
//! request sees either the old or the new table, never a mix, and open
//! connections are untouched. [`RouteSource`] is the seam through which the
//! runtime (in-process updates), the routes file, and a Kubernetes watcher feed
//! routes. This module must not do I/O or look at anything but host and path:
//! access, waking and forwarding decisions live elsewhere.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use http::uri::Authority;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::embed::SpaceHeaders;
use crate::space::SpaceRuntime;

/// A boxed, sendable future: the return type of the plug-in traits, so they
/// stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Errors found while building a route table.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    /// An owner or Space name is empty or has characters outside `[A-Za-z0-9._-]`.
    #[error(
        "invalid space id {0:?}: owner and name must be non-empty and use only letters, digits, '-', '_' and '.'"
    )]
    InvalidSpaceId(String),
    /// An upstream is not a `host:port` authority.
    #[error("invalid upstream {upstream:?} for space {space}: expected host:port")]
    InvalidUpstream {
        /// The Space.
        space: SpaceId,
        /// The rejected text.
        upstream: String,
    },
    /// Two Spaces map to the same host label (for example `a-b/c` and `a/b-c`).
    #[error("spaces {first} and {second} both map to host label {label:?}")]
    HostCollision {
        /// The label both would use.
        label: String,
        /// The first Space.
        first: SpaceId,
        /// The second Space.
        second: SpaceId,
    },
    /// The same Space appears twice.
    #[error("space {0} is listed twice")]
    Duplicate(SpaceId),
    /// A custom header is not in the allowlist or its value is invalid.
    #[error("space {space}: {reason}")]
    CustomHeader {
        /// The Space.
        space: SpaceId,
        /// Why the header was refused.
        reason: String,
    },
    /// A running Space has no upstream.
    #[error("space {0} is running but has no upstream")]
    NoUpstream(SpaceId),
    /// The route source itself failed (an unreadable or unparsable file).
    #[error("failed to read routes: {0}")]
    Source(String),
    /// The health path does not start with '/'.
    #[error("space {0}: health_path must start with '/'")]
    HealthPath(SpaceId),
}

/// The routes a table update left out; the rest of the update was applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("failed to route {} of the spaces: {}", rejected.len(), list(rejected))]
pub struct RoutesRejected {
    /// Why each left-out route was left out, in the order given.
    pub rejected: Vec<RouteError>,
}

fn list(errors: &[RouteError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `<owner>/<name>`: the identity of a Space.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpaceId {
    owner: String,
    name: String,
}

impl SpaceId {
    /// Builds an id, checking both parts.
    pub fn new(owner: &str, name: &str) -> Result<Self, RouteError> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 96
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if ok(owner) && ok(name) {
            Ok(Self {
                owner: owner.to_owned(),
                name: name.to_owned(),
            })
        } else {
            Err(RouteError::InvalidSpaceId(format!("{owner}/{name}")))
        }
    }

    /// The owner (user or organisation).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The Space's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The DNS label of the Space's own host: `<owner>-<name>`, lowercased,
    /// with `_` and `.` turned into `-`.
    pub fn host_label(&self) -> String {
        let mut label = String::with_capacity(self.owner.len() + self.name.len() + 1);
        for part in [&self.owner, "-", &self.name] {
            label.extend(part.chars().map(|c| match c {
                '_' | '.' => '-',
                c => c.to_ascii_lowercase(),
            }));
        }
        label
    }
}

impl fmt::Display for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl fmt::Debug for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpaceId({self})")
    }
}

impl FromStr for SpaceId {
    type Err = RouteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((owner, name)) => Self::new(owner, name),
            None => Err(RouteError::InvalidSpaceId(s.to_owned())),
        }
    }
}

impl TryFrom<String> for SpaceId {
    type Error = RouteError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SpaceId> for String {
    fn from(id: SpaceId) -> Self {
        id.to_string()
    }
}

/// Who may open a Space's app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone.
    #[default]
    Public,
    /// Anyone may use the app; only the repo is private (the hub enforces that).
    Protected,
    /// Only holders of a token the [`crate::AccessChecker`] accepts; everyone
    /// else gets 404, so the Space's existence is not revealed.
    Private,
}

/// Whether the Space's upstream is up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpaceState {
    /// Serving: forward at once.
    #[default]
    Running,
    /// Asleep: hold requests and ask the [`crate::Waker`] to start it.
    Stopped,
}

fn default_health_path() -> String {
    "/".to_owned()
}

/// One Space as the proxy sees it. This is also the schema of an entry in the
/// routes file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// `<owner>/<name>`.
    pub space: SpaceId,
    /// `host:port` of each replica; requests are balanced across them.
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// Who may open the app.
    #[serde(default)]
    pub visibility: Visibility,
    /// Whether the upstream is running or asleep.
    #[serde(default)]
    pub state: SpaceState,
    /// Forbid embedding the app in other sites (README `disable_embedding`).
    #[serde(default)]
    pub disable_embedding: bool,
    /// README `custom_headers`: only the cross-origin isolation headers are accepted.
    #[serde(default)]
    pub custom_headers: BTreeMap<String, String>,
    /// Path probed after a wake; any answer below 500 means the app is up.
    #[serde(default = "default_health_path")]
    pub health_path: String,
}

impl Route {
    /// A running public route with one upstream: the common case, for tests and callers.
    pub fn new(space: SpaceId, upstream: impl Into<String>) -> Self {
        Self {
            space,
            upstreams: vec![upstream.into()],
            visibility: Visibility::Public,
            state: SpaceState::Running,
            disable_embedding: false,
            custom_headers: BTreeMap::new(),
            health_path: default_health_path(),
        }
    }

    /// Checks the route without building a table.
    pub fn validate(&self) -> Result<(), RouteError> {
        self.parsed_upstreams()?;
        SpaceHeaders::compile(self, None)?;
        if !self.health_path.starts_with('/') {
            return Err(RouteError::HealthPath(self.space.clone()));
        }
        Ok(())
    }

    pub(crate) fn parsed_upstreams(&self) -> Result<Vec<Authority>, RouteError> {
        if self.upstreams.is_empty() && self.state == SpaceState::Running {
            return Err(RouteError::NoUpstream(self.space.clone()));
        }
        self.upstreams
            .iter()
            .map(|u| {
                let bad = || RouteError::InvalidUpstream {
                    space: self.space.clone(),
                    upstream: u.clone(),
                };
                let a: Authority = u.parse().map_err(|_| bad())?;
                if a.port_u16().is_none() || a.as_str().contains('@') {
                    return Err(bad());
                }
                Ok(a)
            })
            .collect()
    }
}

/// A Space in a compiled table: its route, its precomputed headers and its
/// long-lived state (balancer, meter, idle tracker, wake slot).
#[derive(Debug)]
pub struct CompiledRoute {
    pub(crate) route: Route,
    pub(crate) headers: SpaceHeaders,
    pub(crate) runtime: Arc<SpaceRuntime>,
}

impl CompiledRoute {
    /// The route this entry was built from.
    pub fn route(&self) -> &Route {
        &self.route
    }
}

/// How a request maps onto the table.
#[derive(Debug)]
pub enum Resolution<'a> {
    /// The host is the Space's own host; the path goes to the upstream as is.
    Host(&'a Arc<CompiledRoute>),
    /// The path starts with the Space's prefix, which is `&path[..prefix_len]`
    /// (no trailing slash) and is stripped before forwarding.
    Prefix {
        /// The Space.
        route: &'a Arc<CompiledRoute>,
        /// Length of the prefix in the request path.
        prefix_len: usize,
    },
    /// `/apps/<owner>/<name>` without the trailing slash: redirect so that
    /// relative links in the app resolve under the prefix.
    AddSlash,
    /// No Space here.
    NotFound,
    /// A Space host (`*.<domain>`) that names no Space; never falls back to
    /// path routing, so one Space's host cannot reach another Space.
    UnknownSpaceHost,
}

/// An immutable snapshot of all routes, ready to match requests.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_host: HashMap<String, Arc<CompiledRoute>>,
    by_path: HashMap<(String, String), Arc<CompiledRoute>>,
    /// `.<domain>`, lowercased, when host routing is on.
    domain_suffix: Option<String>,
    path_prefix: String,
}

impl RouteTable {
    /// Compiles `routes` into a table, leaving out each route that cannot be
    /// served (invalid, listed twice, or with a host label another route
    /// already has) and returning why next to the table. The first route in
    /// `routes` keeps a contested host label, so callers order routes by the
    /// rule they want (the hub and the Kubernetes watcher put older Spaces
    /// first). One bad route must never keep the others from being served or
    /// from changing, so nothing here fails the whole table.
    pub(crate) fn build(
        routes: Vec<Route>,
        domain: Option<&str>,
        path_prefix: &str,
        hub_origin: Option<&str>,
        mut runtime_for: impl FnMut(&Route, &[Authority]) -> Arc<SpaceRuntime>,
    ) -> (Self, Vec<RouteError>) {
        let mut by_host: HashMap<String, Arc<CompiledRoute>> = HashMap::with_capacity(routes.len());
        let mut by_path = HashMap::with_capacity(routes.len());
        let mut rejected = Vec::new();
        for route in routes {
            let checked = route.validate().and_then(|()| {
                Ok((
                    route.parsed_upstreams()?,
                    SpaceHeaders::compile(&route, hub_origin)?,
                ))
            });
            let (upstreams, headers) = match checked {
                Ok(parts) => parts,
                Err(e) => {
                    rejected.push(e);
                    continue;
                }
            };
            let label = route.space.host_label();
            if let Some(prev) = by_host.get(&label) {
                rejected.push(if prev.route.space == route.space {
                    RouteError::Duplicate(route.space)
                } else {
                    RouteError::HostCollision {
                        label,
                        first: prev.route.space.clone(),
                        second: route.space,
                    }
                });
                continue;
            }
            let runtime = runtime_for(&route, &upstreams);
            let key = (
                route.space.owner.to_ascii_lowercase(),
                route.space.name.to_ascii_lowercase(),
            );
            let compiled = Arc::new(CompiledRoute {
                route,
                headers,
                runtime,
            });
            by_path.insert(key, compiled.clone());
            by_host.insert(label, compiled);
        }
        let table = Self {
            by_host,
            by_path,
            domain_suffix: domain.map(|d| format!(".{}", d.trim_matches('.').to_ascii_lowercase())),
            path_prefix: path_prefix.trim_end_matches('/').to_owned(),
        };
        (table, rejected)
    }

    /// Builds a table with throwaway per-Space state, outside any proxy, and
    /// lists the routes left out of it: for reporting every problem of a
    /// routes file at once.
    pub fn compile(
        routes: Vec<Route>,
        domain: Option<&str>,
        path_prefix: &str,
    ) -> (Self, Vec<RouteError>) {
        Self::build(routes, domain, path_prefix, None, |r, _| {
            Arc::new(SpaceRuntime::detached(r.space.clone()))
        })
    }

    /// Like [`RouteTable::compile`], but fails on the first route that would
    /// be left out: for checking a routes file and for fuzzing the matcher.
    pub fn standalone(
        routes: Vec<Route>,
        domain: Option<&str>,
        path_prefix: &str,
    ) -> Result<Self, RouteError> {
        let (table, rejected) = Self::compile(routes, domain, path_prefix);
        match rejected.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(table),
        }
    }

    /// Number of Spaces.
    pub fn len(&self) -> usize {
        self.by_host.len()
    }

    /// Whether the table has no Space.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }

    /// Every compiled entry.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CompiledRoute>> {
        self.by_host.values()
    }

    /// Finds the entry for a Space.
    pub fn get(&self, space: &SpaceId) -> Option<&Arc<CompiledRoute>> {
        self.by_host
            .get(&space.host_label())
            .filter(|c| &c.route.space == space)
    }

    /// Whether `host` (port stripped, any case) is a Space host under the domain.
    pub fn is_space_host(&self, host: &str) -> bool {
        self.space_label(host).is_some()
    }

    fn space_label<'h>(&self, host: &'h str) -> Option<&'h str> {
        let suffix = self.domain_suffix.as_deref()?;
        if host.len() <= suffix.len() {
            return None;
        }
        // Hosts from the wire are ASCII, but this is a public function: never
        // split inside a multi-byte character (found by fuzzing).
        let (label, rest) = host.split_at_checked(host.len() - suffix.len())?;
        if !rest.eq_ignore_ascii_case(suffix) || label.is_empty() || label.contains('.') {
            return None;
        }
        Some(label)
    }

    /// Maps a host (without port) and a path to a Space. Pure and cheap.
    pub fn resolve<'a>(&'a self, host: &str, path: &str) -> Resolution<'a> {
        if let Some(label) = self.space_label(host) {
            let found = if label.bytes().any(|b| b.is_ascii_uppercase()) {
                self.by_host.get(&label.to_ascii_lowercase())
            } else {
                self.by_host.get(label)
            };
            return match found {
                Some(route) => Resolution::Host(route),
                None => Resolution::UnknownSpaceHost,
            };
        }
        let Some(rest) = path.strip_prefix(self.path_prefix.as_str()) else {
            return Resolution::NotFound;
        };
        let Some(rest) = rest.strip_prefix('/') else {
            return Resolution::NotFound;
        };
        let mut parts = rest.splitn(3, '/');
        let (Some(owner), Some(name)) = (parts.next(), parts.next()) else {
            return Resolution::NotFound;
        };
        let key = (owner.to_ascii_lowercase(), name.to_ascii_lowercase());
        let Some(route) = self.by_path.get(&key) else {
            return Resolution::NotFound;
        };
        match parts.next() {
            None => Resolution::AddSlash,
            Some(_) => Resolution::Prefix {
                route,
                prefix_len: self.path_prefix.len() + 2 + owner.len() + name.len(),
            },
        }
    }
}

/// Something that knows the routes and tells the proxy when they change.
///
/// The proxy calls [`RouteSource::next_snapshot`] in a loop on its own task:
/// the first call should return the current routes at once, later calls wait
/// for a change. Each snapshot is the complete set; it replaces the table
/// atomically, leaving out (and logging and counting) each route that cannot
/// be served. A snapshot that is an error keeps the old table. `None` ends the loop and the last table stays. Implementations: the
/// routes file ([`crate::config::FileRoutes`]), in-process updates
/// ([`ChannelRoutes`], which the runtime drives), and a Kubernetes watcher
/// that folds Space and EndpointSlice events into snapshots.
pub trait RouteSource: Send + 'static {
    /// Waits for the next complete set of routes.
    fn next_snapshot(&mut self) -> BoxFuture<'_, Option<Result<Vec<Route>, RouteError>>>;
}

/// In-process route updates: the runtime keeps the [`RouteUpdates`] half and
/// edits routes one at a time; the proxy drives the [`ChannelRoutes`] half.
/// Bursts of edits collapse into one table swap.
#[derive(Debug)]
pub struct ChannelRoutes {
    rx: watch::Receiver<Arc<BTreeMap<SpaceId, Route>>>,
    first: bool,
}

/// The sending half of [`ChannelRoutes`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct RouteUpdates {
    tx: Arc<watch::Sender<Arc<BTreeMap<SpaceId, Route>>>>,
}

impl ChannelRoutes {
    /// A source starting from `initial`, and its update handle.
    pub fn new(initial: Vec<Route>) -> (RouteUpdates, ChannelRoutes) {
        let map: BTreeMap<_, _> = initial.into_iter().map(|r| (r.space.clone(), r)).collect();
        let (tx, rx) = watch::channel(Arc::new(map));
        (
            RouteUpdates { tx: Arc::new(tx) },
            ChannelRoutes { rx, first: true },
        )
    }
}

impl RouteSource for ChannelRoutes {
    fn next_snapshot(&mut self) -> BoxFuture<'_, Option<Result<Vec<Route>, RouteError>>> {
        Box::pin(async move {
            if !std::mem::take(&mut self.first) {
                self.rx.changed().await.ok()?;
            }
            let snapshot = self.rx.borrow_and_update().clone();
            Some(Ok(snapshot.values().cloned().collect()))
        })
    }
}

impl RouteUpdates {
    /// Adds or replaces one Space's route.
    pub fn upsert(&self, route: Route) {
        self.tx.send_modify(|m| {
            Arc::make_mut(m).insert(route.space.clone(), route);
        });
    }

    /// Removes a Space.
    pub fn remove(&self, space: &SpaceId) {
        self.tx.send_modify(|m| {
            Arc::make_mut(m).remove(space);
        });
    }

    /// Replaces every route.
    pub fn replace(&self, routes: Vec<Route>) {
        let map = routes.into_iter().map(|r| (r.space.clone(), r)).collect();
        self.tx.send_replace(Arc::new(map));
    }

    /// Marks a Space running or stopped, keeping the rest of its route.
    pub fn set_state(&self, space: &SpaceId, state: SpaceState) {
        self.tx
            .send_if_modified(|m| match Arc::make_mut(m).get_mut(space) {
                Some(r) if r.state != state => {
                    r.state = state;
                    true
                }
                _ => false,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: Vec<Route>) -> RouteTable {
        RouteTable::standalone(routes, Some("spaces.test"), "/apps").unwrap()
    }

    fn id(s: &str) -> SpaceId {
        s.parse().unwrap()
    }

    #[test]
    fn host_label_lowercases_and_maps_underscore_and_dot_to_dash() {
        assert_eq!(id("Alice_B/My.App").host_label(), "alice-b-my-app");
    }

    #[test]
    fn resolves_space_host_in_any_case() {
        let t = table(vec![Route::new(id("alice/demo"), "127.0.0.1:1")]);
        assert!(matches!(
            t.resolve("alice-demo.spaces.test", "/"),
            Resolution::Host(_)
        ));
        assert!(matches!(
            t.resolve("ALICE-Demo.Spaces.Test", "/x"),
            Resolution::Host(_)
        ));
        assert!(matches!(
            t.resolve("bob-demo.spaces.test", "/"),
            Resolution::UnknownSpaceHost
        ));
        assert!(matches!(
            t.resolve("alice-demo.spaces.test.evil", "/"),
            Resolution::NotFound
        ));
        assert!(matches!(
            t.resolve("x.alice-demo.spaces.test", "/"),
            Resolution::NotFound
        ));
    }

    #[test]
    fn non_ascii_hosts_do_not_panic() {
        let t = table(vec![Route::new(id("alice/demo"), "127.0.0.1:1")]);
        // The suffix boundary falls inside the 3-byte character.
        assert!(matches!(
            t.resolve("\u{fffd}spaces.test", "/"),
            Resolution::NotFound
        ));
        assert!(matches!(
            t.resolve("\u{fffd}.spaces.test", "/"),
            Resolution::UnknownSpaceHost
        ));
    }

    #[test]
    fn space_host_never_falls_back_to_path_routing() {
        let t = table(vec![
            Route::new(id("alice/demo"), "127.0.0.1:1"),
            Route::new(id("bob/secret"), "127.0.0.1:2"),
        ]);
        match t.resolve("alice-demo.spaces.test", "/apps/bob/secret/") {
            Resolution::Host(r) => assert_eq!(r.route.space, id("alice/demo")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resolves_path_prefix_and_asks_for_trailing_slash() {
        let t = table(vec![Route::new(id("alice/demo"), "127.0.0.1:1")]);
        match t.resolve("hub.example", "/apps/Alice/demo/queue/join?x") {
            Resolution::Prefix { route, prefix_len } => {
                assert_eq!(route.route.space, id("alice/demo"));
                assert_eq!(prefix_len, "/apps/Alice/demo".len());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.resolve("hub.example", "/apps/alice/demo"),
            Resolution::AddSlash
        ));
        assert!(matches!(
            t.resolve("hub.example", "/apps/alice"),
            Resolution::NotFound
        ));
        assert!(matches!(
            t.resolve("hub.example", "/apps/alice/other/"),
            Resolution::NotFound
        ));
        assert!(matches!(
            t.resolve("hub.example", "/appsx/alice/demo/"),
            Resolution::NotFound
        ));
    }

    #[test]
    fn a_colliding_host_label_leaves_out_the_later_route_and_keeps_the_rest() {
        let (t, rejected) = RouteTable::compile(
            vec![
                Route::new(id("alice/my-app"), "127.0.0.1:1"),
                Route::new(id("alice-my/app"), "127.0.0.1:2"),
                Route::new(id("Alice/My_App"), "127.0.0.1:3"),
                Route::new(id("bob/demo"), "127.0.0.1:4"),
            ],
            Some("spaces.test"),
            "/apps",
        );
        assert_eq!(t.len(), 2);
        match t.resolve("alice-my-app.spaces.test", "/") {
            Resolution::Host(r) => assert_eq!(r.route.space, id("alice/my-app")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.resolve("hub.test", "/apps/alice-my/app/"),
            Resolution::NotFound
        ));
        assert!(t.get(&id("bob/demo")).is_some());
        assert_eq!(rejected.len(), 2);
        for (e, second) in rejected.iter().zip(["alice-my/app", "Alice/My_App"]) {
            assert_eq!(
                e,
                &RouteError::HostCollision {
                    label: "alice-my-app".into(),
                    first: id("alice/my-app"),
                    second: id(second),
                }
            );
        }
        let err = RouteTable::standalone(
            vec![
                Route::new(id("a-b/c"), "127.0.0.1:1"),
                Route::new(id("a/b-c"), "127.0.0.1:2"),
            ],
            None,
            "/apps",
        )
        .unwrap_err();
        assert!(matches!(err, RouteError::HostCollision { .. }), "{err}");
    }

    #[test]
    fn invalid_and_duplicate_routes_are_left_out_and_the_rest_is_kept() {
        let mut bad_header = Route::new(id("carol/headers"), "127.0.0.1:3");
        bad_header
            .custom_headers
            .insert("set-cookie".into(), "x=1".into());
        let mut no_upstream = Route::new(id("dave/none"), "127.0.0.1:4");
        no_upstream.upstreams.clear();
        let (t, rejected) = RouteTable::compile(
            vec![
                Route::new(id("alice/bad"), "no-port"),
                Route::new(id("alice/good"), "127.0.0.1:1"),
                bad_header,
                no_upstream,
                Route::new(id("alice/good"), "127.0.0.1:2"),
                Route::new(id("erin/fine"), "127.0.0.1:5"),
            ],
            Some("spaces.test"),
            "/apps",
        );
        let mut kept: Vec<String> = t.iter().map(|c| c.route.space.to_string()).collect();
        kept.sort();
        assert_eq!(kept, ["alice/good", "erin/fine"]);
        assert_eq!(
            t.get(&id("alice/good")).unwrap().route.upstreams,
            ["127.0.0.1:1"],
            "the first of a duplicate is kept"
        );
        assert_eq!(rejected.len(), 4, "{rejected:?}");
        assert!(matches!(rejected[0], RouteError::InvalidUpstream { .. }));
        assert!(matches!(rejected[1], RouteError::CustomHeader { .. }));
        assert_eq!(rejected[2], RouteError::NoUpstream(id("dave/none")));
        assert_eq!(rejected[3], RouteError::Duplicate(id("alice/good")));
    }

    #[test]
    fn invalid_ids_and_upstreams_are_refused() {
        assert!("alice".parse::<SpaceId>().is_err());
        assert!("alice/..".parse::<SpaceId>().is_err());
        assert!("al ice/x".parse::<SpaceId>().is_err());
        assert!(Route::new(id("a/b"), "no-port").validate().is_err());
        assert!(Route::new(id("a/b"), "user@host:1").validate().is_err());
        assert!(Route::new(id("a/b"), "127.0.0.1:80").validate().is_ok());
    }

    #[tokio::test]
    async fn channel_routes_collapse_updates_into_snapshots() {
        let (tx, mut src) = ChannelRoutes::new(vec![Route::new(id("a/b"), "127.0.0.1:1")]);
        assert_eq!(src.next_snapshot().await.unwrap().unwrap().len(), 1);
        tx.upsert(Route::new(id("c/d"), "127.0.0.1:2"));
        tx.set_state(&id("a/b"), SpaceState::Stopped);
        let snap = src.next_snapshot().await.unwrap().unwrap();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].state, SpaceState::Stopped);
    }
}
