//! The route source on Kubernetes: watches Spaces and EndpointSlices and
//! turns each change into a fresh snapshot of routes.
//!
//! One reflector per kind and namespace (or one per kind for the whole
//! cluster) keeps a cache; every event bumps a counter, and
//! [`KubeRoutes::next_snapshot`] waits for a bump, lets the burst settle
//! (a rollout moves many endpoints at once), and folds the caches with
//! [`super::routes::fold`], so a burst becomes one table swap, and a change
//! that leaves the routes as they were (a new `lastActivity`) none. Only
//! EndpointSlices of Space Services are watched: the cluster copies a
//! Service's labels onto its slices, so they carry `spaceport.dev/space`.
//! Watch errors are logged and retried with backoff; the proxy keeps its
//! last table meanwhile. This module reads; it writes nothing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use spaceport_proxy::{BoxFuture, Route, RouteError, RouteSource};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Directory;
use super::routes::fold;
use crate::crd::Space;
use crate::desired::SPACE_LABEL;

/// How long the caches must be quiet before a snapshot is taken.
pub const SETTLE: Duration = Duration::from_millis(150);
/// A snapshot is taken at the latest this long after the first change, even
/// while changes keep coming.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// Routes from the cluster.
#[derive(Debug)]
pub struct KubeRoutes {
    spaces: Vec<Store<Space>>,
    slices: Vec<Store<EndpointSlice>>,
    changes: watch::Receiver<u64>,
    directory: Directory,
    first: bool,
    /// The routes last handed out, to skip swaps that change nothing.
    last: Option<Vec<Route>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for KubeRoutes {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    bump: Arc<watch::Sender<u64>>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    bump.send_modify(|n| *n = n.wrapping_add(1));
                }
                Err(e) => tracing::warn!(%kind, error = %e, "watch failed; retrying"),
            }
        }
    });
    (reader, task)
}

impl KubeRoutes {
    /// Starts watching `namespaces` (all when empty); `directory` receives
    /// what each snapshot knows of every Space.
    pub fn start(client: Client, namespaces: &[String], directory: Directory) -> Self {
        let (tx, rx) = watch::channel(0u64);
        let bump = Arc::new(tx);
        let mut spaces = Vec::new();
        let mut slices = Vec::new();
        let mut tasks = Vec::new();
        let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().map(|n| Some(n.as_str())).collect()
        };
        for ns in scopes {
            let (space_api, slice_api): (Api<Space>, Api<EndpointSlice>) = match ns {
                Some(ns) => (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                ),
                None => (Api::all(client.clone()), Api::all(client.clone())),
            };
            let (store, task) = reflect(space_api, watcher::Config::default(), bump.clone());
            spaces.push(store);
            tasks.push(task);
            let (store, task) = reflect(
                slice_api,
                watcher::Config::default().labels(SPACE_LABEL),
                bump.clone(),
            );
            slices.push(store);
            tasks.push(task);
        }
        Self {
            spaces,
            slices,
            changes: rx,
            directory,
            first: true,
            last: None,
            tasks,
        }
    }

    async fn settle(&mut self) -> Option<()> {
        self.changes.changed().await.ok()?;
        let first_change = tokio::time::Instant::now();
        loop {
            self.changes.borrow_and_update();
            let left = MAX_DELAY.saturating_sub(first_change.elapsed());
            if left.is_zero() {
                return Some(());
            }
            match tokio::time::timeout(SETTLE.min(left), self.changes.changed()).await {
                Err(_) => return Some(()),
                Ok(Err(_)) => return None,
                Ok(Ok(())) => {}
            }
        }
    }

    fn snapshot(&self) -> Vec<Route> {
        let spaces: Vec<_> = self.spaces.iter().flat_map(Store::state).collect();
        let slices: Vec<_> = self.slices.iter().flat_map(Store::state).collect();
        let snapshot = fold(&spaces, &slices);
        tracing::debug!(routes = snapshot.routes.len(), "routes folded");
        self.directory.replace(snapshot.spaces);
        snapshot.routes
    }
}

impl RouteSource for KubeRoutes {
    fn next_snapshot(&mut self) -> BoxFuture<'_, Option<Result<Vec<Route>, RouteError>>> {
        Box::pin(async move {
            if std::mem::take(&mut self.first) {
                for store in &self.spaces {
                    store.wait_until_ready().await.ok()?;
                }
                for store in &self.slices {
                    store.wait_until_ready().await.ok()?;
                }
                self.changes.borrow_and_update();
            } else {
                self.settle().await?;
            }
            loop {
                let routes = self.snapshot();
                // Most events change nothing routed (a new lastActivity, a
                // condition): the directory takes them, the table stays.
                if self.last.as_ref() != Some(&routes) {
                    self.last = Some(routes.clone());
                    return Some(Ok(routes));
                }
                self.settle().await?;
            }
        })
    }
}
