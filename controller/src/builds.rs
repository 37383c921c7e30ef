//! The builds the controller has in flight: at most one per Space, each
//! with its log, started by the reconcile and reported back to the Space's
//! status when it ends.
//!
//! The reconcile decides a build is due ([`due`], pure); [`Builds::start`]
//! runs it on its own task so a long build never holds a reconcile worker.
//! The task writes the outcome to the status (a merge patch, so it does not
//! take the reconcile's fields) only after the reconcile that started it
//! has written its own status, so the older status can never overwrite the
//! outcome. The status change wakes the reconcile, which rolls out the image.

use crate::build::{BuildError, BuildJob, Built, ImageBuilder};
use crate::crd::{BuildResult, BuildStatus, REBUILD_ANNOTATION, Space};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use spaceport_runtime::build::LogBook;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Log lines kept per build.
const LOG_LINES: usize = 5000;

/// The commit a Space should be built at, if a build is due: its source is
/// at a commit (the annotation) that it has not built, and no build of that
/// commit has been started or has ended. A prebuilt image is never built.
pub fn due(space: &Space) -> Option<String> {
    if space.spec.source.image.is_some() {
        return None;
    }
    let commit = crate::source::api::annotated_commit(space)?
        .trim()
        .to_owned();
    if commit.is_empty() {
        return None;
    }
    let status = space.status.as_ref();
    if rebuild_asked(space) {
        return Some(commit);
    }
    if status.and_then(|s| s.observed_commit.as_deref()) == Some(commit.as_str()) {
        return None;
    }
    let tried = status
        .and_then(|s| s.build.as_ref())
        .is_some_and(|b| b.commit == commit && b.result != BuildResult::Running);
    (!tried).then_some(commit)
}

/// Whether the owner asked for a factory rebuild after the latest build
/// started (or before any build).
pub fn rebuild_asked(space: &Space) -> bool {
    let time = |t: Option<&String>| t.and_then(|t| t.parse::<Timestamp>().ok());
    let Some(asked) = time(space.annotations().get(REBUILD_ANNOTATION)) else {
        return false;
    };
    let started = space
        .status
        .as_ref()
        .and_then(|s| s.build.as_ref())
        .and_then(|b| time(b.started.as_ref()));
    started.is_none_or(|started| asked > started)
}

/// A build in flight.
#[derive(Debug)]
struct InFlight {
    commit: String,
    task: tokio::task::JoinHandle<()>,
}

/// The builds in flight and the latest log of each Space.
#[derive(Default)]
pub struct Builds {
    builder: Option<Arc<dyn ImageBuilder>>,
    running: Mutex<HashMap<String, InFlight>>,
    logs: Mutex<HashMap<String, Arc<LogBook>>>,
    /// The latest outcome per Space, kept so that a reconcile working from
    /// a cache older than the outcome's status patch writes it again
    /// rather than over it.
    outcomes: Arc<Mutex<HashMap<String, Outcome>>>,
}

/// How a build ended, and when.
#[derive(Debug, Clone)]
struct Outcome {
    result: Result<Built, BuildError>,
    commit: String,
    finished: String,
}

impl std::fmt::Debug for Builds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builds")
            .field("builder", &self.builder.is_some())
            .finish_non_exhaustive()
    }
}

/// `namespace/name`, the key of a Space here.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Tells the build task that the reconcile wrote its status; dropping it
/// says the same.
#[derive(Debug)]
pub struct StatusWritten(#[allow(dead_code)] oneshot::Sender<()>);

impl Builds {
    pub fn new(builder: Option<Arc<dyn ImageBuilder>>) -> Self {
        Builds {
            builder,
            ..Builds::default()
        }
    }

    /// Whether this controller can build at all.
    pub fn can_build(&self) -> bool {
        self.builder.is_some()
    }

    /// The commit being built for a Space, if any.
    pub fn in_flight(&self, key: &str) -> Option<String> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .get(key)
            .filter(|b| !b.task.is_finished())
            .map(|b| b.commit.clone())
    }

    /// The latest build log of a Space.
    pub fn log(&self, key: &str) -> Option<Arc<LogBook>> {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        logs.get(key).cloned()
    }

    /// Cancels a Space's build (it was deleted or a newer commit came).
    pub fn cancel(&self, key: &str) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = running.remove(key) {
            b.task.abort();
        }
    }

    /// Starts a build of `job`, replacing one in flight for the same Space.
    /// Returns the handle to give back once the status is written, or
    /// `None` when there is no builder.
    pub fn start(&self, client: Client, job: BuildJob) -> Option<StatusWritten> {
        let builder = self.builder.clone()?;
        let key = key(&job.namespace, &job.name);
        let log = Arc::new(LogBook::new(LOG_LINES));
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), log.clone());
        let (tx, rx) = oneshot::channel();
        let commit = job.commit.clone();
        let (namespace, name) = (job.namespace.clone(), job.name.clone());
        let outcomes = self.outcomes.clone();
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            let built_commit = job.commit.clone();
            let outcome = builder.build(job, log.clone()).await;
            let _ = rx.await;
            let finished = Timestamp::now().to_string();
            let patch = outcome_patch(&outcome, &finished);
            outcomes.lock().unwrap_or_else(|p| p.into_inner()).insert(
                task_key,
                Outcome {
                    result: outcome.clone(),
                    commit: built_commit,
                    finished,
                },
            );
            if let Err(e) = &outcome {
                log.push(format!("===== Build failed: {e} ====="));
            }
            let api: Api<Space> = Api::namespaced(client, &namespace);
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(space = %format!("{namespace}/{name}"), error = %e, "failed to record a build's outcome");
            }
        });
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = running.insert(key, InFlight { commit, task }) {
            old.task.abort();
        }
        Some(StatusWritten(tx))
    }
}

impl Builds {
    /// Brings a status read from the cache up to date with the outcome of
    /// its build, when the cache has not seen the outcome's patch yet.
    pub fn catch_up(&self, key: &str, status: &mut crate::crd::SpaceStatus) {
        let outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        let Some(o) = outcomes.get(key) else {
            return;
        };
        let Some(build) = status.build.as_mut() else {
            return;
        };
        if build.commit != o.commit || build.result != BuildResult::Running {
            return;
        }
        build.finished = Some(o.finished.clone());
        (build.result, build.message) = result_of(&o.result);
        if let Ok(built) = &o.result {
            status.image = Some(built.image.clone());
            status.observed_commit = Some(built.commit.clone());
            status.config = Some(built.config.clone());
        }
    }
}

/// The result and message a build's outcome gives its status.
fn result_of(outcome: &Result<Built, BuildError>) -> (BuildResult, Option<String>) {
    match outcome {
        Ok(_) => (BuildResult::Succeeded, None),
        Err(e @ BuildError::Config(_)) => (BuildResult::ConfigError, Some(e.to_string())),
        Err(e @ BuildError::Failed(_)) => (BuildResult::Failed, Some(e.to_string())),
    }
}

/// The status a build's outcome writes (a merge patch).
pub fn outcome_patch(outcome: &Result<Built, BuildError>, now: &str) -> serde_json::Value {
    let (result, message) = result_of(outcome);
    let mut build = json!({"result": result, "message": message, "finished": now});
    match outcome {
        Ok(built) => {
            build["commit"] = json!(built.commit);
            json!({
                "status": {
                    "image": built.image,
                    "observedCommit": built.commit,
                    "config": built.config,
                    "build": build,
                }
            })
        }
        // A failure keeps the image that serves.
        Err(_) => json!({"status": {"build": build}}),
    }
}

/// The status of a build that starts now.
pub fn started(commit: &str, now: &str) -> BuildStatus {
    BuildStatus {
        commit: commit.to_owned(),
        result: BuildResult::Running,
        message: None,
        started: Some(now.to_owned()),
        finished: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::COMMIT_ANNOTATION;
    use crate::crd::{SpaceSource, SpaceSpec, SpaceStatus};

    fn space(
        annotation: Option<&str>,
        observed: Option<&str>,
        build: Option<(&str, BuildResult)>,
    ) -> Space {
        let mut s = Space::new(
            "demo",
            SpaceSpec {
                source: SpaceSource {
                    hub: Some("team/demo".into()),
                    ..SpaceSource::default()
                },
                ..SpaceSpec::default()
            },
        );
        if let Some(c) = annotation {
            s.annotations_mut()
                .insert(COMMIT_ANNOTATION.into(), c.into());
        }
        s.status = Some(SpaceStatus {
            observed_commit: observed.map(Into::into),
            build: build.map(|(c, r)| BuildStatus {
                result: r,
                ..started(c, "2026-01-01T00:00:00Z")
            }),
            ..SpaceStatus::default()
        });
        s
    }

    #[test]
    fn a_new_commit_is_due_once() {
        assert_eq!(due(&space(Some("c2"), Some("c1"), None)), Some("c2".into()));
        assert_eq!(due(&space(Some("c2"), Some("c2"), None)), None, "built");
        assert_eq!(due(&space(None, Some("c1"), None)), None, "no commit known");
        assert_eq!(
            due(&space(
                Some("c2"),
                Some("c1"),
                Some(("c2", BuildResult::Failed))
            )),
            None,
            "a failed commit is not retried in a loop"
        );
        assert_eq!(
            due(&space(
                Some("c3"),
                Some("c1"),
                Some(("c2", BuildResult::Failed))
            )),
            Some("c3".into()),
            "a newer commit after a failure"
        );
        assert_eq!(
            due(&space(
                Some("c2"),
                Some("c1"),
                Some(("c2", BuildResult::Running))
            )),
            Some("c2".into()),
            "a build the status says runs (the controller restarted) runs again"
        );
    }

    #[test]
    fn a_factory_rebuild_builds_the_same_commit_once() {
        let mut s = space(Some("c2"), Some("c2"), Some(("c2", BuildResult::Succeeded)));
        assert_eq!(due(&s), None);
        s.annotations_mut()
            .insert(REBUILD_ANNOTATION.into(), "2026-01-01T00:05:00Z".into());
        assert_eq!(due(&s), Some("c2".into()), "asked after the last build");
        s.status.as_mut().unwrap().build.as_mut().unwrap().started =
            Some("2026-01-01T00:06:00Z".into());
        assert_eq!(due(&s), None, "the rebuild started after the request");
    }

    #[test]
    fn a_prebuilt_image_is_never_built() {
        let mut s = space(Some("c2"), None, None);
        s.spec.source.image = Some("registry/app:1".into());
        assert_eq!(due(&s), None);
    }

    #[test]
    fn outcomes_become_status_patches() {
        let ok = outcome_patch(
            &Ok(Built {
                image: "reg/team-demo:abc".into(),
                commit: "abc".into(),
                config: serde_norway::from_str("sdk: docker\napp_port: 8080\n").unwrap(),
            }),
            "t",
        );
        assert_eq!(ok["status"]["image"], "reg/team-demo:abc");
        assert_eq!(ok["status"]["observedCommit"], "abc");
        assert_eq!(ok["status"]["build"]["result"], "Succeeded");
        let bad = outcome_patch(
            &Err(BuildError::Config("README.md:3:1: bad sdk".into())),
            "t",
        );
        assert_eq!(bad["status"]["build"]["result"], "ConfigError");
        assert!(
            bad["status"].get("image").is_none(),
            "a failure keeps the old image"
        );
    }
}
