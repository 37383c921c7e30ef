//! `spaceport-controller run`: wires the reconcile, the leader election, the
//! watch cache and the HTTP surface together.
//!
//! Every replica serves HTTP (health, metrics, webhooks) and keeps a watch
//! cache of the Spaces; only the replica holding the Lease reconciles,
//! builds and polls repos. A leader that loses its lease stops and exits,
//! so Kubernetes restarts it as a follower: nothing half-done is carried.

use crate::build::ImageBuilder;
use crate::builds::Builds;
use crate::crd::Space;
use crate::desired::ControllerSettings;
use crate::http::{self, HttpState};
use crate::leader::{Elector, LeaseSettings};
use crate::reconcile::{Context, HubSource, error_policy, reconcile};
use anyhow::Context as _;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// Everything `run` needs, from the command line.
pub struct RunConfig {
    pub listen: SocketAddr,
    /// The one namespace watched; `None` watches all.
    pub namespace: Option<String>,
    pub settings: ControllerSettings,
    pub hub: HubSource,
    pub builder: Option<Arc<dyn ImageBuilder>>,
    /// `None` runs without an election (one replica only).
    pub lease: Option<LeaseSettings>,
    pub default_sleep_seconds: i64,
    /// This replica's name, for Events.
    pub identity: String,
    /// More routes served on `listen` (the push webhooks), given the
    /// watch cache.
    pub extra_routes: Box<dyn FnOnce(Store<Space>) -> axum::Router + Send>,
    /// Tasks to run while leading (the repo poller), given the watch cache.
    pub while_leading:
        Box<dyn FnOnce(Store<Space>) -> futures_util::future::BoxFuture<'static, ()> + Send>,
}

impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("listen", &self.listen)
            .field("namespace", &self.namespace)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs until a signal, or until leadership is lost (an error).
pub async fn run(client: Client, config: RunConfig) -> anyhow::Result<()> {
    let RunConfig {
        listen,
        namespace,
        settings,
        hub,
        builder,
        lease,
        default_sleep_seconds,
        identity,
        extra_routes,
        while_leading,
    } = config;
    let ns = namespace.as_deref();
    let mut ctx = Context::new(client.clone(), settings);
    ctx.default_sleep_seconds = default_sleep_seconds;
    ctx.hub = hub;
    ctx.builds = Builds::new(builder);
    ctx.recorder = Some(Recorder::new(
        client.clone(),
        Reporter {
            controller: "spaceport-controller".into(),
            instance: Some(identity),
        },
    ));
    let ctx = Arc::new(ctx);

    // The watch cache every replica keeps.
    let (reader, writer) = reflector::store::<Space>();
    let cache = watcher(api::<Space>(&client, ns), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .for_each(|_| async {});
    tokio::spawn(cache);
    let (ready_tx, ready_rx) = watch::channel(false);
    {
        let reader = reader.clone();
        tokio::spawn(async move {
            if reader.wait_until_ready().await.is_ok() {
                ready_tx.send_replace(true);
            }
        });
    }

    let app = http::router(HttpState {
        ctx: ctx.clone(),
        spaces: reader.clone(),
        ready: ready_rx,
    })
    .merge(extra_routes(reader.clone()));
    let socket = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("failed to listen on {listen}"))?;
    tracing::info!(%listen, "serving health, metrics, build logs and webhooks");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(socket, app).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });

    let mut leading = match lease {
        Some(lease) => {
            let (elector, rx) = Elector::new(client.clone(), lease);
            tokio::spawn(elector.run());
            rx
        }
        None => watch::channel(true).1,
    };
    tracing::info!("waiting for the leader lease");
    tokio::select! {
        r = leading.wait_for(|l| *l) => { r.context("the leader election stopped")?; }
        _ = tokio::signal::ctrl_c() => return Ok(()),
    }
    ctx.metrics.leader.set(1);
    tracing::info!("leading: reconciling Spaces");
    let poller = tokio::spawn(while_leading(reader));

    let lost = {
        let mut leading = leading.clone();
        async move {
            let _ = leading.wait_for(|l| !*l).await;
        }
    };
    let (lost_tx, mut lost_rx) = watch::channel(false);
    tokio::spawn(async move {
        lost.await;
        lost_tx.send_replace(true);
    });
    let mut stop = lost_rx.clone();
    Controller::new(api::<Space>(&client, ns), watcher::Config::default())
        .owns(api::<Deployment>(&client, ns), watcher::Config::default())
        .owns(api::<Service>(&client, ns), watcher::Config::default())
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|l| *l).await;
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    poller.abort();
    ctx.metrics.leader.set(0);
    if *lost_rx.borrow_and_update() {
        anyhow::bail!("lost the leader lease; exiting so a fresh follower takes over")
    }
    Ok(())
}
