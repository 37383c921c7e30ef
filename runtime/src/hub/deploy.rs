//! A Space's way from a commit to serving: export the tree, read the
//! README, plan, build, run (or serve the files), and tell the proxy.
//!
//! Every failure lands in the Space's stage with words for its owner
//! (CONFIG_ERROR with the README's line, BUILD_ERROR with the failing step,
//! RUNTIME_ERROR with the log tail); the version that served before keeps
//! serving until a new one answers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::Restart;
use super::{Hub, RouteMeta, Serving, SpaceEntry};
use crate::build::{BuildOutcome, BuildRequest};
use crate::config::parse_readme;
use crate::engine::ContainerEngine;
use crate::plan::{BuildPlan, SpaceContext, SpaceId, plan};
use crate::repos::RepoKind;
use crate::run::Deployment;
use crate::stage::Stage;

/// Why a deploy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A push moved main.
    Push,
    /// The owner changed secrets, variables or hardware, or restarted.
    Restart,
    /// A restart that rebuilds without the image cache.
    FactoryRebuild,
    /// The hub started and found the Space not running.
    Recover,
}

impl<E: ContainerEngine> Hub<E> {
    /// Queues a deploy of the Space's main branch and returns at once.
    /// A build in flight for an older state is cancelled.
    pub fn request_deploy(&self, space: &SpaceId, reason: Reason) {
        let entry = self.entry(space);
        entry.cancel_build("superseded by a newer deploy");
        let hub = self.clone();
        let space = space.clone();
        tokio::spawn(async move {
            if let Err(e) = hub.deploy(&space, reason).await {
                tracing::warn!(%space, error = %e, "deploy failed");
            }
        });
    }

    /// Deploys the Space's main branch now and returns when it serves or
    /// has failed (the stage says which).
    pub async fn deploy(&self, space: &SpaceId, reason: Reason) -> Result<(), String> {
        let entry = self.entry(space);
        let _one_at_a_time = entry.deploying.lock().await;
        let repo = self.space_repo(space)?;
        if repo.settings.paused {
            return Ok(());
        }
        let space = &repo.id;
        let commit = match self.inner.repos.head(RepoKind::Space, space, "main").await {
            Ok(Some(c)) => c,
            Ok(None) => {
                entry.set_phase(Some((
                    Stage::NoAppFile,
                    Some("the repo is empty: push a README.md and the app to main".into()),
                )));
                return Ok(());
            }
            Err(e) => return Err(format!("failed to read the repo: {e}")),
        };
        if repo.settings.commit.as_deref() != Some(commit.as_str()) {
            let c = commit.clone();
            let _ = self
                .inner
                .store
                .update_repo(RepoKind::Space, space, |s| s.commit = Some(c));
        }
        if let Some(backend) = self.backend().cloned() {
            // The backend reads the README, builds and runs; the hub hands
            // it the commit and the settings.
            let restart = match reason {
                Reason::Restart => Restart::Yes,
                Reason::FactoryRebuild => Restart::Factory,
                Reason::Push | Reason::Recover => Restart::No,
            };
            return self.deploy_remote(&backend, space, restart).await;
        }
        let tree = match self.export(space, &commit).await {
            Ok(t) => t,
            Err(e) => {
                entry.set_phase(Some((Stage::ConfigError, Some(e.clone()))));
                self.refresh_routes();
                return Err(e);
            }
        };
        let folder = match crate::folder::read(&tree) {
            Ok(f) => f,
            Err(e) => {
                let msg = format!("failed to read the repo: {e}");
                entry.set_phase(Some((Stage::ConfigError, Some(msg.clone()))));
                return Err(msg);
            }
        };
        let parsed = parse_readme(&folder.readme);
        let Some(config) = parsed.config else {
            let msg = parsed
                .errors()
                .map(|d| d.display("README.md").to_string())
                .collect::<Vec<_>>()
                .join("\n");
            entry.set_phase(Some((Stage::ConfigError, Some(msg.clone()))));
            self.refresh_routes();
            return Err(msg);
        };
        let variables = self
            .inner
            .store
            .variables(space)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|v| (v.key, v.value))
            .collect();
        let secrets = self
            .inner
            .store
            .secret_values(space)
            .map_err(|e| e.to_string())?;
        let mut context = SpaceContext::new(space.clone());
        context.commit = Some(commit.clone());
        context.creator_user_id = Some(repo.created_by.clone());
        context.hardware = repo.settings.hardware.clone();
        context.volumes = repo.settings.volumes.clone();
        context.variables = variables;
        context.secret_names = secrets.keys().cloned().collect::<BTreeSet<_>>();
        let plan = match plan(
            &config,
            &folder.files,
            &context,
            &self.inner.config.catalog,
            &self.inner.config.plan,
        ) {
            Ok(p) => p,
            Err(e) => {
                let msg = e.to_string();
                entry.set_phase(Some((e.stage(), Some(msg.clone()))));
                self.refresh_routes();
                return Err(msg);
            }
        };
        *entry.meta.lock().unwrap_or_else(|p| p.into_inner()) = RouteMeta {
            disable_embedding: !plan.run.headers.embeddable_anywhere,
            custom_headers: plan.run.headers.custom.iter().cloned().collect(),
            health_path: plan
                .run
                .health
                .as_ref()
                .map(|h| h.path.clone())
                .unwrap_or_else(|| "/".into()),
        };
        match &plan.build {
            BuildPlan::Static(site) if site.build.is_none() => {
                let root = tree.join(&site.root);
                self.serve_static(&entry, space, &commit, &root, &site.index)
                    .await
            }
            BuildPlan::Static(site) => {
                // app_build_command: build in a container, then serve what
                // it left in the app folder.
                let Some(image) = site.build.clone() else {
                    unreachable!("the arm above takes sites without a build")
                };
                entry.set_phase(Some((Stage::Building, None)));
                let request = BuildRequest {
                    space: space.clone(),
                    commit: commit.clone(),
                    folder: tree.clone(),
                    image,
                    secrets: Default::default(),
                    no_cache: reason == Reason::FactoryRebuild,
                };
                let (handle, built) = self.build(&entry, request).await;
                let tag = match built {
                    Ok(tag) => tag,
                    Err(Ended::Cancelled(why)) => return Err(why),
                    Err(Ended::Failed(why)) => {
                        entry.set_phase(Some(failed_build_phase(&entry, &why)));
                        return Err(why);
                    }
                };
                let built = match self.copy_built_site(space, &commit, &tag).await {
                    Ok(dir) => dir,
                    Err(e) => {
                        handle.log.push(format!("===== Build Failed: {e} ====="));
                        entry.set_phase(Some(failed_build_phase(&entry, &e)));
                        return Err(e);
                    }
                };
                let root = built.join(&site.root);
                if !root.join(&site.index).is_file() {
                    let msg = format!(
                        "app_build_command finished but left no {}/{} in the app folder",
                        site.root, site.index
                    );
                    handle.log.push(format!("===== Build Failed: {msg} ====="));
                    entry.set_phase(Some(failed_build_phase(&entry, &msg)));
                    return Err(msg);
                }
                self.serve_static(&entry, space, &commit, &root, &site.index)
                    .await
            }
            BuildPlan::Image(image) => {
                entry.set_phase(None);
                self.inner.runner.building(space);
                entry.bump();
                let request = BuildRequest {
                    space: space.clone(),
                    commit: commit.clone(),
                    folder: tree.clone(),
                    image: image.clone(),
                    secrets: secrets.clone(),
                    no_cache: reason == Reason::FactoryRebuild,
                };
                let (handle, built) = self.build(&entry, request).await;
                let tag = match built {
                    Ok(tag) => tag,
                    Err(Ended::Cancelled(why)) => return Err(why),
                    Err(Ended::Failed(why)) => {
                        self.inner.runner.build_failed(space, &why);
                        entry.bump();
                        self.refresh_routes();
                        return Err(why);
                    }
                };
                if let Err(why) = self.fill_volumes(&repo, &plan.run, &handle.log).await {
                    handle.log.push(format!("===== Build Failed: {why} ====="));
                    self.inner.runner.build_failed(space, &why);
                    entry.bump();
                    self.refresh_routes();
                    return Err(why);
                }
                let result = self
                    .inner
                    .runner
                    .deploy(Deployment {
                        space: space.clone(),
                        commit: commit.clone(),
                        image: tag,
                        run: plan.run.clone(),
                        secrets,
                        host_port: None,
                    })
                    .await;
                if let Err(e) = result {
                    entry.bump();
                    return Err(e.to_string());
                }
                if let Serving::Static(_) = entry.serving() {
                    self.inner.statics.stop(space);
                }
                entry.set_serving(Serving::Container);
                self.follow(space.clone(), entry.clone());
                self.refresh_routes();
                self.prune_trees(space, &[commit.as_str()]);
                Ok(())
            }
        }
    }

    /// Runs a build as the Space's current one (its log is the build log
    /// the API shows); the image tag, or how it ended.
    async fn build(
        &self,
        entry: &SpaceEntry,
        request: BuildRequest,
    ) -> (crate::build::BuildHandle, Result<String, Ended>) {
        let handle = self.inner.builder.start(request);
        *entry.build.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle.clone());
        entry.bump();
        let ended = match handle.wait().await {
            BuildOutcome::Built { tag } => Ok(tag),
            // A newer deploy takes over; it sets the stage.
            BuildOutcome::Cancelled { reason } => {
                Err(Ended::Cancelled(format!("build cancelled: {reason}")))
            }
            other => Err(Ended::Failed(describe(&other))),
        };
        (handle, ended)
    }

    /// Serves a static Space's files (replacing whatever served before).
    async fn serve_static(
        &self,
        entry: &SpaceEntry,
        space: &SpaceId,
        commit: &str,
        root: &Path,
        index: &str,
    ) -> Result<(), String> {
        if let Err(e) = self.inner.statics.serve(space, root, index).await {
            let msg = format!("failed to serve the files: {e}");
            entry.set_phase(Some((Stage::RuntimeError, Some(msg.clone()))));
            return Err(msg);
        }
        entry.set_phase(None);
        let was = entry.serving();
        entry.set_serving(Serving::Static(commit.to_owned()));
        if was == Serving::Container {
            let _ = self.inner.runner.stop(space).await;
        }
        self.refresh_routes();
        // The files that served until now stay for requests still on their
        // way (pooled connections reach the old file server a little
        // longer); the next deploy removes them.
        let previous = match &was {
            Serving::Static(c) => Some(c.as_str()),
            _ => None,
        };
        self.prune_trees(
            space,
            &[Some(commit), previous]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
        );
        Ok(())
    }

    /// Keeps the route table in step with the runner's view of a Space.
    fn follow(&self, space: SpaceId, entry: Arc<SpaceEntry>) {
        {
            let mut followed = entry.followed.lock().unwrap_or_else(|p| p.into_inner());
            if *followed {
                return;
            }
            *followed = true;
        }
        let Some(mut rx) = self.inner.runner.watch(&space) else {
            *entry.followed.lock().unwrap_or_else(|p| p.into_inner()) = false;
            return;
        };
        let hub = self.clone();
        tokio::spawn(async move {
            loop {
                hub.refresh_routes();
                entry.bump();
                if rx.changed().await.is_err() {
                    break;
                }
            }
            *entry.followed.lock().unwrap_or_else(|p| p.into_inner()) = false;
        });
    }

    /// Makes sure every Space with containers adopted after a restart is
    /// followed.
    pub(crate) fn follow_adopted(&self, space: &SpaceId) {
        let entry = self.entry(space);
        entry.set_serving(Serving::Container);
        self.follow(space.clone(), entry);
    }

    fn trees_dir(&self, space: &SpaceId) -> PathBuf {
        self.inner
            .config
            .data_dir
            .join("trees")
            .join(space.owner())
            .join(space.name())
    }

    /// The commit's files, exported once into the data dir.
    async fn export(&self, space: &SpaceId, commit: &str) -> Result<PathBuf, String> {
        let dir = self.trees_dir(space);
        let tree = dir.join(commit);
        if tree.is_dir() {
            return Ok(tree);
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".export-")
            .tempdir_in(&dir)
            .map_err(|e| format!("failed to create a folder to export into: {e}"))?;
        self.inner
            .repos
            .export(RepoKind::Space, space, commit, tmp.path())
            .await
            .map_err(|e| format!("failed to read commit {commit}: {e}"))?;
        let path = tmp.keep();
        std::fs::rename(&path, &tree).map_err(|e| format!("failed to keep the export: {e}"))?;
        Ok(tree)
    }

    /// Copies the app folder out of a static Space's build image into
    /// `trees/<commit>.built/`; returns the folder holding the app's files.
    async fn copy_built_site(
        &self,
        space: &SpaceId,
        commit: &str,
        tag: &str,
    ) -> Result<PathBuf, String> {
        use crate::engine::ContainerSpec;
        const MAX_SITE_BYTES: u64 = 2 << 30;
        let engine = self.inner.builder.engine().clone();
        let dir = self.trees_dir(space);
        let dest = dir.join(format!("{commit}.built"));
        if dest.is_dir() {
            return Ok(dest.join("app"));
        }
        let scratch = tempfile::Builder::new()
            .prefix(".built-")
            .tempdir_in(&dir)
            .map_err(|e| format!("failed to create a folder for the built site: {e}"))?;
        let spec = ContainerSpec {
            name: format!(
                "{}-site-{}",
                crate::run::container_name(space, commit),
                &commit[..commit.len().min(8)]
            ),
            image: tag.to_owned(),
            labels: [(crate::build::SPACE_LABEL.to_owned(), space.to_string())].into(),
            ..ContainerSpec::default()
        };
        let id = engine
            .create_container(&spec)
            .await
            .map_err(|e| format!("failed to open the built image: {e}"))?;
        let archive = scratch.path().join("site.tar");
        let copied = engine
            .copy_out(
                &id,
                crate::plan::dockerfile::APP_DIR,
                &archive,
                MAX_SITE_BYTES,
            )
            .await;
        let _ = engine.remove_container(&id).await;
        copied.map_err(|e| format!("failed to copy the built site out: {e}"))?;
        let files = scratch.path().join("files");
        let unpack = files.clone();
        tokio::task::spawn_blocking(move || {
            let tar = std::fs::File::open(&archive)?;
            crate::repos::extract_tar(
                std::io::BufReader::new(tar),
                &unpack,
                crate::repos::ExportLimits {
                    max_bytes: MAX_SITE_BYTES,
                    max_entries: 200_000,
                },
            )
            .map(|_| ())
            .map_err(std::io::Error::other)
        })
        .await
        .map_err(|e| format!("the unpacking task failed: {e}"))?
        .map_err(|e| format!("failed to unpack the built site: {e}"))?;
        std::fs::rename(&files, &dest)
            .map_err(|e| format!("failed to keep the built site: {e}"))?;
        Ok(dest.join("app"))
    }

    /// Removes exported trees other than those of the commits in `keep`
    /// and the one serving now.
    fn prune_trees(&self, space: &SpaceId, keep: &[&str]) {
        let dir = self.trees_dir(space);
        let serving_static = self
            .inner
            .statics
            .root(space)
            .and_then(|r| r.strip_prefix(&dir).ok().map(Path::to_owned));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let in_use = serving_static
                .as_ref()
                .is_some_and(|p| p.starts_with(name.as_ref()));
            let base = name.strip_suffix(".built").unwrap_or(&name);
            let ours = keep.contains(&base);
            if !ours && !in_use && !name.starts_with('.') {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// How a build that made no image ended.
enum Ended {
    /// A newer deploy cancelled it.
    Cancelled(String),
    /// It failed; the words for the owner.
    Failed(String),
}

/// The stage after a failed build of a static Space: BUILD_ERROR, unless
/// an older version still serves (it keeps serving, as container Spaces do,
/// and the message says why the new one is not there).
fn failed_build_phase(entry: &SpaceEntry, why: &str) -> (Stage, Option<String>) {
    match entry.serving() {
        Serving::Static(_) => (
            Stage::Running,
            Some(format!(
                "build failed: {why}; the previous version still serves"
            )),
        ),
        _ => (Stage::BuildError, Some(format!("build failed: {why}"))),
    }
}

fn describe(outcome: &BuildOutcome) -> String {
    match outcome {
        BuildOutcome::Built { tag } => format!("built {tag}"),
        BuildOutcome::Failed { reason } => reason.clone(),
        BuildOutcome::Cancelled { reason } => format!("cancelled: {reason}"),
        BuildOutcome::TimedOut { limit } => {
            format!("the build exceeded its time limit of {} s", limit.as_secs())
        }
    }
}
