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
pub mod spec;

pub use spec::{ContainerSettings, container_name, container_spec};

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

    /// Whether the Space sleeps: its container is stopped and kept, and
    /// [`Runner::wake`] starts it again.
    pub fn is_sleeping(&self, space: &SpaceId) -> bool {
        self.existing(space).is_some_and(|s| s.sleeping())
    }

    /// Puts a Space to sleep: its serving container is stopped (SIGTERM,
    /// then SIGKILL after the grace period) but kept, its GPUs freed, its
    /// stage STOPPED. Its supervisor goes first, so the stop is no crash.
    /// A version still starting to replace the serving one is removed; a
    /// version starting with nothing serving is the one that sleeps (the
    /// next visit starts it again). Sleeping twice is sleeping once.
    pub async fn sleep(&self, space: &SpaceId) -> Result<(), RunError> {
        let slot = self
            .existing(space)
            .ok_or_else(|| RunError::UnknownSpace(space.clone()))?;
        let _turn = slot.transition.lock().await;
        let pending = lock(&slot.pending).take();
        let live = lock(&slot.live).take();
        for l in [&pending, &live].into_iter().flatten() {
            if let Some(a) = &l.abort {
                a.abort();
            }
        }
        let (keep, cancel) = match live {
            Some(live) => (Some(live), pending),
            None => (pending, None),
        };
        if let Some(c) = cancel {
            self.inner.engine.remove_container(&c.container_id).await?;
        }
        if let Some(k) = keep {
            *lock(&slot.asleep) = Some(Asleep {
                container_id: k.container_id.clone(),
                version: k.version.clone(),
            });
            self.inner
                .engine
                .stop_container(&k.container_id, self.inner.settings.stop_grace_secs)
                .await?;
            tracing::info!(%space, container = %k.container_id, "asleep");
        }
        self.inner
            .gpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(space);
        let asleep = lock(&slot.asleep).clone();
        if let Some(a) = asleep {
            slot.update(|s| {
                s.stage = Stage::Stopped;
                s.message = Some(SLEEPING_MESSAGE.into());
                s.container_id = Some(a.container_id.clone());
                s.commit = Some(a.version.commit.clone());
                s.host_port = None;
                s.restarts = 0;
            });
        }
        Ok(())
    }

    /// Wakes a sleeping Space: takes its GPUs again, starts its container
    /// and returns once the app answers its health check (RUNNING), or
    /// with why it did not (it exited, passed its startup timeout, its
    /// GPUs are taken). A Space that serves returns at once; callers that
    /// come while a wake (or any start) is under way wait for its end.
    pub async fn wake(&self, space: &SpaceId) -> Result<(), RunError> {
        let slot = self
            .existing(space)
            .ok_or_else(|| RunError::UnknownSpace(space.clone()))?;
        let mut rx = slot.status.subscribe();
        {
            let _turn = slot.transition.lock().await;
            let asleep = lock(&slot.asleep).take();
            if let Some(a) = asleep {
                self.resume(space, &slot, a)?;
            }
        }
        loop {
            let s = rx.borrow_and_update().clone();
            match s.stage {
                Stage::Running | Stage::RunningBuilding | Stage::RunningAppStarting => {
                    return Ok(());
                }
                Stage::AppStarting => {}
                Stage::RuntimeError => {
                    return Err(RunError::WakeFailed {
                        space: space.clone(),
                        reason: s.message.unwrap_or_else(|| "the app failed".into()),
                    });
                }
                stage => {
                    return Err(RunError::NotAsleep {
                        space: space.clone(),
                        stage,
                    });
                }
            }
            if rx.changed().await.is_err() {
                return Err(RunError::UnknownSpace(space.clone()));
            }
        }
    }

    /// The part of a wake before the engine is called: GPUs, live version,
    /// stage, and the task that starts the container.
    fn resume(&self, space: &SpaceId, slot: &Arc<SpaceSlot>, a: Asleep) -> Result<(), RunError> {
        let granted = match self.regain_gpus(space, &a.version) {
            Ok(g) => g,
            Err(refusal) => {
                slot.update(|s| s.message = Some(format!("waiting for GPUs: {refusal}")));
                *lock(&slot.asleep) = Some(a);
                return Err(refusal.into());
            }
        };
        let recreate = match (granted, &a.version.spec) {
            (None, _) => None,
            (Some(gpus), Some(spec)) => {
                let mut spec = spec.clone();
                spec::set_gpus(&mut spec, &gpus);
                Some(spec)
            }
            (Some(_), None) => {
                self.inner
                    .gpus
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .release(space);
                *lock(&slot.asleep) = Some(a);
                return Err(RunError::WakeFailed {
                    space: space.clone(),
                    reason: "its GPUs went to another Space, and a container adopted after a \
                             restart cannot be created again with others: deploy it again"
                        .into(),
                });
            }
        };
        let generation = self.next_generation();
        *lock(&slot.live) = Some(Live {
            generation,
            container_id: a.container_id.clone(),
            abort: None,
            version: a.version.clone(),
        });
        slot.update(|s| {
            s.stage = Stage::AppStarting;
            s.message = None;
            s.container_id = Some(a.container_id.clone());
            s.commit = Some(a.version.commit.clone());
            s.host_port = None;
            s.restarts = 0;
        });
        let task = tokio::spawn(revive(
            self.inner.clone(),
            slot.clone(),
            space.clone(),
            a,
            generation,
            recreate,
        ));
        if let Some(l) = lock(&slot.live).as_mut()
            && l.generation == generation
        {
            l.abort = Some(task.abort_handle());
        }
        Ok(())
    }

    /// Takes the GPUs a sleeping version had again. `None`: the same ones
    /// (or none are needed); `Some`: others were granted.
    fn regain_gpus(&self, space: &SpaceId, v: &Version) -> Result<Option<Vec<GpuInfo>>, Refusal> {
        if v.gpu_uuids.is_empty() && v.gpus.count == 0 {
            return Ok(None);
        }
        let mut gpus = self.inner.gpus.lock().unwrap_or_else(|p| p.into_inner());
        if gpus.adopt(space, &v.gpu_uuids).is_ok() {
            let mut held: Vec<String> = gpus.held_by(space).into_iter().map(|g| g.uuid).collect();
            let mut want = v.gpu_uuids.clone();
            held.sort();
            want.sort();
            if held == want {
                return Ok(None);
            }
        }
        gpus.release(space);
        gpus.allocate(space, &v.gpus).map(Some)
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
            let Some(space) = c
                .labels
                .get(SPACE_LABEL)
                .and_then(|s| SpaceId::parse(s).ok())
            else {
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
            let Some(space) = c
                .labels
                .get(SPACE_LABEL)
                .and_then(|s| SpaceId::parse(s).ok())
            else {
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

/// Follows a container's output into the Space's log until it stops.
fn follow_logs<E: ContainerEngine>(
    engine: Arc<E>,
    log: Arc<LogBook>,
    id: String,
    since: i64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<String>(256);
        let pump = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                log.push(line);
            }
        });
        if let Err(e) = engine.follow_logs(&id, since, tx).await {
            tracing::warn!("failed to follow the logs of {id}: {e}");
        }
        let _ = pump.await;
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

enum Startup {
    Healthy(Option<u16>),
    Exited(i64),
    TimedOut,
}

/// Waits until the app answers on its port. With the port known
/// beforehand (a fixed host port) probing starts at once and the engine is
/// asked about the container only every `poll_interval`; otherwise every
/// round asks it (for the port, and whether the app exited).
async fn wait_healthy<E: ContainerEngine>(
    inner: &Inner<E>,
    id: &str,
    path: Option<&str>,
    timeout: Duration,
    known_port: Option<u16>,
    interval: Duration,
) -> Result<Startup, EngineError> {
    let deadline = Instant::now() + timeout;
    let mut port = known_port;
    let mut next_inspect = match (path, port) {
        (Some(_), Some(_)) => Instant::now() + inner.settings.poll_interval,
        _ => Instant::now(),
    };
    loop {
        if port.is_none() || Instant::now() >= next_inspect {
            let Some(info) = inner.engine.inspect_container(id).await? else {
                return Ok(Startup::Exited(-1));
            };
            if !info.running {
                return Ok(Startup::Exited(info.exit_code.unwrap_or(-1)));
            }
            if path.is_none() {
                return Ok(Startup::Healthy(info.host_port));
            }
            port = info.host_port.or(port);
            next_inspect = Instant::now() + inner.settings.poll_interval;
        }
        if let (Some(path), Some(port)) = (path, port)
            && health::probe(&inner.settings.container.bind_ip, port, path).await
        {
            return Ok(Startup::Healthy(Some(port)));
        }
        if Instant::now() >= deadline {
            return Ok(Startup::TimedOut);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Waits for the container to stop; returns its exit code.
async fn wait_exit<E: ContainerEngine>(inner: &Inner<E>, id: &str) -> Result<i64, EngineError> {
    loop {
        match inner.engine.inspect_container(id).await? {
            Some(info) if info.running => {}
            Some(info) => return Ok(info.exit_code.unwrap_or(-1)),
            None => return Ok(-1),
        }
        tokio::time::sleep(inner.settings.poll_interval).await;
    }
}

fn error_message(what: &str, tail: &[String]) -> String {
    if tail.is_empty() {
        what.to_owned()
    } else {
        format!("{what}. Last log lines:\n{}", tail.join("\n"))
    }
}

/// How a supervisor finds its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Begin {
    /// Created, not started.
    Start,
    /// Already running (left by an earlier process).
    Adopted,
    /// Stopped by a sleep; a visitor waits for it.
    Wake,
}

/// The start of a wake: the container again with other GPUs when its own
/// went elsewhere (`recreate`), then its supervisor.
async fn revive<E: ContainerEngine>(
    inner: Arc<Inner<E>>,
    slot: Arc<SpaceSlot>,
    space: SpaceId,
    asleep: Asleep,
    generation: u64,
    recreate: Option<ContainerSpec>,
) {
    let Asleep {
        container_id: mut id,
        mut version,
    } = asleep;
    if let Some(spec) = recreate {
        let _ = inner.engine.remove_container(&id).await;
        match inner.engine.create_container(&spec).await {
            Ok(new) => id = new,
            Err(e) => {
                let mut live = lock(&slot.live);
                if live.as_ref().is_some_and(|l| l.generation == generation) {
                    *live = None;
                }
                drop(live);
                inner
                    .gpus
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .release(&space);
                slot.update(|s| {
                    s.stage = Stage::RuntimeError;
                    s.message = Some(format!(
                        "failed to create the container again with its new GPUs: {e}"
                    ));
                    s.container_id = None;
                });
                return;
            }
        }
        version = Arc::new(Version {
            gpu_uuids: spec.gpu_device_ids.clone(),
            spec: Some(spec),
            ..(*version).clone()
        });
        if let Some(l) = lock(&slot.live).as_mut()
            && l.generation == generation
        {
            l.container_id = id.clone();
            l.version = version.clone();
        }
        slot.update(|s| s.container_id = Some(id.clone()));
    }
    supervise(inner, slot, space, id, generation, version, Begin::Wake).await;
}

/// The life of one Space version: start, health, switch, crash restarts.
async fn supervise<E: ContainerEngine>(
    inner: Arc<Inner<E>>,
    slot: Arc<SpaceSlot>,
    space: SpaceId,
    id: String,
    generation: u64,
    version: Arc<Version>,
    begin: Begin,
) {
    let commit = &version.commit;
    let startup = version.startup;
    let path = version.path.as_deref();
    let mut backoff = inner.settings.backoff_initial;
    let mut restarts = 0u32;
    let mut first = true;
    loop {
        let started_at = Instant::now();
        let adopted = begin == Begin::Adopted && first;
        let interval = if begin == Begin::Wake && first {
            inner.settings.wake_poll_interval
        } else {
            inner.settings.poll_interval
        };
        let since = if adopted { 0 } else { unix_now() };
        if !adopted {
            slot.log.push(format!(
                "===== Application Startup at {} =====",
                utc_timestamp(SystemTime::now())
            ));
            if let Err(e) = inner.engine.start_container(&id).await {
                slot.update(|s| {
                    s.stage = Stage::RuntimeError;
                    s.message = Some(format!("failed to start the container: {e}"));
                });
                return;
            }
        }
        first = false;
        let logs = follow_logs(inner.engine.clone(), slot.log.clone(), id.clone(), since);
        let is_live = slot
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|l| l.generation == generation);
        let result = wait_healthy(&inner, &id, path, startup, version.host_port, interval).await;
        let failure = match result {
            Ok(Startup::Healthy(port)) => {
                // The new version takes over first (its address is
                // published to whoever routes), then the old one drains
                // and goes: no window where the Space's URL fails.
                let replaced = if is_live {
                    None
                } else {
                    promote(&slot, generation)
                };
                slot.update(|s| {
                    s.stage = Stage::Running;
                    s.message = None;
                    s.container_id = Some(id.clone());
                    s.host_port = port;
                    s.commit = Some(commit.clone());
                    s.restarts = restarts;
                });
                if let Some(old) = replaced {
                    retire(&inner, old).await;
                }
                tracing::info!(%space, %commit, "running");
                match wait_exit(&inner, &id).await {
                    Ok(code) => format!("the app exited with code {code}"),
                    Err(e) => format!("lost track of the container: {e}"),
                }
            }
            Ok(Startup::Exited(code)) => format!("the app exited with code {code} while starting"),
            Ok(Startup::TimedOut) => {
                let _ = inner
                    .engine
                    .stop_container(&id, inner.settings.stop_grace_secs)
                    .await;
                format!(
                    "the app did not answer within its startup timeout of {} s",
                    startup.as_secs()
                )
            }
            Err(e) => format!("lost track of the container: {e}"),
        };
        // Every line up to the exit is in the log before the tail is taken.
        let _ = tokio::time::timeout(Duration::from_secs(10), logs).await;
        let tail = slot.log.tail(inner.settings.error_tail_lines);
        let was_live = slot
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|l| l.generation == generation);
        if !was_live {
            // It never served: a failed start of a version. An older live
            // version, if any, keeps serving.
            *slot.pending.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let serving = slot.serving();
            slot.update(|s| {
                if serving {
                    s.stage = Stage::Running;
                    s.message = Some(error_message(
                        &format!("the new version {commit} did not start: {failure}"),
                        &tail,
                    ));
                } else {
                    s.stage = Stage::RuntimeError;
                    s.message = Some(error_message(&failure, &tail));
                }
            });
            return;
        }
        // A crash of the serving version: RUNTIME_ERROR until it is back.
        restarts += 1;
        if started_at.elapsed() >= inner.settings.backoff_reset_after {
            backoff = inner.settings.backoff_initial;
        }
        slot.update(|s| {
            s.stage = Stage::RuntimeError;
            s.message = Some(error_message(
                &format!("{failure}; restarting in {} s", backoff.as_secs_f64()),
                &tail,
            ));
            s.restarts = restarts;
        });
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(inner.settings.backoff_max);
        slot.update(|s| s.stage = Stage::AppStarting);
    }
}

/// Makes the pending version `generation` the live one; returns the
/// version it replaces, for [`retire`].
fn promote(slot: &SpaceSlot, generation: u64) -> Option<Live> {
    let new = {
        let mut pending = slot.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.as_ref() {
            Some(p) if p.generation == generation => pending.take(),
            _ => None,
        }
    }?;
    slot.live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .replace(new)
}

/// Stops and removes a replaced version once requests already sent to it
/// have had `drain` to finish.
async fn retire<E: ContainerEngine>(inner: &Inner<E>, old: Live) {
    if let Some(a) = &old.abort {
        a.abort();
    }
    tokio::time::sleep(inner.settings.drain).await;
    let _ = inner
        .engine
        .stop_container(&old.container_id, inner.settings.stop_grace_secs)
        .await;
    let _ = inner.engine.remove_container(&old.container_id).await;
}

#[cfg(test)]
mod tests;
