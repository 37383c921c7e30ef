//! The seam between spaceport and a container engine: build an image from a
//! streamed context, create, start, stop, inspect, list and follow the logs
//! of containers. [`DockerEngine`] speaks the Docker API through bollard;
//! [`FakeEngine`] records every call and plays scripted answers, so the
//! build and run logic above it is tested without Docker.
//!
//! This module decides nothing about Spaces: it must not know stages, plans
//! or GPUs. Callers hand it complete specs and get plain facts back.

mod docker;
mod fake;

pub use docker::DockerEngine;
pub use fake::{EngineCall, FakeEngine};

use bytes::Bytes;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Label on everything spaceport creates, so it can find (and clean) it.
pub const MANAGED_LABEL: &str = "dev.spaceport.managed";

/// A build context: a tar stream, chunk by chunk.
pub type ContextStream = mpsc::Receiver<std::io::Result<Bytes>>;

/// Where an engine sends log lines (build steps, app output). Lines carry
/// no trailing newline.
pub type LogSender = mpsc::Sender<String>;

/// Why an engine call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("failed to reach the container engine: {0}")]
    Unavailable(String),
    #[error("no such {kind}: {name}")]
    NotFound { kind: &'static str, name: String },
    /// The image build ran and failed; the message is the engine's last word.
    #[error("the build failed: {0}")]
    BuildFailed(String),
    #[error("failed to read the build context: {0}")]
    Context(String),
    #[error("the container engine refused: {0}")]
    Api(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// One image build.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageBuildSpec {
    /// `name:tag` of the result.
    pub tag: String,
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    pub build_args: BTreeMap<String, String>,
    /// Secret id -> a private file holding its value. Only BuildKit mounts
    /// them (`RUN --mount=type=secret,id=ID`); never a build arg.
    pub secrets: BTreeMap<String, PathBuf>,
    pub labels: BTreeMap<String, String>,
    /// Rebuild every layer ("factory rebuild").
    pub no_cache: bool,
    /// Build with BuildKit (needed for `RUN --mount`), not the classic builder.
    pub buildkit: bool,
}

/// A host folder or file mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: String,
    pub read_only: bool,
}

/// Everything needed to create one container. Security settings are not
/// optional here: every container is made unprivileged, with all
/// capabilities dropped and no-new-privileges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub env: BTreeMap<String, String>,
    /// `uid[:gid]`; `None` keeps the image's USER.
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The port the app listens on, published on `bind_ip`.
    pub container_port: Option<u16>,
    /// Host port; `None` lets the engine choose a free one.
    pub host_port: Option<u16>,
    pub bind_ip: String,
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
    pub mounts: Vec<BindMount>,
    /// GPU device ids (NVML uuids) handed to the NVIDIA runtime.
    pub gpu_device_ids: Vec<String>,
    /// Overrides the image's CMD.
    pub cmd: Option<Vec<String>>,
    /// A network of spaceport's to join instead of the engine's default
    /// one. The engine creates it on first use, labelled as spaceport's,
    /// with traffic between its containers turned off: a container reaches
    /// the outside, not the other containers. `None`: the engine's default.
    pub network: Option<String>,
    /// HOME for a container whose `user` replaces an image's root user,
    /// when neither `env` nor the image sets HOME: a uid with no passwd
    /// entry would otherwise get `/`, which it cannot write.
    pub fallback_home: Option<String>,
    /// The image's filesystem is read-only. `/tmp` is then a fresh tmpfs,
    /// HOME (when known from `env` or the image) a fresh anonymous volume
    /// holding a copy of the image's folder there, and `mounts` keep their
    /// own mode.
    pub read_only_root: bool,
}

/// What an engine reports about a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    /// Set once the container has exited.
    pub exit_code: Option<i64>,
    /// The host port the app's port is published on.
    pub host_port: Option<u16>,
}

/// A container engine. Implementations must be cheap to share (`Arc`).
pub trait ContainerEngine: Send + Sync + 'static {
    /// Builds `spec.tag` from the context, sending each log line as it comes.
    /// Dropping the future cancels the build.
    fn build_image(
        &self,
        spec: ImageBuildSpec,
        context: ContextStream,
        log: LogSender,
    ) -> impl Future<Output = Result<()>> + Send;

    fn image_exists(&self, tag: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Removes an image; a missing one is not an error.
    fn remove_image(&self, tag: &str) -> impl Future<Output = Result<()>> + Send;

    /// Creates a container and returns its id.
    fn create_container(&self, spec: &ContainerSpec)
    -> impl Future<Output = Result<String>> + Send;

    fn start_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Stops a container (SIGTERM, then SIGKILL after `grace_secs`).
    fn stop_container(&self, id: &str, grace_secs: u32) -> impl Future<Output = Result<()>> + Send;

    /// Removes a container, running or not; a missing one is not an error.
    fn remove_container(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// `None` when there is no such container.
    fn inspect_container(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ContainerInfo>>> + Send;

    /// Containers, running or not, carrying every one of these labels.
    fn list_containers(
        &self,
        labels: &[(String, String)],
    ) -> impl Future<Output = Result<Vec<ContainerInfo>>> + Send;

    /// Writes a tar of `path` in a container's filesystem (created, not
    /// necessarily started) to the file `dest`; at most `max_bytes`.
    fn copy_out(
        &self,
        id: &str,
        path: &str,
        dest: &std::path::Path,
        max_bytes: u64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Sends the container's output line by line from `since` (unix
    /// seconds, 0 for all) until the container stops.
    fn follow_logs(
        &self,
        id: &str,
        since: i64,
        log: LogSender,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Splits a chunk of output into lines, keeping an unfinished last line in
/// `pending` for the next chunk. Carriage-return progress bars keep only
/// their last state.
pub fn split_lines(pending: &mut String, chunk: &str) -> Vec<String> {
    pending.push_str(chunk);
    let mut out = Vec::new();
    while let Some(i) = pending.find('\n') {
        let line: String = pending.drain(..=i).collect();
        let line = line.trim_end_matches(['\n', '\r']);
        let line = line.rsplit('\r').next().unwrap_or_default();
        out.push(line.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_into_lines_across_chunks() {
        let mut pending = String::new();
        assert_eq!(
            split_lines(&mut pending, "Step 1/2 : FR"),
            Vec::<String>::new()
        );
        assert_eq!(
            split_lines(&mut pending, "OM scratch\nok\r\n10%\r50%\r100%\nrest"),
            ["Step 1/2 : FROM scratch", "ok", "100%"]
        );
        assert_eq!(pending, "rest");
    }
}
