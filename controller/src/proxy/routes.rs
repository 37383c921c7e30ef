//! From Spaces and EndpointSlices to the proxy's routes: pure, no I/O.
//!
//! A Space `<namespace>/<name>` is the proxy's Space id, so it is served at
//! `<namespace>-<name>.<domain>` and `/apps/<namespace>/<name>/`, the URL the
//! controller writes to `status.url`. Its upstreams are the ready endpoints of
//! the EndpointSlices of its Service (same namespace, label
//! `kubernetes.io/service-name` = the Space's name), each with the slice's
//! port: the Service's target port as the cluster resolved it. The stage
//! decides the rest (see [`Availability`]). A Space that cannot be routed
//! (a name the proxy refuses, a host that another Space already has) is left
//! out alone, so one bad Space never blocks the table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use spaceport_proxy::{Route, SpaceId, SpaceState, Visibility};
use spaceport_runtime::stage::Stage;

use crate::crd::{self, Space};
use crate::desired::config_of;
use crate::lifecycle::WAKE_ANNOTATION;

/// The label the cluster puts on a Service's EndpointSlices.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the proxy does with a visit, by the Space's stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// A serving stage with a ready endpoint: forward.
    Serving,
    /// STOPPED: hold the visit and ask the controller to wake the Space.
    Asleep,
    /// On its way up by itself (no status yet, BUILDING, APP_STARTING, or a
    /// serving stage without a ready endpoint): hold the visit, ask nothing.
    Starting,
    /// Paused, failed or being deleted: answer 503 with this sentence.
    Unavailable(String),
}

/// One Space as the waker and the activity sink see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceView {
    /// Where the resource is: its namespace and name (for a Space the hub
    /// made, not the id it is served under).
    pub resource: (String, String),
    pub availability: Availability,
    /// `status.lastActivity`.
    pub last_activity: Option<Timestamp>,
    /// The wake annotation.
    pub wake_requested: Option<Timestamp>,
}

impl SpaceView {
    /// Whether the controller already has a wake request it has not acted
    /// on (the rule of [`crate::lifecycle::transition`]).
    pub fn wake_pending(&self) -> bool {
        match (self.wake_requested, self.last_activity) {
            (Some(asked), Some(last)) => asked > last,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// The routes and what is known of each routed Space.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub routes: Vec<Route>,
    pub spaces: BTreeMap<SpaceId, SpaceView>,
}

/// Folds the Spaces and EndpointSlices in view into routes.
pub fn fold(spaces: &[Arc<Space>], slices: &[Arc<EndpointSlice>]) -> Snapshot {
    let upstreams = upstreams_by_service(slices);
    // The oldest Space keeps a contested host; names break ties.
    let mut ordered: Vec<&Space> = spaces.iter().map(AsRef::as_ref).collect();
    ordered.sort_by_key(|s| (s.creation_timestamp(), s.namespace(), s.name_any()));
    let mut hosts: HashMap<String, SpaceId> = HashMap::new();
    let mut snapshot = Snapshot::default();
    for space in ordered {
        let Some(namespace) = space.namespace() else {
            continue;
        };
        let name = space.name_any();
        // A Space the hub made is served under the hub's id.
        let served = crd::space_id(space);
        let (owner, served_name) = served.split_once('/').unwrap_or((&namespace, &name));
        let id = match SpaceId::new(owner, served_name) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "space left out of the routes");
                continue;
            }
        };
        let label = id.host_label();
        if let Some(first) = hosts.get(&label) {
            tracing::warn!(space = %id, %first, host = %label, "space left out of the routes: its host is taken");
            continue;
        }
        let ready = upstreams
            .get(&(namespace.as_str(), name.as_str()))
            .cloned()
            .unwrap_or_default();
        let (route, view) = route_of(space, id.clone(), ready);
        hosts.insert(label, id.clone());
        snapshot.spaces.insert(id, view);
        snapshot.routes.push(route);
    }
    snapshot
}

fn route_of(space: &Space, id: SpaceId, ready: BTreeSet<String>) -> (Route, SpaceView) {
    let status = space.status.clone().unwrap_or_default();
    let availability = availability(space, !ready.is_empty());
    let mut route = Route::new(id.clone(), "127.0.0.1:1");
    route.upstreams = ready.into_iter().collect();
    route.visibility = match space.spec.visibility {
        crd::Visibility::Public => Visibility::Public,
        crd::Visibility::Protected => Visibility::Protected,
        crd::Visibility::Private => Visibility::Private,
    };
    if let Some(config) = config_of(space) {
        route.disable_embedding = config.embedding_disabled();
        route.custom_headers = config
            .custom_headers
            .pairs()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    }
    route.state = match availability {
        Availability::Serving => SpaceState::Running,
        _ => SpaceState::Stopped,
    };
    let mut view = SpaceView {
        resource: (space.namespace().unwrap_or_default(), space.name_any()),
        availability,
        last_activity: parse_time(status.last_activity.as_deref()),
        wake_requested: parse_time(space.annotations().get(WAKE_ANNOTATION).map(String::as_str)),
    };
    if let Err(e) = route.validate() {
        tracing::warn!(space = %id, error = %e, "space route refused");
        route = Route::new(id, "127.0.0.1:1");
        route.upstreams.clear();
        route.visibility = Visibility::Private;
        route.state = SpaceState::Stopped;
        view.availability = Availability::Unavailable(format!("its route is invalid: {e}"));
    }
    (route, view)
}

fn availability(space: &Space, has_ready: bool) -> Availability {
    let status = space.status.as_ref();
    let stage = status.and_then(|s| s.stage);
    let message = status.and_then(|s| s.message.clone());
    if space.metadata.deletion_timestamp.is_some() || stage == Some(Stage::Deleting) {
        return Availability::Unavailable("the Space is being deleted".into());
    }
    if space.spec.paused || stage == Some(Stage::Paused) {
        return Availability::Unavailable("the Space is paused by its owner".into());
    }
    match stage {
        Some(s) if s.is_serving() && has_ready => Availability::Serving,
        Some(s) if s.wakes_on_visit() => Availability::Asleep,
        Some(s) if s.needs_a_fix() => Availability::Unavailable(match message {
            Some(m) if !m.trim().is_empty() => format!("the Space is {s}: {}", m.trim()),
            _ => format!("the Space is {s}; see its page"),
        }),
        _ => Availability::Starting,
    }
}

fn parse_time(t: Option<&str>) -> Option<Timestamp> {
    t.and_then(|t| t.parse().ok())
}

/// Ready `host:port`s per (namespace, Service name).
fn upstreams_by_service(slices: &[Arc<EndpointSlice>]) -> HashMap<(&str, &str), BTreeSet<String>> {
    let mut out: HashMap<(&str, &str), BTreeSet<String>> = HashMap::new();
    for slice in slices {
        let (Some(namespace), Some(service)) = (
            slice.metadata.namespace.as_deref(),
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        let Some(port) = port_of(slice) else { continue };
        let entry = out.entry((namespace, service.as_str())).or_default();
        for endpoint in &slice.endpoints {
            // The API says a missing `ready` means ready.
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            // Addresses of one endpoint are interchangeable; the first will do.
            let address = endpoint.addresses.first().map(String::as_str);
            if let (true, Some(address)) = (ready, address)
                && let Some(upstream) = upstream(&slice.address_type, address, port)
            {
                entry.insert(upstream);
            }
        }
    }
    out
}

/// The slice's port for the Service's `http` port (or its only TCP port).
fn port_of(slice: &EndpointSlice) -> Option<u16> {
    let tcp: Vec<_> = slice
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
        .collect();
    let port = match tcp.iter().find(|p| p.name.as_deref() == Some("http")) {
        Some(p) => p,
        None if tcp.len() == 1 => tcp[0],
        None => return None,
    };
    port.port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p > 0)
}

/// `address:port`, for an address the slice's type allows; anything else
/// (a forged FQDN with a path, say) is dropped.
fn upstream(address_type: &str, address: &str, port: u16) -> Option<String> {
    match (address_type, address.parse::<IpAddr>()) {
        ("IPv4", Ok(IpAddr::V4(ip))) => Some(format!("{ip}:{port}")),
        ("IPv6", Ok(IpAddr::V6(ip))) => Some(format!("[{ip}]:{port}")),
        ("FQDN", Err(_))
            if !address.is_empty()
                && address.len() <= 253
                && address
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
        {
            Some(format!("{}:{port}", address.to_ascii_lowercase()))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
