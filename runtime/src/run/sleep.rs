//! Sleep and wake: a sleeping Space's container is stopped and kept, and
//! a wake starts that same container again (or, when its GPUs went to
//! another Space meanwhile, a new one from the remembered spec).

use super::*;

impl<E: ContainerEngine> Runner<E> {
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
}
