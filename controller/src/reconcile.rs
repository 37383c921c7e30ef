//! The reconcile loop of a Space, as a pipeline: read (the object handed in)
//! -> decide sleep/wake ([`lifecycle`], pure) -> build the desired objects
//! ([`desired`], pure, which also validates) -> apply them with server-side
//! apply (field manager `spaceport`) -> write the status.
//!
//! A finalizer wraps it so that deletion passes through [`cleanup`]. An
//! invalid Space (bad flavor, bad config) gets CONFIG_ERROR and waits for a
//! change instead of being retried; API errors are retried with a delay.
//! Builds in the cluster are not done yet: a Space runs a prebuilt image
//! (`source.image`) or the image its status names.

use crate::crd::{HardwareStatus, Space, SpaceStatus};
use crate::desired::{ControllerSettings, Desired, desired};
use crate::lifecycle::{self, Transition};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use spaceport_runtime::plan::SpaceId;
use spaceport_runtime::stage::Stage;
use std::sync::Arc;
use std::time::Duration;

/// The finalizer spaceport puts on every Space.
pub const FINALIZER: &str = "spaceport.dev/cleanup";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "spaceport";
/// The backstop requeue when nothing else is due.
pub const RESYNC: Duration = Duration::from_secs(300);
/// Delay before retrying after an API error.
pub const RETRY: Duration = Duration::from_secs(15);

/// What the reconciler needs.
pub struct Context {
    pub client: Client,
    pub settings: ControllerSettings,
    /// Default sleep time of Spaces that set none (-1: never).
    pub default_sleep_seconds: i64,
    /// The time, injectable for tests.
    pub clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("default_sleep_seconds", &self.default_sleep_seconds)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(client: Client, settings: ControllerSettings) -> Self {
        Context {
            client,
            settings,
            default_sleep_seconds: 48 * 3600,
            clock: Box::new(Timestamp::now),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to talk to the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Space has no namespace")]
    NoNamespace,
    #[error("failed to run the finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

/// Entry point for the controller runtime.
pub async fn reconcile(space: Arc<Space>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = space.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Space> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, space, |event| async {
        match event {
            Event::Apply(space) => apply(&space, &ctx).await,
            Event::Cleanup(space) => cleanup(&space, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// Transient errors are retried after a delay; invalid Spaces never get
/// here (they are reported in their status and wait for a change).
pub fn error_policy(_space: Arc<Space>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(RETRY)
}

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply(space: &Space, ctx: &Context) -> Result<Action, Error> {
    let namespace = space.namespace().ok_or(Error::NoNamespace)?;
    let name = space.name_any();
    let now = (ctx.clock)();
    let mut space = space.clone();
    let mut status = space.status.clone().unwrap_or_default();
    match lifecycle::transition(&space, now, ctx.default_sleep_seconds) {
        Transition::Sleep => status.stage = Some(Stage::Stopped),
        Transition::Wake => {
            status.stage = Some(Stage::AppStarting);
            status.last_activity = Some(now.to_string());
        }
        Transition::Stay => {}
    }
    space.status = Some(status.clone());
    status.observed_generation = space.metadata.generation;
    status.hardware = HardwareStatus {
        current: space
            .spec
            .hardware
            .clone()
            .or_else(|| Some(ctx.settings.plan.default_flavor.clone())),
        requested: space.spec.hardware.clone(),
    };

    let objects = match desired(&space, &ctx.settings) {
        Ok(objects) => objects,
        Err(e) => {
            status.stage = Some(e.stage());
            status.message = Some(e.to_string());
            write_status(&space, &namespace, status, ctx).await?;
            return Ok(Action::await_change());
        }
    };
    let Desired {
        deployment,
        service,
        data,
        warnings,
    } = objects;
    if let Some(claim) = data {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
        pvcs.patch(&claim.name_any(), &params(), &Patch::Apply(&claim))
            .await?;
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let applied = deployments
        .patch(&name, &params(), &Patch::Apply(&deployment))
        .await?;
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    services
        .patch(&name, &params(), &Patch::Apply(&service))
        .await?;

    let ready = applied
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let (stage, message) = if space.spec.paused {
        (Stage::Paused, "paused by its owner".to_owned())
    } else if status.stage == Some(Stage::Stopped) {
        (Stage::Stopped, "asleep; the next visit wakes it".to_owned())
    } else if crate::desired::image_of(&space).is_none() {
        (Stage::Building, "waiting for an image".to_owned())
    } else if ready > 0 {
        (Stage::Running, format!("{ready} replica(s) ready"))
    } else {
        (
            Stage::AppStarting,
            "waiting for the app to answer".to_owned(),
        )
    };
    status.stage = Some(stage);
    status.message = Some(if warnings.is_empty() {
        message
    } else {
        format!("{message}; {}", warnings.join("; "))
    });
    let id = SpaceId::parse(&format!("{namespace}/{name}")).ok();
    status.url = id.map(|id| format!("http://{}", id.host(&ctx.settings.plan.domain)));
    write_status(&space, &namespace, status, ctx).await?;

    let until_sleep = lifecycle::seconds_until_sleep(&space, now, ctx.default_sleep_seconds)
        .filter(|_| stage.is_serving() || stage == Stage::AppStarting)
        .map(|s| Duration::from_secs(s.unsigned_abs().max(1)));
    Ok(Action::requeue(
        until_sleep.map_or(RESYNC, |d| d.min(RESYNC)),
    ))
}

/// Owner references remove the Deployment, Service and claim; what is left
/// is to say the Space is going.
async fn cleanup(space: &Space, ctx: &Context) -> Result<Action, Error> {
    let namespace = space.namespace().ok_or(Error::NoNamespace)?;
    let mut status = space.status.clone().unwrap_or_default();
    status.stage = Some(Stage::Deleting);
    status.message = Some("being deleted".into());
    write_status(space, &namespace, status, ctx).await?;
    Ok(Action::await_change())
}

async fn write_status(
    space: &Space,
    namespace: &str,
    status: SpaceStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let api: Api<Space> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": Space::api_version(&()),
        "kind": Space::kind(&()),
        "status": status,
    });
    api.patch_status(&space.name_any(), &params(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}
