//! Idle Spaces sleep; the next visit wakes them.
//!
//! The proxy tracks each Space's activity (time since the last request,
//! requests in flight, open WebSockets and streams). A Space whose sleep
//! time has passed with nothing in flight and no stream open is put to
//! sleep: its container is stopped but kept, its GPUs freed, its stage
//! STOPPED, and its route marked stopped, so the proxy holds the next
//! visitor's request and calls [`Hub::wake`].

use std::time::Duration;

use spaceport_proxy::Activity;

use super::{Hub, Serving};
use crate::engine::ContainerEngine;
use crate::plan::SpaceId;
use crate::repos::RepoKind;
use crate::stage::Stage;

/// Whether a Space with this activity and sleep time should sleep now.
/// Pure, for tests.
pub fn should_sleep(sleep_time: i64, activity: &Activity) -> bool {
    sleep_time > 0
        && activity.in_flight <= 0
        && activity.open_streams <= 0
        && activity.idle_for >= Duration::from_secs(sleep_time as u64)
}

impl<E: ContainerEngine> Hub<E> {
    /// Puts idle Spaces to sleep, every `sleep_check`, until the process ends.
    pub fn spawn_sleeper(&self) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(hub.inner.config.sleep_check);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                hub.sleep_idle().await;
            }
        })
    }

    /// One pass of the sleeper.
    pub async fn sleep_idle(&self) {
        let Some(proxy) = self.proxy() else { return };
        let Ok(repos) = self.inner.store.repos(RepoKind::Space) else {
            return;
        };
        for repo in repos {
            let space = &repo.id;
            if self.entry(space).serving() != Serving::Container {
                continue;
            }
            let running = self
                .inner
                .runner
                .status(space)
                .is_some_and(|s| s.stage == Stage::Running);
            if !running {
                continue;
            }
            let Some(activity) = proxy.activity(&space.to_route_id()) else {
                continue;
            };
            if should_sleep(self.sleep_time(&repo), &activity) {
                tracing::info!(%space, idle = ?activity.idle_for, "space idle; putting it to sleep");
                if let Err(e) = self.inner.runner.sleep(space).await {
                    tracing::warn!(%space, error = %e, "failed to put the space to sleep");
                }
                self.entry(space).bump();
                self.refresh_routes();
            }
        }
    }

    /// Wakes a Space for a visitor: returns once it answers, or why not.
    pub async fn wake(&self, space: &SpaceId) -> Result<(), String> {
        let repo = self.space_repo(space)?;
        if repo.settings.paused {
            return Err("this Space is paused by its owner".into());
        }
        let space = &repo.id;
        let entry = self.entry(space);
        if self.inner.runner.is_sleeping(space) {
            let result = self.inner.runner.wake(space).await;
            entry.bump();
            self.refresh_routes();
            return result.map_err(|e| e.to_string());
        }
        let view = self.view(&repo);
        match view.stage {
            Stage::Running | Stage::RunningBuilding | Stage::RunningAppStarting => {
                self.refresh_routes();
                Ok(())
            }
            Stage::Building | Stage::AppStarting => {
                self.wait_running(space, Duration::from_secs(600)).await
            }
            Stage::Stopped => {
                // Nothing kept to start (the hub restarted without its
                // container, say): deploy again and wait.
                self.deploy(space, super::deploy::Reason::Recover).await?;
                self.wait_running(space, Duration::from_secs(600)).await
            }
            other => Err(format!(
                "the Space is {other}: {}",
                view.message.unwrap_or_else(|| "see its page".into())
            )),
        }
    }

    /// Waits until the Space runs, fails, or `limit` passes.
    pub async fn wait_running(&self, space: &SpaceId, limit: Duration) -> Result<(), String> {
        let mut changes = self.changes(space);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let view = self
                .view_of(space)
                .ok_or_else(|| format!("no Space {space}"))?;
            match view.stage {
                Stage::Running => {
                    self.refresh_routes();
                    return Ok(());
                }
                Stage::BuildError
                | Stage::RuntimeError
                | Stage::ConfigError
                | Stage::NoAppFile
                | Stage::Paused => {
                    return Err(format!(
                        "the Space is {}: {}",
                        view.stage,
                        view.message.unwrap_or_default()
                    ));
                }
                _ => {}
            }
            // Runner changes are forwarded to `changes` by the follower;
            // poll as well, in case the stage moved without a bump.
            let wait = tokio::time::timeout(Duration::from_millis(250), changes.changed());
            if tokio::time::timeout_at(deadline, wait).await.is_err() {
                return Err(format!("the Space did not start within {limit:?}"));
            }
        }
    }
}

/// The proxy's waker, backed by the hub.
#[derive(Debug)]
pub struct HubWaker<E>(pub Hub<E>);

impl<E: ContainerEngine> spaceport_proxy::Waker for HubWaker<E> {
    fn wake<'a>(
        &'a self,
        space: &'a spaceport_proxy::SpaceId,
    ) -> spaceport_proxy::BoxFuture<'a, Result<(), spaceport_proxy::WakeError>> {
        Box::pin(async move {
            let id = SpaceId::parse(&space.to_string())
                .map_err(|e| spaceport_proxy::WakeError(e.to_string()))?;
            self.0.wake(&id).await.map_err(spaceport_proxy::WakeError)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(idle: u64, in_flight: i64, streams: i64) -> Activity {
        Activity {
            idle_for: Duration::from_secs(idle),
            in_flight,
            open_streams: streams,
        }
    }

    #[test]
    fn sleeps_only_when_idle_long_enough_with_nothing_open() {
        assert!(should_sleep(60, &activity(61, 0, 0)));
        assert!(!should_sleep(60, &activity(59, 0, 0)));
        assert!(
            !should_sleep(60, &activity(600, 1, 0)),
            "a request in flight"
        );
        assert!(!should_sleep(60, &activity(600, 0, 1)), "a websocket open");
        assert!(!should_sleep(-1, &activity(1_000_000, 0, 0)), "never");
        assert!(!should_sleep(0, &activity(1_000_000, 0, 0)));
    }
}
