//! The stage of a Space as the API reports it, from what the hub, the
//! runner and the database each know.

use super::{Hub, Serving};
use crate::engine::ContainerEngine;
use crate::plan::SpaceId;
use crate::stage::Stage;
use crate::state::Repo;

/// A Space's state, as `GET /api/spaces/{id}/runtime` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceView {
    pub stage: Stage,
    /// Why the Space is not running, or other words for its owner.
    pub message: Option<String>,
    /// The commit that serves (or is being prepared).
    pub commit: Option<String>,
    /// The flavor it runs on now (None when nothing runs).
    pub hardware_current: Option<String>,
    /// The flavor its owner asked for (or the default).
    pub hardware_requested: String,
    /// Seconds of inactivity before it sleeps; -1: never.
    pub sleep_time: i64,
}

/// The stage from its parts; pure, for tests.
pub fn resolve_stage(
    paused: bool,
    phase: Option<(Stage, Option<String>)>,
    serving: &Serving,
    runner: Option<(Stage, Option<String>)>,
    has_commit: bool,
) -> (Stage, Option<String>) {
    if paused {
        return (
            Stage::Paused,
            Some("paused by its owner; a restart starts it again".into()),
        );
    }
    if let Some((stage, message)) = phase {
        return (stage, message);
    }
    match serving {
        Serving::Static(_) => (Stage::Running, None),
        Serving::Container => {
            runner.unwrap_or((Stage::Stopped, Some("the container is gone".into())))
        }
        Serving::Nothing => match runner {
            // A build in progress (or failed) is tracked by the runner.
            Some(s) => s,
            None if has_commit => (Stage::Stopped, None),
            None => (
                Stage::NoAppFile,
                Some("the repo is empty: push a README.md and the app to main".into()),
            ),
        },
    }
}

impl<E: ContainerEngine> Hub<E> {
    /// The Space's state now.
    pub fn view(&self, repo: &Repo) -> SpaceView {
        let space = &repo.id;
        let entry = self.entry(space);
        let remote = self.backend().and_then(|b| b.status(space));
        let runner = match (self.backend(), &remote) {
            (Some(_), Some(s)) => Some((s.stage, s.message.clone())),
            // Handed over, not reported on yet.
            (Some(_), None) if repo.settings.commit.is_some() && !repo.settings.paused => Some((
                Stage::Building,
                Some("waiting for the cluster to report on the Space".into()),
            )),
            (Some(_), None) => None,
            (None, _) => self
                .inner
                .runner
                .status(space)
                .map(|s| (s.stage, s.message)),
        };
        let serving = entry.serving();
        let (stage, message) = resolve_stage(
            repo.settings.paused,
            entry.phase(),
            &serving,
            runner,
            repo.settings.commit.is_some(),
        );
        let requested = repo
            .settings
            .hardware
            .clone()
            .unwrap_or_else(|| self.inner.config.plan.default_flavor.clone());
        let current = matches!(
            stage,
            Stage::Running
                | Stage::RunningBuilding
                | Stage::RunningAppStarting
                | Stage::AppStarting
        )
        .then(|| match serving {
            Serving::Static(_) => self.inner.config.plan.default_flavor.clone(),
            _ => requested.clone(),
        });
        let commit = match &serving {
            _ if self.backend().is_some() => remote
                .and_then(|s| s.commit)
                .or_else(|| repo.settings.commit.clone()),
            Serving::Static(c) => Some(c.clone()),
            _ => self
                .inner
                .runner
                .status(space)
                .and_then(|s| s.commit)
                .or_else(|| repo.settings.commit.clone()),
        };
        SpaceView {
            stage,
            message,
            commit,
            hardware_current: current,
            hardware_requested: requested,
            sleep_time: self.sleep_time(repo),
        }
    }

    /// The sleep time that applies to a Space.
    pub fn sleep_time(&self, repo: &Repo) -> i64 {
        repo.settings
            .sleep_time
            .unwrap_or(self.inner.config.default_sleep_secs)
    }

    /// The current view of a Space by id, when it exists.
    pub fn view_of(&self, space: &SpaceId) -> Option<SpaceView> {
        let repo = self
            .inner
            .store
            .repo(crate::repos::RepoKind::Space, space)
            .ok()
            .flatten()?;
        Some(self.view(&repo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_wins_then_the_hub_phase_then_what_serves() {
        let phase = Some((Stage::ConfigError, Some("README.md:2:1".into())));
        assert_eq!(
            resolve_stage(true, phase.clone(), &Serving::Container, None, true).0,
            Stage::Paused
        );
        assert_eq!(
            resolve_stage(false, phase, &Serving::Container, None, true).0,
            Stage::ConfigError
        );
        assert_eq!(
            resolve_stage(false, None, &Serving::Static("c".into()), None, true).0,
            Stage::Running
        );
        assert_eq!(
            resolve_stage(
                false,
                None,
                &Serving::Container,
                Some((Stage::AppStarting, None)),
                true
            )
            .0,
            Stage::AppStarting
        );
        assert_eq!(
            resolve_stage(false, None, &Serving::Nothing, None, false).0,
            Stage::NoAppFile
        );
        assert_eq!(
            resolve_stage(false, None, &Serving::Nothing, None, true).0,
            Stage::Stopped
        );
    }
}
