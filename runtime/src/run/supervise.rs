//! The life of one container: start, health checks until it answers,
//! switching traffic to it, following its logs, restarts with backoff when
//! it exits, and retiring the version it replaced.

use super::*;

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
pub(super) enum Begin {
    /// Created, not started.
    Start,
    /// Already running (left by an earlier process).
    Adopted,
    /// Stopped by a sleep; a visitor waits for it.
    Wake,
}

/// The start of a wake: the container again with other GPUs when its own
/// went elsewhere (`recreate`), then its supervisor.
pub(super) async fn revive<E: ContainerEngine>(
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
pub(super) async fn supervise<E: ContainerEngine>(
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
