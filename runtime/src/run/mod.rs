//! Running Spaces on one machine: one container per Space version, started
//! from a [`RunSpec`], watched until its app answers, then supervised.
//!
//! The stage never claims more than is true: APP_STARTING until an HTTP GET
//! on the app's port answers (anything but 5xx), RUNNING from then on;
//! RUNTIME_ERROR with the last log lines when the app exits or passes its
//! startup timeout. A crash after the app was healthy restarts it with
//! exponential backoff. When a new version replaces a live one the old
//! keeps serving (RUNNING_BUILDING, then RUNNING_APP_STARTING) and traffic
//! switches only once the new one is healthy. Containers carry labels, so
//! after a restart of spaceport [`Runner::adopt`] finds them, keeps them
//! running and rebuilds their GPU allocations. Run logs are kept bounded.
//!
//! Sleep and wake: [`Runner::sleep`] stops the serving container without
//! removing it, frees its GPUs and says STOPPED; [`Runner::wake`] starts
//! that same container again and returns once its app answers. A wake is
//! on the path of a visitor's held request, so it does as little as it can
//! before `start`: no listing, no inspect, and with a fixed host port
//! ([`Deployment::host_port`]) it probes the known address every few
//! milliseconds from the start on. Only when the GPUs the container was
//! created with went to another Space while it slept is it removed and
//! created again (from the spec it was made from) with the GPUs granted
//! now, since a container keeps the devices it was created with.
//!
//! It must not build images or parse configuration; it starts what it is
//! given and reports what it sees.

pub mod health;
mod sleep;
pub mod spec;
mod supervise;

pub use spec::{ContainerSettings, container_name, container_spec};
use supervise::{Begin, revive, supervise};

use crate::build::{LogBook, SPACE_LABEL, utc_timestamp};
use crate::engine::{ContainerEngine, ContainerInfo, ContainerSpec, EngineError, MANAGED_LABEL};
use crate::gpu::{GpuAllocator, GpuInfo, GpuRequest, Refusal};
use crate::plan::{RunSpec, SpaceId};
use crate::stage::Stage;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

/// Why a Space could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("waiting for GPUs: {0}")]
    NoGpu(#[from] Refusal),
    #[error("no Space {0} is known here")]
    UnknownSpace(SpaceId),
    #[error("failed to wake {space}: {reason}")]
    WakeFailed { space: SpaceId, reason: String },
    #[error("failed to wake {space}: it is not asleep (stage {stage})")]
    NotAsleep { space: SpaceId, stage: Stage },
}

/// The status message of a sleeping Space.
pub const SLEEPING_MESSAGE: &str = "sleeping: wakes on the next visit";

/// Settings of the runner.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub container: ContainerSettings,
    /// Run log lines kept per Space.
    pub log_lines: usize,
    /// Lines of log quoted in a RUNTIME_ERROR.
    pub error_tail_lines: usize,
    /// Time between health probes and state checks.
    pub poll_interval: Duration,
    /// First wait before restarting a crashed app; doubles per crash.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// A run this long resets the backoff.
    pub backoff_reset_after: Duration,
    /// Seconds between SIGTERM and SIGKILL on stop.
    pub stop_grace_secs: u32,
    /// Time between health probes while a woken app starts: short, as a
    /// visitor waits.
    pub wake_poll_interval: Duration,
    /// How long a replaced version keeps running after the new one took
    /// over, so requests routed to it before the switch can finish.
    pub drain: Duration,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            container: ContainerSettings::default(),
            log_lines: 5_000,
            error_tail_lines: 30,
            poll_interval: Duration::from_millis(250),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
            backoff_reset_after: Duration::from_secs(10 * 60),
            stop_grace_secs: 10,
            wake_poll_interval: Duration::from_millis(5),
            drain: Duration::from_secs(2),
        }
    }
}

/// What a Space's status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceStatus {
    pub stage: Stage,
    /// The error, or other words for the owner.
    pub message: Option<String>,
    /// The container that serves (or is starting, when none serves).
    pub container_id: Option<String>,
    /// Where the proxy reaches the serving app.
    pub host_port: Option<u16>,
    /// The commit that serves (or is starting).
    pub commit: Option<String>,
    /// Restarts after crashes of the current version.
    pub restarts: u32,
}

impl SpaceStatus {
    fn new(stage: Stage) -> Self {
        SpaceStatus {
            stage,
            message: None,
            container_id: None,
            host_port: None,
            commit: None,
            restarts: 0,
        }
    }
}

/// What the runner keeps of a version to start its container again.
#[derive(Debug, Clone)]
struct Version {
    commit: String,
    startup: Duration,
    /// The health check path; `None` when there is no port to probe.
    path: Option<String>,
    /// The fixed host port, when the deployment asked for one.
    host_port: Option<u16>,
    gpus: GpuRequest,
    /// The GPUs the container was created with.
    gpu_uuids: Vec<String>,
    /// The spec it was created from (to create it again with other GPUs);
    /// `None` for an adopted container.
    spec: Option<ContainerSpec>,
}

impl Version {
    /// What a container's labels say (an adopted container).
    fn from_labels(c: &ContainerInfo) -> Self {
        let gpu_uuids: Vec<String> = c
            .labels
            .get(spec::GPUS_LABEL)
            .map(|s| {
                s.split(',')
                    .filter(|u| !u.is_empty())
                    .map(Into::into)
                    .collect()
            })
            .unwrap_or_default();
        Version {
            commit: c
                .labels
                .get(crate::build::COMMIT_LABEL)
                .cloned()
                .unwrap_or_default(),
            startup: c
                .labels
                .get(spec::STARTUP_LABEL)
                .and_then(|s| s.parse().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::from_secs(30 * 60)),
            path: c
                .labels
                .get(spec::HEALTH_LABEL)
                .cloned()
                .or_else(|| c.labels.contains_key(spec::PORT_LABEL).then(|| "/".into())),
            host_port: c
                .labels
                .get(spec::HOST_PORT_LABEL)
                .and_then(|p| p.parse().ok()),
            gpus: GpuRequest {
                count: gpu_uuids.len() as u32,
                model: None,
            },
            gpu_uuids,
            spec: None,
        }
    }
}

/// The serving version of a Space.
#[derive(Debug, Clone)]
struct Live {
    generation: u64,
    container_id: String,
    abort: Option<AbortHandle>,
    version: Arc<Version>,
}

/// A stopped, kept container that the next visit starts again.
#[derive(Debug, Clone)]
struct Asleep {
    container_id: String,
    version: Arc<Version>,
}

#[derive(Debug)]
struct SpaceSlot {
    status: watch::Sender<SpaceStatus>,
    log: Arc<LogBook>,
    live: Mutex<Option<Live>>,
    /// The version starting to replace `live` (generation, container, task).
    pending: Mutex<Option<Live>>,
    asleep: Mutex<Option<Asleep>>,
    /// Held by sleep, wake and stop, so that they see each other's result.
    transition: tokio::sync::Mutex<()>,
}

/// The Space a container of spaceport's belongs to, by its label.
fn space_of(c: &ContainerInfo) -> Option<SpaceId> {
    c.labels
        .get(SPACE_LABEL)
        .and_then(|s| SpaceId::parse(s).ok())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SpaceSlot {
    fn serving(&self) -> bool {
        lock(&self.live).is_some()
    }

    fn sleeping(&self) -> bool {
        lock(&self.asleep).is_some()
    }

    fn update(&self, f: impl FnOnce(&mut SpaceStatus)) {
        self.status.send_modify(f);
    }
}

/// Starts, supervises, replaces, stops and re-adopts Space containers.
#[derive(Debug)]
pub struct Runner<E> {
    inner: Arc<Inner<E>>,
}

#[derive(Debug)]
struct Inner<E> {
    engine: Arc<E>,
    settings: RunSettings,
    gpus: Arc<Mutex<GpuAllocator>>,
    spaces: Mutex<HashMap<SpaceId, Arc<SpaceSlot>>>,
    generation: std::sync::atomic::AtomicU64,
}

/// One version to run.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub space: SpaceId,
    pub commit: String,
    pub image: String,
    pub run: RunSpec,
    /// Secret values by name; those in `run.secret_env` become variables.
    pub secrets: BTreeMap<String, String>,
    /// Publish the app on exactly this host port (on the bind address),
    /// after every start and wake: a fixed upstream for the proxy. One port
    /// cannot serve two containers, so a new version then replaces the
    /// serving one by stopping it first (no overlap). `None`: the engine
    /// chooses a port, which may change when the container starts again.
    pub host_port: Option<u16>,
}

impl<E: ContainerEngine> Runner<E> {
    pub fn new(engine: Arc<E>, gpus: Arc<Mutex<GpuAllocator>>, settings: RunSettings) -> Self {
        Runner {
            inner: Arc::new(Inner {
                engine,
                settings,
                gpus,
                spaces: Mutex::new(HashMap::new()),
                generation: 0.into(),
            }),
        }
    }

    /// The GPU allocator (shared with whoever reads its queue).
    pub fn gpus(&self) -> Arc<Mutex<GpuAllocator>> {
        self.inner.gpus.clone()
    }

    fn slot(&self, space: &SpaceId) -> Arc<SpaceSlot> {
        let mut spaces = self.inner.spaces.lock().unwrap_or_else(|p| p.into_inner());
        spaces
            .entry(space.clone())
            .or_insert_with(|| {
                Arc::new(SpaceSlot {
                    status: watch::channel(SpaceStatus::new(Stage::Stopped)).0,
                    log: Arc::new(LogBook::new(self.inner.settings.log_lines)),
                    live: Mutex::new(None),
                    pending: Mutex::new(None),
                    asleep: Mutex::new(None),
                    transition: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    fn existing(&self, space: &SpaceId) -> Option<Arc<SpaceSlot>> {
        let spaces = self.inner.spaces.lock().unwrap_or_else(|p| p.into_inner());
        spaces.get(space).cloned()
    }

    /// The Space's status now.
    pub fn status(&self, space: &SpaceId) -> Option<SpaceStatus> {
        self.existing(space).map(|s| s.status.borrow().clone())
    }

    /// Follows the Space's status.
    pub fn watch(&self, space: &SpaceId) -> Option<watch::Receiver<SpaceStatus>> {
        self.existing(space).map(|s| s.status.subscribe())
    }

    /// The Space's run log.
    pub fn logs(&self, space: &SpaceId) -> Option<Arc<LogBook>> {
        self.existing(space).map(|s| s.log.clone())
    }

    /// A build of the Space began: BUILDING, or RUNNING_BUILDING while an
    /// older version serves.
    pub fn building(&self, space: &SpaceId) {
        let slot = self.slot(space);
        let stage = if slot.serving() {
            Stage::RunningBuilding
        } else {
            Stage::Building
        };
        slot.update(|s| {
            s.stage = stage;
            s.message = None;
        });
    }

    /// The Space's build failed: BUILD_ERROR, unless an older version
    /// still serves (it keeps serving, and the message says why the new
    /// one is not there).
    pub fn build_failed(&self, space: &SpaceId, reason: &str) {
        let slot = self.slot(space);
        let serving = slot.serving();
        let sleeping = slot.sleeping();
        slot.update(|s| {
            s.stage = if serving {
                Stage::Running
            } else if sleeping {
                // The old version still wakes on the next visit.
                Stage::Stopped
            } else {
                Stage::BuildError
            };
            s.message = Some(format!("build failed: {reason}"));
        });
    }

    /// Starts a version of a Space. It returns once the container is
    /// created and started; [`Runner::watch`] follows the rest. Any older
    /// version keeps serving until this one answers.
    pub async fn deploy(&self, d: Deployment) -> Result<(), RunError> {
        let slot = self.slot(&d.space);
        let request = GpuRequest {
            count: d.run.resources.gpus,
            model: d.run.resources.gpu_model.clone(),
        };
        let granted = {
            let mut gpus = self.inner.gpus.lock().unwrap_or_else(|p| p.into_inner());
            gpus.allocate(&d.space, &request)
        };
        let granted = match granted {
            Ok(g) => g,
            Err(refusal) => {
                let serving = slot.serving();
                slot.update(|s| {
                    if !serving {
                        s.stage = Stage::Stopped;
                    }
                    s.message = Some(format!("waiting for GPUs: {refusal}"));
                });
                return Err(refusal.into());
            }
        };
        // A version still starting is superseded, and so is a sleeping one.
        let old_pending = lock(&slot.pending).take();
        if let Some(p) = old_pending {
            if let Some(a) = &p.abort {
                a.abort();
            }
            let _ = self.inner.engine.remove_container(&p.container_id).await;
        }
        let asleep = lock(&slot.asleep).take();
        if let Some(a) = asleep {
            let _ = self.inner.engine.remove_container(&a.container_id).await;
        }
        if d.host_port.is_some() {
            // The fixed port is published once: the serving version makes way.
            let old = lock(&slot.live).take();
            if let Some(old) = old {
                if let Some(a) = &old.abort {
                    a.abort();
                }
                self.inner
                    .engine
                    .stop_container(&old.container_id, self.inner.settings.stop_grace_secs)
                    .await?;
                self.inner
                    .engine
                    .remove_container(&old.container_id)
                    .await?;
            }
        }
        let mut spec = container_spec(
            &d.space,
            &d.commit,
            &d.image,
            &d.run,
            &d.secrets,
            &granted,
            &self.inner.settings.container,
        );
        if let Some(port) = d.host_port {
            spec::fix_host_port(&mut spec, port);
        }
        // A leftover of the same name (same commit deployed again) goes.
        let live_id = slot
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|l| l.container_id.clone());
        for c in self
            .inner
            .engine
            .list_containers(&[(SPACE_LABEL.into(), d.space.to_string())])
            .await?
        {
            if c.name == spec.name && Some(&c.id) != live_id.as_ref() {
                self.inner.engine.remove_container(&c.id).await?;
            }
        }
        let spec = if live_id.is_some() && self.name_taken(&spec.name, &d.space).await? {
            // Redeploying the serving commit: the new container needs its own name.
            let mut spec = spec;
            spec.name = format!("{}-{}", spec.name, self.next_generation());
            spec
        } else {
            spec
        };
        let id = self.inner.engine.create_container(&spec).await?;
        let generation = self.next_generation();
        let version = Arc::new(Version {
            commit: d.commit.clone(),
            startup: Duration::from_secs(d.run.startup_timeout_secs),
            path: d.run.health.as_ref().map(|h| h.path.clone()),
            host_port: d.host_port,
            gpus: request,
            gpu_uuids: spec.gpu_device_ids.clone(),
            spec: Some(spec),
        });
        *lock(&slot.pending) = Some(Live {
            generation,
            container_id: id.clone(),
            abort: None,
            version: version.clone(),
        });
        let serving = slot.serving();
        slot.update(|s| {
            s.stage = if serving {
                Stage::RunningAppStarting
            } else {
                Stage::AppStarting
            };
            s.message = None;
            if !serving {
                s.container_id = Some(id.clone());
                s.commit = Some(d.commit.clone());
                s.host_port = None;
            }
            s.restarts = 0;
        });
        let task = tokio::spawn(supervise(
            self.inner.clone(),
            slot.clone(),
            d.space.clone(),
            id,
            generation,
            version,
            Begin::Start,
        ));
        if let Some(p) = slot
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            && p.generation == generation
        {
            p.abort = Some(task.abort_handle());
        }
        Ok(())
    }

    async fn name_taken(&self, name: &str, space: &SpaceId) -> Result<bool, EngineError> {
        Ok(self
            .inner
            .engine
            .list_containers(&[(SPACE_LABEL.into(), space.to_string())])
            .await?
            .iter()
            .any(|c| c.name == name))
    }

    fn next_generation(&self) -> u64 {
        self.inner
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Stops a Space (pause, delete): its containers, a sleeping one
    /// included, are stopped and removed, its GPUs freed, its stage STOPPED.
    pub async fn stop(&self, space: &SpaceId) -> Result<(), RunError> {
        let slot = self
            .existing(space)
            .ok_or_else(|| RunError::UnknownSpace(space.clone()))?;
        let _turn = slot.transition.lock().await;
        let asleep = lock(&slot.asleep).take();
        if let Some(a) = asleep {
            self.inner.engine.remove_container(&a.container_id).await?;
        }
        let taken = [
            slot.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
            slot.live.lock().unwrap_or_else(|p| p.into_inner()).take(),
        ];
        for l in taken.into_iter().flatten() {
            if let Some(a) = &l.abort {
                a.abort();
            }
            self.inner
                .engine
                .stop_container(&l.container_id, self.inner.settings.stop_grace_secs)
                .await?;
            self.inner.engine.remove_container(&l.container_id).await?;
        }
        self.inner
            .gpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(space);
        slot.update(|s| *s = SpaceStatus::new(Stage::Stopped));
        Ok(())
    }

    /// Finds the containers spaceport left (by label): running ones are
    /// kept running, their GPU allocations rebuilt from their labels and
    /// supervised again; a stopped one of a Space with none running is
    /// remembered as sleeping (the newest, as the engine lists newest
    /// first), so the next visit wakes it. Returns the Spaces adopted.
    pub async fn adopt(&self) -> Result<Vec<SpaceId>, RunError> {
        let mut filter = vec![(MANAGED_LABEL.to_owned(), "true".to_owned())];
        if let Some(instance) = &self.inner.settings.container.instance {
            filter.push((spec::INSTANCE_LABEL.to_owned(), instance.clone()));
        }
        let found = self.inner.engine.list_containers(&filter).await?;
        let (running, stopped): (Vec<_>, Vec<_>) = found.into_iter().partition(|c| c.running);
        let mut adopted = Vec::new();
        for c in stopped {
            let Some(space) = space_of(&c) else {
                continue;
            };
            if running
                .iter()
                .any(|r| r.labels.get(SPACE_LABEL) == c.labels.get(SPACE_LABEL))
                || self
                    .existing(&space)
                    .is_some_and(|s| s.serving() || s.sleeping() || lock(&s.pending).is_some())
            {
                continue;
            }
            let slot = self.slot(&space);
            let version = Arc::new(Version::from_labels(&c));
            slot.update(|s| {
                s.stage = Stage::Stopped;
                s.message = Some(SLEEPING_MESSAGE.into());
                s.container_id = Some(c.id.clone());
                s.commit = Some(version.commit.clone());
                s.host_port = None;
            });
            *lock(&slot.asleep) = Some(Asleep {
                container_id: c.id,
                version,
            });
            adopted.push(space);
        }
        for c in running {
            let Some(space) = space_of(&c) else {
                continue;
            };
            if self
                .existing(&space)
                .is_some_and(|s| s.serving() || lock(&s.pending).is_some())
            {
                // Two running versions of one Space: keep the first found.
                continue;
            }
            self.adopt_one(space.clone(), c)?;
            adopted.push(space);
        }
        Ok(adopted)
    }

    fn adopt_one(&self, space: SpaceId, c: ContainerInfo) -> Result<(), RunError> {
        let version = Arc::new(Version::from_labels(&c));
        self.inner
            .gpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .adopt(&space, &version.gpu_uuids)?;
        let slot = self.slot(&space);
        let generation = self.next_generation();
        slot.update(|s| {
            s.stage = Stage::AppStarting;
            s.container_id = Some(c.id.clone());
            s.commit = Some(version.commit.clone());
            s.host_port = c.host_port;
        });
        *lock(&slot.pending) = Some(Live {
            generation,
            container_id: c.id.clone(),
            abort: None,
            version: version.clone(),
        });
        let task = tokio::spawn(supervise(
            self.inner.clone(),
            slot.clone(),
            space,
            c.id,
            generation,
            version,
            Begin::Adopted,
        ));
        if let Some(p) = lock(&slot.pending).as_mut()
            && p.generation == generation
        {
            p.abort = Some(task.abort_handle());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
