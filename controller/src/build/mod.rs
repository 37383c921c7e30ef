//! Builds in the cluster: the seam between the reconcile and whatever makes
//! an image from a Space's commit.
//!
//! The reconcile decides *when* a build is due (the commit the source is at,
//! `spaceport.dev/commit`, differs from the one the status says was built)
//! and keeps at most one build per Space in flight; an [`ImageBuilder`]
//! decides *how*: fetch the source at the commit, read the README (unless the
//! spec carries the config), plan and build the image through a Docker API
//! endpoint, push it to the registry, and write the log as it goes.
//!
//! [`docker::DockerBuilder`] is the real one: [`fetch`] gets the commit,
//! [`reference`] names the image and finds the registry's credentials.

pub mod docker;
pub mod fetch;
pub mod reference;

use spaceport_runtime::build::LogBook;
use spaceport_runtime::config::SpaceConfig;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future, as the seam's traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Credentials for a private git source, from the Secret the source names
/// (`username`/`password`, or `ssh-privatekey`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GitCredentials {
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssh_private_key: Option<String>,
    /// `known_hosts` lines for ssh sources: with them the host must match
    /// (strict checking); without, a host is accepted on first sight.
    pub known_hosts: Option<String>,
}

impl std::fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field(
                "ssh_private_key",
                &self.ssh_private_key.as_ref().map(|_| "***"),
            )
            .field("known_hosts", &self.known_hosts.is_some())
            .finish()
    }
}

/// Where a build fetches the code from: a git URL (a Space's `source.git`,
/// or the hub's clone URL for `source.hub`) and the credentials to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitLocation {
    pub url: String,
    pub credentials: Option<GitCredentials>,
}

/// One build to run.
#[derive(Debug, Clone)]
pub struct BuildJob {
    pub namespace: String,
    pub name: String,
    /// The full commit id to build.
    pub commit: String,
    pub source: GitLocation,
    /// The spec's inline config; `None` reads the README at the commit.
    pub config: Option<SpaceConfig>,
    /// Build secrets by name (values from the Space's Secret refs).
    pub secrets: BTreeMap<String, String>,
    /// Variables (build args), from the spec and its ConfigMap refs.
    pub variables: BTreeMap<String, String>,
    /// A factory rebuild: reuse no cached layer.
    pub no_cache: bool,
}

/// What a successful build gives the Space.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The pushed image reference the Deployment will run.
    pub image: String,
    pub commit: String,
    /// The configuration the image was built from (the README's or the
    /// spec's), which the Deployment's run plan uses.
    pub config: SpaceConfig,
}

/// Why a build gave no image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The README at the commit is missing or invalid: CONFIG_ERROR.
    #[error("{0}")]
    Config(String),
    /// The build or the push failed: BUILD_ERROR.
    #[error("{0}")]
    Failed(String),
}

/// Makes images. Implementations must be cheap to share.
pub trait ImageBuilder: Send + Sync + 'static {
    /// Builds `job`, writing progress lines to `log` as they come. Dropping
    /// the future cancels the build.
    fn build(
        &self,
        job: BuildJob,
        log: Arc<LogBook>,
    ) -> BoxFuture<'static, Result<Built, BuildError>>;
}
