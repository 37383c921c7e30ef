//! The `Space` custom resource (group spaceport.dev, version v1alpha1).
//!
//! The spec embeds the runtime's `SpaceConfig` (the README keys, same types
//! and the same validation), plus what Hugging Face keeps outside the README:
//! where the code comes from, hardware, sleep time, visibility, replicas,
//! secrets and variables (by reference to Secrets and ConfigMaps), storage and
//! mounted hub repos. The status reports the stage with HF's names. This
//! module only declares types and generates the CRD; it talks to no API.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use spaceport_runtime::config::{SpaceConfig, StorageTier};
use spaceport_runtime::plan::SpaceId;
use spaceport_runtime::stage::Stage;
use std::collections::BTreeMap;

/// Annotation holding the commit a Space's source is at (full id). The repo
/// poller, the push webhooks and the hub set it; a value that differs from
/// `status.observedCommit` makes the controller build that commit.
pub const COMMIT_ANNOTATION: &str = "spaceport.dev/commit";

/// Annotation the hub sets to the time of an owner's restart; a new value
/// rolls the Space's pods.
pub const RESTART_ANNOTATION: &str = "spaceport.dev/restart-requested-at";

/// Annotation the hub sets to the time of a factory rebuild; a new value
/// rebuilds the commit.
pub const REBUILD_ANNOTATION: &str = "spaceport.dev/rebuild-requested-at";

/// Annotation holding the hub Space id (`owner/name`) a resource stands
/// for. Such a Space is served under that id (its URL is the hub's), and
/// its owner is the id's owner, not the namespace.
pub const HUB_SPACE_ANNOTATION: &str = "spaceport.dev/hub-space";

/// The hub Space a resource stands for, from its annotations; `None` for a
/// resource the hub did not make (or whose annotation is not an id).
pub fn hub_space(annotations: &BTreeMap<String, String>) -> Option<SpaceId> {
    annotations
        .get(HUB_SPACE_ANNOTATION)
        .and_then(|v| SpaceId::parse(v).ok())
}

/// The Space id a resource is served under: the hub's id when the hub made
/// it, else `namespace/name`.
pub fn space_id(space: &Space) -> String {
    use kube::ResourceExt;
    match hub_space(space.annotations()) {
        Some(id) => id.to_string(),
        None => format!(
            "{}/{}",
            space.namespace().unwrap_or_else(|| "default".into()),
            space.name_any()
        ),
    }
}

/// A Space: a git repo (or an image) run as an app with its own URL.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "spaceport.dev",
    version = "v1alpha1",
    kind = "Space",
    plural = "spaces",
    shortname = "sp",
    namespaced,
    status = "SpaceStatus",
    printcolumn = r#"{"name":"Stage","type":"string","jsonPath":".status.stage"}"#,
    printcolumn = r#"{"name":"Hardware","type":"string","jsonPath":".status.hardware.current"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SpaceSpec {
    /// The README configuration (its YAML keys, as on Hugging Face). When
    /// absent, the README at the source's commit is read at build time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub config: Option<SpaceConfig>,
    /// Where the Space's code comes from.
    pub source: SpaceSource,
    /// Hardware flavor (cpu-basic, t4-small, ... or an operator's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<String>,
    /// Seconds without visits before the Space sleeps; -1 never sleeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub sleep_time_seconds: Option<i64>,
    /// Who may see the app and its source.
    #[serde(default)]
    pub visibility: Visibility,
    /// Replicas while awake (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub replicas: Option<i32>,
    /// Paused by its owner: stays down until unpaused (visits do not wake it).
    #[serde(default)]
    pub paused: bool,
    /// Secrets whose keys become environment variables (and build secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_refs: Vec<String>,
    /// ConfigMaps whose keys become variables (environment and build args).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_map_refs: Vec<String>,
    /// Variables given inline.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Persistent storage mounted at /data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageTier>,
    /// Hub repos mounted read-only in the HF cache, besides the README's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<HubVolume>,
}

/// Where a Space's code comes from: exactly one of these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpaceSource {
    /// A git repository the controller watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// A Space repo on the spaceport hub (`owner/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// A prebuilt image: nothing is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// Clone URL (https or ssh).
    pub url: String,
    /// Branch or tag followed (default main).
    #[serde(default = "main_branch")]
    pub r#ref: String,
    /// A Secret with `username`/`password` or `ssh-privatekey` for private
    /// repos; with ssh, its `known_hosts` key pins the host's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

fn main_branch() -> String {
    "main".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone may use the app and read the source.
    #[default]
    Public,
    /// The app is public, the source is not.
    Protected,
    /// Only members; others get 404.
    Private,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubVolume {
    /// model or dataset.
    #[serde(rename = "type")]
    pub kind: HubVolumeKind,
    /// `owner/name` on the hub.
    pub repo: String,
    /// Branch, tag or commit (default main).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Mount the repo's files (plain files, read-only) at this absolute
    /// path. Without it the repo goes into the Space's HF cache, like the
    /// README's `models:` and `datasets:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// With `mountPath`: a folder of the repo to mount instead of all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HubVolumeKind {
    Model,
    Dataset,
}

/// What the controller last saw and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpaceStatus {
    /// The stage, with huggingface_hub's names (RUNNING, BUILDING, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// Where the app is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The commit the running (or last built) version comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_commit: Option<String>,
    /// The image the Deployment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The configuration the image was built from (the README at
    /// `observedCommit` when the spec carries none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub config: Option<SpaceConfig>,
    #[serde(default)]
    pub hardware: HardwareStatus,
    /// The latest build the controller started, and how it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildStatus>,
    /// RFC 3339 time of the last visit the proxies reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<String>,
    /// Why the Space is in its stage, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SpaceCondition>,
}

/// One build of a Space's commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildStatus {
    /// The commit built.
    pub commit: String,
    /// Running, Succeeded or Failed.
    pub result: BuildResult,
    /// What went wrong (the failing step), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339 times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum BuildResult {
    Running,
    Succeeded,
    /// The README at the commit is invalid.
    ConfigError,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HardwareStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
}

/// A condition in the Kubernetes convention (type, status, reason, message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpaceCondition {
    /// Ready, Built, ConfigValid, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// The CRD as YAML, exactly as `spaceport-controller crd` prints it and the
/// chart ships it.
pub fn crd_yaml() -> String {
    let crd: CustomResourceDefinition = Space::crd();
    let body = serde_norway::to_string(&crd).unwrap_or_default();
    format!("# Generated by `spaceport-controller crd`; do not edit.\n{body}")
}
