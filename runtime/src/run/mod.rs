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
//! It must not build images or parse configuration; it starts what it is
//! given and reports what it sees.

pub mod health;
pub mod spec;

pub use spec::{ContainerSettings, container_name, container_spec};

use crate::build::{LogBook, SPACE_LABEL, utc_timestamp};
use crate::engine::{ContainerEngine, ContainerInfo, EngineError, MANAGED_LABEL};
use crate::gpu::{GpuAllocator, GpuRequest, Refusal};
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
}

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

/// The serving version of a Space.
#[derive(Debug, Clone)]
struct Live {
    generation: u64,
    container_id: String,
    abort: Option<AbortHandle>,
}

#[derive(Debug)]
struct SpaceSlot {
    status: watch::Sender<SpaceStatus>,
    log: Arc<LogBook>,
    live: Mutex<Option<Live>>,
    /// The version starting to replace `live` (generation, container, task).
    pending: Mutex<Option<Live>>,
}

impl SpaceSlot {
    fn serving(&self) -> bool {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
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
        slot.update(|s| {
            s.stage = if serving {
                Stage::Running
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
        // A version still starting is superseded.
        let old_pending = slot
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(p) = old_pending {
            if let Some(a) = &p.abort {
                a.abort();
            }
            let _ = self.inner.engine.remove_container(&p.container_id).await;
        }
        let spec = container_spec(
            &d.space,
            &d.commit,
            &d.image,
            &d.run,
            &d.secrets,
            &granted,
            &self.inner.settings.container,
        );
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
        *slot.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(Live {
            generation,
            container_id: id.clone(),
            abort: None,
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
        let startup = Duration::from_secs(d.run.startup_timeout_secs);
        let path = d.run.health.as_ref().map(|h| h.path.clone());
        let task = tokio::spawn(supervise(
            self.inner.clone(),
            slot.clone(),
            d.space.clone(),
            d.commit.clone(),
            id,
            generation,
            startup,
            path,
            false,
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

    /// Stops a Space (sleep, pause, delete): its containers are stopped
    /// and removed, its GPUs freed, its stage STOPPED.
    pub async fn stop(&self, space: &SpaceId) -> Result<(), RunError> {
        let slot = self
            .existing(space)
            .ok_or_else(|| RunError::UnknownSpace(space.clone()))?;
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

    /// Finds the containers spaceport left running (by label), keeps them
    /// running, rebuilds their GPU allocations from their labels and
    /// supervises them again. Returns the Spaces adopted.
    pub async fn adopt(&self) -> Result<Vec<SpaceId>, RunError> {
        let found = self
            .inner
            .engine
            .list_containers(&[(MANAGED_LABEL.into(), "true".into())])
            .await?;
        let mut adopted = Vec::new();
        for c in found.into_iter().filter(|c| c.running) {
            let Some(space) = c
                .labels
                .get(SPACE_LABEL)
                .and_then(|s| SpaceId::parse(s).ok())
            else {
                continue;
            };
            if self.existing(&space).is_some_and(|s| s.serving()) {
                // Two running versions of one Space: keep the first found.
                continue;
            }
            self.adopt_one(space.clone(), c)?;
            adopted.push(space);
        }
        Ok(adopted)
    }

    fn adopt_one(&self, space: SpaceId, c: ContainerInfo) -> Result<(), RunError> {
        let uuids: Vec<String> = c
            .labels
            .get(spec::GPUS_LABEL)
            .map(|s| {
                s.split(',')
                    .filter(|u| !u.is_empty())
                    .map(Into::into)
                    .collect()
            })
            .unwrap_or_default();
        self.inner
            .gpus
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .adopt(&space, &uuids)?;
        let slot = self.slot(&space);
        let commit = c.labels.get(crate::build::COMMIT_LABEL).cloned();
        let startup = c
            .labels
            .get(spec::STARTUP_LABEL)
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(30 * 60));
        let path = c
            .labels
            .get(spec::HEALTH_LABEL)
            .cloned()
            .or_else(|| c.labels.contains_key(spec::PORT_LABEL).then(|| "/".into()));
        let generation = self.next_generation();
        slot.update(|s| {
            s.stage = Stage::AppStarting;
            s.container_id = Some(c.id.clone());
            s.commit = commit.clone();
            s.host_port = c.host_port;
        });
        *slot.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(Live {
            generation,
            container_id: c.id.clone(),
            abort: None,
        });
        let task = tokio::spawn(supervise(
            self.inner.clone(),
            slot.clone(),
            space,
            commit.unwrap_or_default(),
            c.id,
            generation,
            startup,
            path,
            true,
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

async fn wait_healthy<E: ContainerEngine>(
    inner: &Inner<E>,
    id: &str,
    path: Option<&str>,
    timeout: Duration,
) -> Result<Startup, EngineError> {
    let deadline = Instant::now() + timeout;
    loop {
        let info = inner.engine.inspect_container(id).await?;
        let Some(info) = info else {
            return Ok(Startup::Exited(-1));
        };
        if !info.running {
            return Ok(Startup::Exited(info.exit_code.unwrap_or(-1)));
        }
        match (path, info.host_port) {
            (None, _) => return Ok(Startup::Healthy(info.host_port)),
            (Some(path), Some(port)) => {
                if health::probe(&inner.settings.container.bind_ip, port, path).await {
                    return Ok(Startup::Healthy(Some(port)));
                }
            }
            (Some(_), None) => {}
        }
        if Instant::now() >= deadline {
            return Ok(Startup::TimedOut);
        }
        tokio::time::sleep(inner.settings.poll_interval).await;
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

/// The life of one Space version: start, health, switch, crash restarts.
#[allow(
    clippy::too_many_arguments,
    reason = "one task's whole context, passed once"
)]
async fn supervise<E: ContainerEngine>(
    inner: Arc<Inner<E>>,
    slot: Arc<SpaceSlot>,
    space: SpaceId,
    commit: String,
    id: String,
    generation: u64,
    startup: Duration,
    path: Option<String>,
    adopted: bool,
) {
    let mut backoff = inner.settings.backoff_initial;
    let mut restarts = 0u32;
    let mut first = true;
    loop {
        let started_at = Instant::now();
        let since = if adopted && first { 0 } else { unix_now() };
        if !(adopted && first) {
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
        let result = wait_healthy(&inner, &id, path.as_deref(), startup).await;
        let failure = match result {
            Ok(Startup::Healthy(port)) => {
                if !is_live {
                    switch_to(&inner, &slot, generation).await;
                }
                slot.update(|s| {
                    s.stage = Stage::Running;
                    s.message = None;
                    s.container_id = Some(id.clone());
                    s.host_port = port;
                    s.commit = Some(commit.clone());
                    s.restarts = restarts;
                });
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

/// Makes the pending version `generation` the live one and removes the
/// version it replaces.
async fn switch_to<E: ContainerEngine>(inner: &Inner<E>, slot: &SpaceSlot, generation: u64) {
    let new = {
        let mut pending = slot.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.as_ref() {
            Some(p) if p.generation == generation => pending.take(),
            _ => None,
        }
    };
    let Some(new) = new else { return };
    let old = slot
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .replace(new);
    if let Some(old) = old {
        if let Some(a) = &old.abort {
            a.abort();
        }
        let _ = inner
            .engine
            .stop_container(&old.container_id, inner.settings.stop_grace_secs)
            .await;
        let _ = inner.engine.remove_container(&old.container_id).await;
    }
}

#[cfg(test)]
mod tests;
