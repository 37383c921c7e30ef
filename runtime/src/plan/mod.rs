//! The plan: how to build a Space and how to run it. Pure and synchronous.
//!
//! `plan(config, files, context, catalog, settings)` decides everything that
//! can be decided without touching Docker or Kubernetes: the Dockerfile (the
//! generated one for gradio and streamlit, the repo's own for docker, none
//! for static), build args and build secrets, and the [`RunSpec`]: port,
//! environment, resources from the flavor, read-only hub volumes, /data,
//! health check, startup timeout and the response headers the proxy must
//! set. Both the single-node runtime and the Kubernetes controller execute
//! the same plan, so most behaviour is tested here without either.

pub mod dockerfile;
pub mod input;
mod run;

pub use input::{ApiVolume, PlanSettings, RepoFiles, SpaceContext, SpaceId};
pub use run::{HubRepoType, Want, cache_folder};

use crate::config::{RepoPath, Sdk, SpaceConfig, StorageTier};
use crate::hardware::{Flavor, FlavorCatalog};
use crate::stage::Stage;
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a Space cannot be planned. Each maps to the stage it leaves the Space in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the app file '{path}' is not in the repository")]
    NoAppFile { path: String },
    #[error("a docker Space needs a Dockerfile at the root of the repository")]
    NoDockerfile,
    #[error("packages.txt line {line}: '{token}' is not a Debian package name")]
    InvalidPackage { line: usize, token: String },
    #[error("the hardware flavor '{name}' is not offered here (offered: {offered})")]
    UnknownFlavor { name: String, offered: String },
    #[error("'{name}' cannot be an environment variable name")]
    InvalidVariableName { name: String },
}

impl PlanError {
    /// The stage a Space shows when its plan fails this way.
    pub fn stage(&self) -> Stage {
        match self {
            PlanError::NoAppFile { .. } => Stage::NoAppFile,
            _ => Stage::ConfigError,
        }
    }
}

/// Everything decided about a Space before any I/O.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub build: BuildPlan,
    pub run: RunSpec,
    /// Things worth telling the owner that do not stop the Space.
    pub warnings: Vec<String>,
}

/// How the Space's image is made.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BuildPlan {
    /// Build an image from a Dockerfile over the repo as context.
    Image(ImageBuild),
    /// No image: spaceport serves the repo's files itself.
    Static(StaticSite),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageBuild {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// True when spaceport wrote it (gradio, streamlit, static builds).
    pub generated: bool,
    /// Build args: the Space's variables (docker Spaces only).
    pub build_args: BTreeMap<String, String>,
    /// Secret ids the build may mount with `RUN --mount=type=secret,id=NAME`.
    pub build_secrets: Vec<String>,
    /// Paths never sent in the build context.
    pub context_excludes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaticSite {
    /// Folder served, relative to the repo (or to the build output).
    pub root: String,
    /// The page served at `/`.
    pub index: String,
    /// For `app_build_command`: the image that runs it.
    pub build: Option<ImageBuild>,
}

/// How the Space runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSpec {
    /// Port the app listens on in its container; `None` for static files.
    pub port: Option<u16>,
    /// uid:gid the container runs as (docker Spaces may choose their own
    /// USER; the runtime still forbids privilege).
    pub user: Option<u32>,
    /// Environment of the running Space, secrets excepted.
    pub env: BTreeMap<String, String>,
    /// Names of secrets exposed as environment variables at start.
    pub secret_env: Vec<String>,
    pub resources: Resources,
    pub volumes: Vec<Volume>,
    pub health: Option<HealthCheck>,
    /// Longest start before the Space is a RUNTIME_ERROR.
    pub startup_timeout_secs: u64,
    pub headers: ResponseHeaders,
    /// The first URL path opened.
    pub base_path: String,
    /// Present when the app uses "Sign in with HF" (served by the hub).
    pub oauth: Option<OAuthSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resources {
    /// The flavor these come from.
    pub flavor: String,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub gpus: u32,
    /// Part of the device name a GPU must have ("T4"); `None` means any.
    pub gpu_model: Option<String>,
    /// Bound on processes, against fork bombs.
    pub pids_limit: u32,
}

/// A volume mounted into the Space's container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Volume {
    pub source: VolumeSource,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VolumeSource {
    /// One hub repo's folder of the HF cache (`models--org--name`), holding
    /// the listed revisions and files.
    HubRepo {
        repo_type: HubRepoType,
        repo_id: String,
        wants: Vec<Want>,
    },
    /// The Space's persistent storage.
    Persistent { tier: StorageTier },
    /// The files of one revision of a hub repo (or a folder of it) as
    /// plain files at a path of the owner's choice (`set_space_volumes`).
    /// `index` numbers the Space's views.
    HubView {
        repo_type: HubRepoType,
        repo_id: String,
        revision: Option<String>,
        path: Option<String>,
        index: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    pub port: u16,
    /// An HTTP GET here answering anything but 5xx means the app is up.
    pub path: String,
}

/// Headers the proxy sets on the Space's responses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseHeaders {
    /// False: only the hub may frame the app (`disable_embedding`).
    pub embeddable_anywhere: bool,
    /// The allowlisted cross-origin headers (name, value).
    pub custom: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OAuthSpec {
    pub scopes: Vec<String>,
    pub expiration_minutes: u32,
    pub authorized_orgs: Vec<String>,
}

/// Makes the plan of a Space.
pub fn plan(
    config: &SpaceConfig,
    files: &RepoFiles,
    context: &SpaceContext,
    catalog: &FlavorCatalog,
    settings: &PlanSettings,
) -> Result<Plan, PlanError> {
    let (run, warnings) = run_plan(config, context, catalog, settings)?;
    let app_file = config.effective_app_file();
    let build = match config.sdk {
        Sdk::Gradio | Sdk::Streamlit => {
            require_app_file(files, &app_file)?;
            BuildPlan::Image(ImageBuild {
                dockerfile: dockerfile::generate(config, files, settings)?,
                generated: true,
                build_args: BTreeMap::new(),
                build_secrets: context.secret_names.iter().cloned().collect(),
                context_excludes: vec![".git".into()],
            })
        }
        Sdk::Docker => {
            let text = files.text("Dockerfile").ok_or(PlanError::NoDockerfile)?;
            BuildPlan::Image(ImageBuild {
                dockerfile: text.to_owned(),
                generated: false,
                build_args: context.variables.clone(),
                build_secrets: context.secret_names.iter().cloned().collect(),
                context_excludes: vec![".git".into()],
            })
        }
        Sdk::Static => {
            // With a build command the app file is an output of the build,
            // so it need not be in the repo.
            let build = config.app_build_command.as_ref().map(|cmd| ImageBuild {
                dockerfile: dockerfile::generate_static_build(cmd, settings),
                generated: true,
                build_args: BTreeMap::new(),
                build_secrets: Vec::new(),
                context_excludes: vec![".git".into()],
            });
            if build.is_none() {
                require_app_file(files, &app_file)?;
            }
            BuildPlan::Static(StaticSite {
                root: app_file.parent().to_owned(),
                index: app_file.file_name().to_owned(),
                build,
            })
        }
    };
    Ok(Plan {
        build,
        run,
        warnings,
    })
}

/// The run half of the plan alone, for engines whose builder reads the repo
/// itself (the Kubernetes controller): the same run spec [`plan`] makes, and
/// its warnings, without the repo's files.
pub fn run_plan(
    config: &SpaceConfig,
    context: &SpaceContext,
    catalog: &FlavorCatalog,
    settings: &PlanSettings,
) -> Result<(RunSpec, Vec<String>), PlanError> {
    let mut warnings = Vec::new();
    for name in context.variables.keys() {
        if !is_env_name(name) {
            return Err(PlanError::InvalidVariableName { name: name.clone() });
        }
    }
    let flavor = choose_flavor(config, context, catalog, settings, &mut warnings)?;
    let run = run::run_spec(config, context, flavor, settings, &mut warnings);
    Ok((run, warnings))
}

fn require_app_file(files: &RepoFiles, app_file: &RepoPath) -> Result<(), PlanError> {
    if files.contains(app_file.as_str()) {
        Ok(())
    } else {
        Err(PlanError::NoAppFile {
            path: app_file.to_string(),
        })
    }
}

fn choose_flavor<'c>(
    config: &SpaceConfig,
    context: &SpaceContext,
    catalog: &'c FlavorCatalog,
    settings: &PlanSettings,
    warnings: &mut Vec<String>,
) -> Result<&'c Flavor, PlanError> {
    let unknown = |name: &str| PlanError::UnknownFlavor {
        name: name.to_owned(),
        offered: catalog.names().join(", "),
    };
    if let Some(name) = &context.hardware {
        return catalog.get(name).ok_or_else(|| unknown(name));
    }
    if let Some(suggested) = &config.suggested_hardware {
        match catalog.get(suggested) {
            Some(f) if settings.honor_suggested_hardware => return Ok(f),
            Some(_) if suggested != &settings.default_flavor => warnings.push(format!(
                "the README suggests {suggested}; the Space runs on {} until its owner requests {suggested}",
                settings.default_flavor
            )),
            Some(_) => {}
            None => warnings.push(format!(
                "suggested_hardware '{suggested}' is not offered here; the Space runs on {}",
                settings.default_flavor
            )),
        }
    }
    catalog
        .get(&settings.default_flavor)
        .ok_or_else(|| unknown(&settings.default_flavor))
}

/// A POSIX-portable environment variable name.
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
