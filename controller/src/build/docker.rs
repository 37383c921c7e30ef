//! The image builder of the cluster: a Docker API endpoint (an in-cluster
//! engine, over a unix socket, tcp, or tcp with mutual TLS) does the
//! building and the pushing; spaceport fetches the commit, reads the README,
//! plans and hands the build to the runtime's [`Builder`], exactly as a
//! single machine does, then tags the image for the registry and pushes it.
//!
//! Every step writes to the build's log: the banner with the commit, the
//! fetch, each build line (secrets masked by the runtime), the push,
//! condensed to its distinct status lines, and the final image.

use super::fetch::fetch_commit;
use super::reference::{check_registry, credentials_for, image_reference};
use super::{BoxFuture, BuildError, BuildJob, Built, ImageBuilder};
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptions, RemoveImageOptions, TagImageOptions};
use futures_util::StreamExt;
use spaceport_runtime::build::{
    BuildHandle, BuildOutcome, BuildRequest, BuildSettings, Builder, LogBook, queued_banner,
};
use spaceport_runtime::config::{SpaceConfig, parse_readme};
use spaceport_runtime::engine::DockerEngine;
use spaceport_runtime::folder::{self, FolderError};
use spaceport_runtime::hardware::FlavorCatalog;
use spaceport_runtime::plan::ImageBuild;
use spaceport_runtime::plan::dockerfile::generate_static_image;
use spaceport_runtime::plan::{BuildPlan, PlanSettings, SpaceContext, SpaceId, plan};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where images are built and where they go.
#[derive(Debug, Clone)]
pub struct DockerSettings {
    /// The Docker API endpoint (`unix:///path`, `tcp://host:port`); `None`
    /// uses DOCKER_HOST or the local socket.
    pub endpoint: Option<String>,
    /// A folder with ca.pem, cert.pem and key.pem for a TLS endpoint.
    pub tls_dir: Option<PathBuf>,
    /// Image prefix, such as `registry.example:5000/spaces`; `None` keeps
    /// images on the engine under `spaceport/`.
    pub registry: Option<String>,
    /// A docker config.json with the registry's credentials.
    pub registry_auth_file: Option<PathBuf>,
    /// Push images to the registry (off: the engine's image store is the
    /// one the cluster's nodes run from).
    pub push: bool,
    /// Longest a fetch of the source may take.
    pub fetch_limit: Duration,
    /// The plan's installation settings (base images, pinned SDKs).
    pub plan: PlanSettings,
    /// The runtime builder's settings (time limit, log lines kept).
    pub build: BuildSettings,
    /// The installation's flavor catalog (the plan checks the hardware).
    pub catalog: FlavorCatalog,
    /// The spaceport image, under the files of a static Space's image.
    pub static_server_image: String,
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings {
            endpoint: None,
            tls_dir: None,
            registry: None,
            registry_auth_file: None,
            push: true,
            fetch_limit: Duration::from_secs(600),
            plan: PlanSettings::default(),
            build: BuildSettings::default(),
            catalog: FlavorCatalog::builtin(),
            static_server_image: crate::desired::ControllerSettings::default().image,
        }
    }
}

/// Builds Spaces on a Docker engine and pushes them to a registry.
#[derive(Debug)]
pub struct DockerBuilder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Arc<DockerEngine>,
    builder: Builder<DockerEngine>,
    registry: String,
    push: bool,
    auth: Option<DockerCredentials>,
    fetch_limit: Duration,
    plan: PlanSettings,
    catalog: FlavorCatalog,
    static_server_image: String,
}

impl DockerBuilder {
    /// Connects to the endpoint and checks the settings.
    pub async fn connect(settings: DockerSettings) -> Result<Self, String> {
        let engine = match &settings.endpoint {
            Some(ep) => DockerEngine::connect_to(ep, settings.tls_dir.as_deref()).await,
            None => DockerEngine::connect().await,
        }
        .map_err(|e| e.to_string())?;
        Self::new(Arc::new(engine), settings)
    }

    /// A builder on an engine already connected.
    pub fn new(engine: Arc<DockerEngine>, settings: DockerSettings) -> Result<Self, String> {
        let registry = match &settings.registry {
            Some(r) => check_registry(r)?,
            None => "spaceport".into(),
        };
        let auth = match (&settings.registry_auth_file, &settings.registry) {
            (Some(path), Some(r)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "failed to read the registry auth file {}: {e}",
                        path.display()
                    )
                })?;
                credentials_for(&text, r)?
            }
            _ => None,
        };
        Ok(DockerBuilder {
            inner: Arc::new(Inner {
                builder: Builder::new(engine.clone(), settings.build),
                engine,
                push: settings.push && settings.registry.is_some(),
                registry,
                auth,
                fetch_limit: settings.fetch_limit,
                plan: settings.plan,
                catalog: settings.catalog,
                static_server_image: settings.static_server_image,
            }),
        })
    }
}

impl ImageBuilder for DockerBuilder {
    fn build(
        &self,
        job: BuildJob,
        log: Arc<LogBook>,
    ) -> BoxFuture<'static, Result<Built, BuildError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            log.push(queued_banner(SystemTime::now(), &job.commit));
            let result = inner.run(job, &log).await;
            match &result {
                Ok(built) => log.push(format!("===== Image: {} =====", built.image)),
                Err(e) => log.push(format!("===== Build Failed: {e} =====")),
            }
            result
        })
    }
}

/// Cancels the runtime build when the caller drops the build future.
struct CancelOnDrop(Option<BuildHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(h) = &self.0
            && h.outcome().is_none()
        {
            h.cancel("the build was abandoned");
        }
    }
}

impl Inner {
    async fn run(&self, job: BuildJob, log: &LogBook) -> Result<Built, BuildError> {
        let (repo, tag) = image_reference(&self.registry, &job.namespace, &job.name, &job.commit)
            .map_err(BuildError::Failed)?;
        let space = SpaceId::parse(&format!("{}/{}", job.namespace, job.name))
            .map_err(|e| BuildError::Failed(format!("failed to name the Space: {}", e.message)))?;
        let dir = tempfile::Builder::new()
            .prefix("spaceport-build-")
            .tempdir()
            .map_err(|e| BuildError::Failed(format!("failed to make a build folder: {e}")))?;
        fetch_commit(&job.source, &job.commit, dir.path(), self.fetch_limit, log).await?;
        let (config, files) = read_space(dir.path(), job.config.clone())?;
        let mut context = SpaceContext::new(space.clone());
        context.commit = Some(job.commit.clone());
        context.variables = job.variables.clone();
        context.secret_names = job.secrets.keys().cloned().collect();
        let planned = plan(&config, &files, &context, &self.catalog, &self.plan)
            .map_err(|e| BuildError::Config(e.to_string()))?;
        for w in &planned.warnings {
            log.push(format!("warning: {w}"));
        }
        let image = match planned.build {
            BuildPlan::Image(image) => image,
            // The site's files (or its build's output) in an image that
            // serves them with `spaceport serve-static`.
            BuildPlan::Static(site) => ImageBuild {
                dockerfile: generate_static_image(&site, &self.static_server_image),
                generated: true,
                build_args: Default::default(),
                build_secrets: Vec::new(),
                context_excludes: vec![".git".into()],
            },
        };
        let handle = self.builder.start(BuildRequest {
            space,
            commit: job.commit.clone(),
            folder: dir.path().to_owned(),
            image,
            secrets: job.secrets.clone(),
            no_cache: job.no_cache,
        });
        let guard = CancelOnDrop(Some(handle.clone()));
        let outcome = forward(&handle, log).await;
        drop(guard);
        let local = match outcome {
            BuildOutcome::Built { tag } => tag,
            BuildOutcome::Failed { reason } => return Err(BuildError::Failed(reason)),
            BuildOutcome::Cancelled { reason } => {
                return Err(BuildError::Failed(format!(
                    "the build was cancelled: {reason}"
                )));
            }
            BuildOutcome::TimedOut { limit } => {
                return Err(BuildError::Failed(format!(
                    "the build took longer than {} s",
                    limit.as_secs()
                )));
            }
        };
        let image = format!("{repo}:{tag}");
        self.retag(&local, &repo, &tag).await?;
        if self.push {
            self.push(&repo, &tag, log).await?;
        }
        Ok(Built {
            image,
            commit: job.commit,
            config,
        })
    }

    /// Gives the built image its registry name and drops the local one.
    async fn retag(&self, local: &str, repo: &str, tag: &str) -> Result<(), BuildError> {
        let docker = self.engine.client();
        let options = TagImageOptions {
            repo: Some(repo.to_owned()),
            tag: Some(tag.to_owned()),
        };
        docker.tag_image(local, Some(options)).await.map_err(|e| {
            BuildError::Failed(format!("failed to tag the image {repo}:{tag}: {e}"))
        })?;
        if local != format!("{repo}:{tag}") {
            let untag = RemoveImageOptions {
                noprune: true,
                ..RemoveImageOptions::default()
            };
            if let Err(e) = docker.remove_image(local, Some(untag), None).await {
                tracing::debug!("failed to drop the local tag {local}: {e}");
            }
        }
        Ok(())
    }

    async fn push(&self, repo: &str, tag: &str, log: &LogBook) -> Result<(), BuildError> {
        let registry = self.registry.split('/').next().unwrap_or(&self.registry);
        log.push(format!("pushing {repo}:{tag} to {registry}"));
        let options = PushImageOptions {
            tag: Some(tag.to_owned()),
            ..PushImageOptions::default()
        };
        let mut stream = self
            .engine
            .client()
            .push_image(repo, Some(options), self.auth.clone());
        let mut last = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let in_progress = info
                        .progress_detail
                        .as_ref()
                        .is_some_and(|p| p.current.is_some() || p.total.is_some());
                    if let Some(status) = info.status
                        && !in_progress
                        && status != last
                    {
                        log.push(format!("push: {status}"));
                        last = status;
                    }
                }
                Err(e) => {
                    return Err(BuildError::Failed(format!(
                        "failed to push {repo}:{tag} to the registry {registry}: {e}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Copies the runtime build's log into `log` (its own banner excepted:
/// ours came first) until the build ends, and returns the outcome.
async fn forward(handle: &BuildHandle, log: &LogBook) -> BuildOutcome {
    let (history, mut live) = handle.log.subscribe();
    for line in history.into_iter().skip(1) {
        log.push(line);
    }
    let wait = handle.wait();
    tokio::pin!(wait);
    loop {
        tokio::select! {
            outcome = &mut wait => {
                while let Ok(line) = live.try_recv() {
                    log.push(line);
                }
                return outcome;
            }
            line = live.recv() => match line {
                Ok(line) => log.push(line),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    log.push(format!("({n} build log lines skipped)"));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
            }
        }
    }
}

/// The configuration (the spec's, or the README's) and the file list of
/// a checked-out Space.
fn read_space(
    dir: &std::path::Path,
    config: Option<SpaceConfig>,
) -> Result<(SpaceConfig, spaceport_runtime::plan::RepoFiles), BuildError> {
    let readme = dir.join("README.md");
    // With the config in the spec a README is optional; the folder reader
    // wants one, so a placeholder stands in while the files are listed.
    let placeholder = config.is_some() && std::fs::symlink_metadata(&readme).is_err();
    if placeholder {
        std::fs::write(&readme, b"")
            .map_err(|e| BuildError::Failed(format!("failed to list the files: {e}")))?;
    }
    let read = folder::read(dir);
    if placeholder {
        let _ = std::fs::remove_file(&readme);
    }
    let space = read.map_err(|e| match e {
        FolderError::NoReadme { .. } => {
            BuildError::Config("the repository has no README.md at its root".into())
        }
        FolderError::NotRegular { name } if name.ends_with("README.md") => {
            BuildError::Config("README.md is not a regular file".into())
        }
        other => BuildError::Failed(format!(
            "failed to read the repository: {}",
            other.to_string().replace(&dir.display().to_string(), ".")
        )),
    })?;
    if let Some(config) = config {
        return Ok((config, space.files));
    }
    let parsed = parse_readme(&space.readme);
    match parsed.config {
        Some(config) => Ok((config, space.files)),
        None => Err(BuildError::Config(
            parsed
                .errors()
                .map(|d| d.display("README.md").to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )),
    }
}
