//! The reconcile loop of a Space, as a pipeline: read (the object handed in)
//! -> decide sleep/wake ([`lifecycle`], pure) and whether a build is due
//! ([`builds::due`], pure) -> build the desired objects ([`desired`], pure,
//! which also validates) -> apply them with server-side apply (field manager
//! `spaceport`) -> write the status, and an Event when the stage changed.
//!
//! A finalizer wraps it so that deletion passes through [`cleanup`]. An
//! invalid Space (bad flavor, bad config) gets CONFIG_ERROR and waits for a
//! change instead of being retried; API errors are retried with a growing
//! delay ([`error_policy`]). A build runs on its own task ([`Builds`]); the
//! version that served keeps serving (RUNNING_BUILDING) until the new image
//! is rolled out.

use crate::build::{BuildJob, GitCredentials, GitLocation};
use crate::builds::{self, Builds, StatusWritten};
use crate::conditions::conditions;
use crate::crd::{BuildResult, HardwareStatus, Space, SpaceStatus};
use crate::desired::{ControllerSettings, Desired, desired};
use crate::lifecycle::{self, Transition};
use crate::metrics::Metrics;
use crate::source;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use spaceport_runtime::plan::SpaceId;
use spaceport_runtime::stage::Stage;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The finalizer spaceport puts on every Space.
pub const FINALIZER: &str = "spaceport.dev/cleanup";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "spaceport";
/// The backstop requeue when nothing else is due.
pub const RESYNC: Duration = Duration::from_secs(300);
/// First delay before retrying after an API error; it doubles per failure
/// in a row, up to [`RETRY_MAX`].
pub const RETRY: Duration = Duration::from_secs(5);
/// The longest delay between retries.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Where builds fetch `source.hub` Spaces from.
#[derive(Debug, Clone, Default)]
pub struct HubSource {
    /// The hub's base URL as the builder reaches it.
    pub url: String,
    /// A token that may read every Space repo.
    pub token: Option<String>,
}

/// What the reconciler needs.
pub struct Context {
    pub client: Client,
    pub settings: ControllerSettings,
    /// Default sleep time of Spaces that set none (-1: never).
    pub default_sleep_seconds: i64,
    /// The time, injectable for tests.
    pub clock: Box<dyn Fn() -> Timestamp + Send + Sync>,
    /// Builds in flight, and the builder (none: images must be prebuilt).
    pub builds: Builds,
    /// Where `source.hub` Spaces are cloned from.
    pub hub: HubSource,
    /// Publishes Kubernetes Events on stage changes (none: no events).
    pub recorder: Option<Recorder>,
    pub metrics: Metrics,
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("default_sleep_seconds", &self.default_sleep_seconds)
            .field("builds", &self.builds)
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
            builds: Builds::default(),
            hub: HubSource::default(),
            recorder: None,
            metrics: Metrics::new().expect("the metrics register once"),
            failures: Mutex::new(HashMap::new()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to talk to the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Space has no namespace")]
    NoNamespace,
    #[error(transparent)]
    Source(#[from] source::api::ApiError),
    #[error("failed to run the finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The metric label of the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::NoNamespace => "no_namespace",
            Error::Source(_) => "source",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.kind(),
                _ => "finalizer",
            },
        }
    }
}

/// Entry point for the controller runtime.
pub async fn reconcile(space: Arc<Space>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = space.namespace().ok_or(Error::NoNamespace)?;
    let key = builds::key(&namespace, &space.name_any());
    let api: Api<Space> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, space, |event| async {
        match event {
            Event::Apply(space) => apply(&space, &ctx).await,
            Event::Cleanup(space) => cleanup(&space, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[label]).inc();
    ctx.metrics
        .duration
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }
    result
}

/// The delay before retry `n` (1 for the first failure in a row).
pub fn backoff(n: u32) -> Duration {
    RETRY
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

/// Transient errors (the API) are retried with a delay that doubles for
/// each failure in a row; invalid Spaces never get here (they are reported
/// in their status and wait for a change).
pub fn error_policy(space: Arc<Space>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.errors.with_label_values(&[error.kind()]).inc();
    let key = builds::key(&space.namespace().unwrap_or_default(), &space.name_any());
    let n = {
        let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = backoff(n);
    tracing::warn!(space = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The string values of a Secret or ConfigMap's keys.
fn values(data: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    data.into_iter().collect()
}

async fn secret_values(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get(name).await?;
    Ok(values(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v))),
    ))
}

/// The job that builds `commit` of a Space: where to fetch it (with the
/// credentials its source names), and the build secrets and variables
/// from its Secret and ConfigMap refs.
async fn build_job(
    space: &Space,
    namespace: &str,
    commit: String,
    ctx: &Context,
) -> Result<Option<BuildJob>, Error> {
    let source = &space.spec.source;
    let location = if let Some(git) = &source.git {
        // The same reading of the Secret as the repo poller's.
        let credentials = match &git.credentials_secret {
            Some(name) => Some(source::api::credentials(&ctx.client, namespace, name).await?),
            None => None,
        };
        GitLocation {
            url: git.url.clone(),
            credentials,
        }
    } else if let Some(repo) = &source.hub {
        GitLocation {
            url: format!("{}/spaces/{repo}", ctx.hub.url.trim_end_matches('/')),
            credentials: ctx.hub.token.as_ref().map(|t| GitCredentials {
                username: Some("spaceport".into()),
                password: Some(t.clone()),
                ssh_private_key: None,
                known_hosts: None,
            }),
        }
    } else {
        return Ok(None);
    };
    let mut secrets = BTreeMap::new();
    for name in &space.spec.secret_refs {
        secrets.extend(secret_values(&ctx.client, namespace, name).await?);
    }
    let mut variables = BTreeMap::new();
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    for name in &space.spec.config_map_refs {
        variables.extend(values(maps.get(name).await?.data.unwrap_or_default()));
    }
    variables.extend(space.spec.variables.clone());
    Ok(Some(BuildJob {
        namespace: namespace.to_owned(),
        name: space.name_any(),
        commit,
        source: location,
        config: space.spec.config.clone(),
        secrets,
        variables,
        no_cache: builds::rebuild_asked(space),
    }))
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
    ctx.builds
        .catch_up(&builds::key(&namespace, &name), &mut status);
    space.status = Some(status.clone());
    match lifecycle::transition(&space, now, ctx.default_sleep_seconds) {
        Transition::Sleep => status.stage = Some(Stage::Stopped),
        Transition::Wake => {
            status.stage = Some(Stage::AppStarting);
            status.last_activity = Some(now.to_string());
            // The proxies own lastActivity (they move it forward with merge
            // patches); a wake counts as activity the same way, so the
            // status apply below never carries an older copy of it.
            let api: Api<Space> = Api::namespaced(ctx.client.clone(), &namespace);
            let patch = json!({"status": {"lastActivity": now.to_string()}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Transition::Stay => {}
    }
    // A build due starts now; the status below says so.
    let key = builds::key(&namespace, &name);
    let mut written: Option<StatusWritten> = None;
    if let Some(commit) = builds::due(&space)
        && ctx.builds.in_flight(&key).as_deref() != Some(commit.as_str())
        && ctx.builds.can_build()
        && let Some(job) = build_job(&space, &namespace, commit.clone(), ctx).await?
    {
        written = ctx.builds.start(ctx.client.clone(), job);
        ctx.metrics.builds.with_label_values(&["started"]).inc();
        status.build = Some(builds::started(&commit, &now.to_string()));
    }
    let previous_stage = space.status.as_ref().and_then(|s| s.stage);
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
            if let Some(m) = build_message(&status, ctx) {
                (status.stage, status.message) = (Some(m.0), Some(m.1));
            }
            let stage = status.stage;
            write_status(&space, &namespace, status, ctx).await?;
            publish(ctx, &space, previous_stage, stage).await;
            drop(written);
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
    } else if let Some(m) = build_message(&status, ctx) {
        (
            m.0,
            if m.0 == Stage::RunningBuilding {
                format!("{}; {ready} replica(s) ready", m.1)
            } else {
                m.1
            },
        )
    } else if crate::desired::image_of(&space).is_none() {
        (
            Stage::Building,
            "waiting for the source's first commit".to_owned(),
        )
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
    let id = SpaceId::parse(&crate::crd::space_id(&space)).ok();
    status.url = id.map(|id| format!("http://{}", id.host(&ctx.settings.plan.domain)));
    write_status(&space, &namespace, status, ctx).await?;
    publish(ctx, &space, previous_stage, Some(stage)).await;
    drop(written);

    let until_sleep = lifecycle::seconds_until_sleep(&space, now, ctx.default_sleep_seconds)
        .filter(|_| stage.is_serving() || stage == Stage::AppStarting)
        .map(|s| Duration::from_secs(s.unsigned_abs().max(1)));
    Ok(Action::requeue(
        until_sleep.map_or(RESYNC, |d| d.min(RESYNC)),
    ))
}

/// The stage and words of the Space's build, when a build runs or the
/// latest one failed.
fn build_message(status: &SpaceStatus, _ctx: &Context) -> Option<(Stage, String)> {
    let build = status.build.as_ref()?;
    let short = &build.commit[..build.commit.len().min(12)];
    let serving = status.image.is_some();
    match build.result {
        BuildResult::Running => Some(if serving {
            (
                Stage::RunningBuilding,
                format!("building {short}; the previous version serves meanwhile"),
            )
        } else {
            (Stage::Building, format!("building {short}"))
        }),
        BuildResult::Failed => Some((
            Stage::BuildError,
            format!(
                "the build of {short} failed: {}",
                build.message.as_deref().unwrap_or("see the build log")
            ),
        )),
        BuildResult::ConfigError => Some((
            Stage::ConfigError,
            format!(
                "the README at {short} is invalid: {}",
                build.message.as_deref().unwrap_or("see the build log")
            ),
        )),
        BuildResult::Succeeded => None,
    }
}

/// An Event on the Space when its stage changed.
async fn publish(ctx: &Context, space: &Space, before: Option<Stage>, after: Option<Stage>) {
    let (Some(recorder), Some(after)) = (&ctx.recorder, after) else {
        return;
    };
    if before == Some(after) {
        return;
    }
    let warning = after.needs_a_fix();
    let note = space
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    let event = KubeEvent {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: stage_reason(after).to_owned(),
        note: Some(
            format!(
                "{} -> {}{}",
                before.map_or("NEW", Stage::as_str),
                after.as_str(),
                if note.is_empty() {
                    String::new()
                } else {
                    format!(": {note}")
                }
            )
            .chars()
            .take(1000)
            .collect(),
        ),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &space.object_ref(&())).await {
        tracing::warn!(error = %e, "failed to publish an event");
    }
}

/// The PascalCase reason of a stage's Event.
fn stage_reason(stage: Stage) -> &'static str {
    match stage {
        Stage::Running => "Running",
        Stage::RunningBuilding => "Building",
        Stage::Building => "Building",
        Stage::AppStarting => "Starting",
        Stage::Stopped => "Sleeping",
        Stage::Paused => "Paused",
        Stage::ConfigError => "ConfigError",
        Stage::BuildError => "BuildFailed",
        Stage::RuntimeError => "RuntimeError",
        Stage::Deleting => "Deleting",
        _ => "StageChanged",
    }
}

/// Owner references remove the Deployment, Service and claim; what is left
/// is to stop a build in flight and say the Space is going.
async fn cleanup(space: &Space, ctx: &Context) -> Result<Action, Error> {
    let namespace = space.namespace().ok_or(Error::NoNamespace)?;
    ctx.builds
        .cancel(&builds::key(&namespace, &space.name_any()));
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
    // lastActivity is the proxies' (see the wake above): never applied here.
    let mut status = SpaceStatus {
        last_activity: None,
        ..status
    };
    if let Some(stage) = status.stage {
        status.conditions = conditions(
            &status.conditions,
            stage,
            status.message.as_deref(),
            status.build.as_ref(),
            &(ctx.clock)().to_string(),
        );
    }
    let patch = json!({
        "apiVersion": Space::api_version(&()),
        "kind": Space::kind(&()),
        "status": status,
    });
    api.patch_status(&space.name_any(), &params(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}
