//! The seam between the hub and whatever runs its Spaces somewhere else.
//!
//! By default the hub builds and runs Spaces itself ([`super::deploy`]: the
//! Builder and the Runner on the local Docker engine or as processes). A hub
//! given a [`SpaceBackend`] (with [`Hub::attach_backend`]) keeps the repos,
//! git push, the API and the web UI, and hands each Space's desired state to
//! the backend instead: which commit runs, with which settings, paused or
//! not. The backend reports each Space's stage back, and tells the hub when
//! it changes, so the API and the UI follow it as they follow the Runner.
//!
//! The backend must not read the hub's database or repos; everything it
//! needs comes in a [`Deploy`]. The hub must not assume a backend can give
//! logs: [`Logs::Unavailable`] says so with words for the user.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use tokio::sync::broadcast;

use super::{Hub, Inner};
use crate::build::LogBook;
use crate::engine::{
    ContainerEngine, ContainerInfo, ContainerSpec, ContextStream, EngineError, ImageBuildSpec,
    LogSender,
};
use crate::plan::{ApiVolume, SpaceId};
use crate::stage::Stage;

pub use spaceport_proxy::Visibility;

/// A future a backend returns.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// Why a backend refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The request cannot be carried out as asked (a name taken by
    /// another Space, a setting the backend cannot express); retrying
    /// does not help.
    #[error("{0}")]
    Refused(String),
    /// The backend could not be reached or failed; a retry may work.
    #[error("{0}")]
    Failed(String),
}

/// Whether a deploy also restarts what runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Run the commit; restart only if the commit or the settings differ.
    No,
    /// Restart even if nothing changed.
    Yes,
    /// Rebuild without the image cache, then restart.
    Factory,
}

/// The desired state of one Space: everything a backend needs to run it.
#[derive(Clone, PartialEq, Eq)]
pub struct Deploy {
    pub space: SpaceId,
    /// The full commit id of main to build and run.
    pub commit: String,
    /// The hardware flavor asked for; `None`: the backend's default.
    pub hardware: Option<String>,
    /// Idle seconds before it sleeps; -1: never.
    pub sleep_time: i64,
    pub visibility: Visibility,
    /// Paused by its owner: nothing runs until a deploy with `false`.
    pub paused: bool,
    pub variables: BTreeMap<String, String>,
    /// Secret values by name (environment variables and build secrets).
    pub secrets: BTreeMap<String, String>,
    /// Hub repos mounted read-only.
    pub volumes: Vec<ApiVolume>,
    pub restart: Restart,
}

impl fmt::Debug for Deploy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secret values never reach a log line.
        f.debug_struct("Deploy")
            .field("space", &self.space)
            .field("commit", &self.commit)
            .field("hardware", &self.hardware)
            .field("sleep_time", &self.sleep_time)
            .field("visibility", &self.visibility)
            .field("paused", &self.paused)
            .field("variables", &self.variables)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("volumes", &self.volumes)
            .field("restart", &self.restart)
            .finish()
    }
}

/// What a backend knows about one Space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    pub stage: Stage,
    /// Why it is in its stage, for its owner.
    pub message: Option<String>,
    /// The commit that runs (or was last built).
    pub commit: Option<String>,
    /// Where the app is served, when the backend says.
    pub url: Option<String>,
}

/// Which log of a Space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Build,
    Run,
}

/// A log, or why there is none to give.
#[derive(Debug, Clone)]
pub enum Logs {
    /// Its lines so far, and those to come.
    Book(Arc<LogBook>),
    /// This backend cannot give this log; the words say where to look.
    Unavailable(String),
}

/// What the hub needs from whatever runs its Spaces elsewhere.
pub trait SpaceBackend: Send + Sync + fmt::Debug + 'static {
    /// Makes the Space's desired state this one (run this commit with these
    /// settings; a paused one stops). Returns once the backend has it, not
    /// once the Space runs: the stage tells that.
    fn deploy(&self, deploy: Deploy) -> BackendFuture<'_, ()>;

    /// Removes everything the backend keeps for the Space. A Space it never
    /// knew is not an error.
    fn delete<'a>(&'a self, space: &'a SpaceId) -> BackendFuture<'a, ()>;

    /// The Space's stage now, or `None` when the backend knows nothing of it.
    fn status(&self, space: &SpaceId) -> Option<BackendStatus>;

    /// Tells of every Space whose status changes, by id.
    fn subscribe(&self) -> broadcast::Receiver<SpaceId>;

    /// A Space's build or run log.
    fn logs(&self, space: &SpaceId, kind: LogKind) -> Logs;
}

impl<E: ContainerEngine> Hub<E> {
    /// Runs the Spaces on `backend` from now on instead of the local Builder
    /// and Runner. Call it once, before serving; later calls are ignored.
    pub fn attach_backend(&self, backend: Arc<dyn SpaceBackend>) {
        let mut changes = backend.subscribe();
        if self.inner.backend.set(backend).is_err() {
            return;
        }
        let hub: Weak<Inner<E>> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let space = match changes.recv().await {
                    Ok(space) => Some(space),
                    // Missed some: everyone may have changed.
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(inner) = hub.upgrade() else { return };
                let hub = Hub { inner };
                match space {
                    Some(space) => hub.entry(&space).bump(),
                    None => {
                        let entries: Vec<_> = hub
                            .inner
                            .spaces
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .values()
                            .cloned()
                            .collect();
                        entries.iter().for_each(|e| e.bump());
                    }
                }
            }
        });
    }

    /// The backend the Spaces run on, when it is not this machine.
    pub fn backend(&self) -> Option<&Arc<dyn SpaceBackend>> {
        self.inner.backend.get()
    }

    /// The desired state of a Space from the database, for the backend;
    /// `None` when it has no commit yet.
    pub(crate) fn desired(
        &self,
        repo: &crate::state::Repo,
        restart: Restart,
    ) -> Result<Option<Deploy>, String> {
        let Some(commit) = repo.settings.commit.clone() else {
            return Ok(None);
        };
        let space = &repo.id;
        let store = &self.inner.store;
        let variables = store
            .variables(space)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|v| (v.key, v.value))
            .collect();
        let secrets = store.secret_values(space).map_err(|e| e.to_string())?;
        Ok(Some(Deploy {
            space: space.clone(),
            commit,
            hardware: repo.settings.hardware.clone(),
            sleep_time: self.sleep_time(repo),
            visibility: repo.visibility,
            paused: repo.settings.paused,
            variables,
            secrets,
            volumes: repo.settings.volumes.clone(),
            restart,
        }))
    }

    /// Hands the Space's desired state to the backend; a refusal or a
    /// failure becomes its stage, so its owner sees why.
    pub(crate) async fn deploy_remote(
        &self,
        backend: &Arc<dyn SpaceBackend>,
        space: &SpaceId,
        restart: Restart,
    ) -> Result<(), String> {
        let entry = self.entry(space);
        let repo = self.space_repo(space)?;
        let Some(deploy) = self.desired(&repo, restart)? else {
            if !repo.settings.paused {
                entry.set_phase(Some((
                    Stage::NoAppFile,
                    Some("the repo is empty: push a README.md and the app to main".into()),
                )));
            }
            return Ok(());
        };
        match backend.deploy(deploy).await {
            Ok(()) => {
                entry.set_phase(None);
                Ok(())
            }
            Err(e) => {
                let stage = match e {
                    BackendError::Refused(_) => Stage::ConfigError,
                    BackendError::Failed(_) => Stage::RuntimeError,
                };
                let msg = format!("failed to hand the Space to the cluster: {e}");
                entry.set_phase(Some((stage, Some(msg.clone()))));
                Err(msg)
            }
        }
    }

    /// Settings the backend keeps changed (sleep time, visibility): hands
    /// it the new desired state, without a restart. Nothing to do locally,
    /// where the hub reads them from the database when it needs them.
    pub fn settings_synced(&self, space: &SpaceId) {
        let Some(backend) = self.backend().cloned() else {
            return;
        };
        let hub = self.clone();
        let space = space.clone();
        tokio::spawn(async move {
            let entry = hub.entry(&space);
            let _one_at_a_time = entry.deploying.lock().await;
            if let Err(e) = hub.deploy_remote(&backend, &space, Restart::No).await {
                tracing::warn!(%space, error = %e, "failed to update the Space's settings");
            }
        });
    }
}

/// The container engine of a hub whose Spaces all run on a
/// [`SpaceBackend`]: it has none, and says so if asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEngine;

fn no_engine<T>() -> crate::engine::Result<T> {
    Err(EngineError::Unavailable(
        "this hub has no container engine: its Spaces run on its backend".into(),
    ))
}

impl ContainerEngine for NoEngine {
    async fn build_image(
        &self,
        _spec: ImageBuildSpec,
        _context: ContextStream,
        _log: LogSender,
    ) -> crate::engine::Result<()> {
        no_engine()
    }

    async fn image_exists(&self, _tag: &str) -> crate::engine::Result<bool> {
        no_engine()
    }

    async fn remove_image(&self, _tag: &str) -> crate::engine::Result<()> {
        no_engine()
    }

    async fn create_container(&self, _spec: &ContainerSpec) -> crate::engine::Result<String> {
        no_engine()
    }

    async fn start_container(&self, _id: &str) -> crate::engine::Result<()> {
        no_engine()
    }

    async fn stop_container(&self, _id: &str, _grace_secs: u32) -> crate::engine::Result<()> {
        no_engine()
    }

    async fn remove_container(&self, _id: &str) -> crate::engine::Result<()> {
        no_engine()
    }

    async fn inspect_container(&self, _id: &str) -> crate::engine::Result<Option<ContainerInfo>> {
        Ok(None)
    }

    async fn list_containers(
        &self,
        _labels: &[(String, String)],
    ) -> crate::engine::Result<Vec<ContainerInfo>> {
        Ok(Vec::new())
    }

    async fn copy_out(
        &self,
        _id: &str,
        _path: &str,
        _dest: &std::path::Path,
        _max_bytes: u64,
    ) -> crate::engine::Result<()> {
        no_engine()
    }

    async fn follow_logs(
        &self,
        _id: &str,
        _since: i64,
        _log: LogSender,
    ) -> crate::engine::Result<()> {
        no_engine()
    }
}
