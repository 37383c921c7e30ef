//! The run half of the plan: environment, resources, volumes, health and
//! response headers of a Space. Pure.

use super::dockerfile::{HF_HOME, HF_HUB_CACHE, SPACE_UID};
use super::input::{PlanSettings, SpaceContext};
use super::{HealthCheck, OAuthSpec, Resources, ResponseHeaders, RunSpec, Volume, VolumeSource};
use crate::config::{
    DEFAULT_OAUTH_EXPIRATION_MINUTES, PreloadEntry, RepoId, Revision, Sdk, SpaceConfig,
};
use crate::hardware::Flavor;
use serde::Serialize;
use std::collections::BTreeMap;

/// Processes a Space may run at once.
const PIDS_LIMIT: u32 = 4096;

/// Kinds of hub repos that can be mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HubRepoType {
    Model,
    Dataset,
    Space,
}

impl HubRepoType {
    /// The prefix of the repo's folder in the HF cache.
    pub fn cache_prefix(self) -> &'static str {
        match self {
            HubRepoType::Model => "models",
            HubRepoType::Dataset => "datasets",
            HubRepoType::Space => "spaces",
        }
    }
}

/// One revision of a mounted repo, whole or some files of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Want {
    /// `None`: the default branch.
    pub revision: Option<String>,
    /// Empty: every file.
    pub files: Vec<String>,
}

/// The folder of a repo in the HF cache layout: `models--org--name`.
pub fn cache_folder(repo_type: HubRepoType, repo_id: &RepoId) -> String {
    format!(
        "{}--{}",
        repo_type.cache_prefix(),
        repo_id.as_str().replace('/', "--")
    )
}

/// Environment variables spaceport sets; a Space's variables cannot replace them.
const RESERVED_ENV: &[&str] = &[
    "SPACE_ID",
    "SPACE_AUTHOR_NAME",
    "SPACE_REPO_NAME",
    "SPACE_TITLE",
    "SPACE_HOST",
    "SPACE_CREATOR_USER_ID",
    "CPU_CORES",
    "MEMORY",
    "ACCELERATOR",
    "SYSTEM",
    "HF_ENDPOINT",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "OAUTH_SCOPES",
    "OPENID_PROVIDER_URL",
    "GRADIO_SERVER_NAME",
    "GRADIO_SERVER_PORT",
];

pub(super) fn run_spec(
    config: &SpaceConfig,
    context: &SpaceContext,
    flavor: &Flavor,
    settings: &PlanSettings,
    warnings: &mut Vec<String>,
) -> RunSpec {
    let port = (config.sdk != Sdk::Static).then(|| config.effective_app_port());
    let env = environment(config, context, flavor, settings, warnings);
    let mut secret_env: Vec<String> = context.secret_names.iter().cloned().collect();
    secret_env.retain(|name| {
        let reserved = RESERVED_ENV.contains(&name.as_str());
        if reserved {
            warnings.push(format!(
                "the secret {name} is not exposed: spaceport sets that variable itself"
            ));
        }
        !reserved && super::is_env_name(name)
    });
    for name in &secret_env {
        if context.variables.contains_key(name) {
            warnings.push(format!(
                "{name} is both a variable and a secret; the secret's value is used"
            ));
        }
    }
    let oauth = (config.hf_oauth == Some(true)).then(|| OAuthSpec {
        scopes: if config.hf_oauth_scopes.is_empty() {
            vec!["openid".into(), "profile".into()]
        } else {
            config.hf_oauth_scopes.clone()
        },
        expiration_minutes: config
            .hf_oauth_expiration_minutes
            .unwrap_or(DEFAULT_OAUTH_EXPIRATION_MINUTES),
        authorized_orgs: config.hf_oauth_authorized_org.clone(),
    });
    RunSpec {
        port,
        user: matches!(config.sdk, Sdk::Gradio | Sdk::Streamlit).then_some(SPACE_UID),
        env,
        secret_env,
        resources: Resources {
            flavor: flavor.name.clone(),
            cpu_millis: flavor.cpu_millis(),
            memory_bytes: flavor.memory_bytes(),
            gpus: flavor.gpus,
            gpu_model: flavor.gpu_model.clone(),
            pids_limit: PIDS_LIMIT,
        },
        volumes: volumes(config, context),
        health: port.map(|port| HealthCheck {
            port,
            path: "/".into(),
        }),
        startup_timeout_secs: config.effective_startup_timeout_secs(),
        headers: ResponseHeaders {
            embeddable_anywhere: !config.embedding_disabled(),
            custom: config
                .custom_headers
                .pairs()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        },
        base_path: config.effective_base_path().to_owned(),
        oauth,
    }
}

fn environment(
    config: &SpaceConfig,
    context: &SpaceContext,
    flavor: &Flavor,
    settings: &PlanSettings,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (k, v) in &context.variables {
        if RESERVED_ENV.contains(&k.as_str()) {
            warnings.push(format!(
                "the variable {k} is ignored: spaceport sets it itself"
            ));
        } else {
            env.insert(k.clone(), v.clone());
        }
    }
    let id = &context.id;
    let mut set = |k: &str, v: String| {
        env.insert(k.to_owned(), v);
    };
    set("SPACE_ID", id.to_string());
    set("SPACE_AUTHOR_NAME", id.owner().to_owned());
    set("SPACE_REPO_NAME", id.name().to_owned());
    set(
        "SPACE_TITLE",
        config.title.clone().unwrap_or_else(|| id.name().to_owned()),
    );
    set("SPACE_HOST", id.host(&settings.domain));
    if let Some(user) = &context.creator_user_id {
        set("SPACE_CREATOR_USER_ID", user.clone());
    }
    set("CPU_CORES", format_number(flavor.cpu));
    set("MEMORY", format!("{}Gi", format_number(flavor.memory_gb)));
    if flavor.gpus > 0 {
        set(
            "ACCELERATOR",
            flavor
                .gpu_model
                .as_deref()
                .unwrap_or("gpu")
                .to_ascii_lowercase(),
        );
    }
    set("SYSTEM", "spaces".into());
    set("HF_ENDPOINT", settings.hub_url.clone());
    set("HF_HOME", HF_HOME.into());
    set("HF_HUB_CACHE", HF_HUB_CACHE.into());
    if settings.hub_offline {
        set("HF_HUB_OFFLINE", "1".into());
    }
    if config.sdk == Sdk::Gradio {
        set("GRADIO_SERVER_NAME", "0.0.0.0".into());
        set(
            "GRADIO_SERVER_PORT",
            config.effective_app_port().to_string(),
        );
    }
    if config.hf_oauth == Some(true) {
        let scopes = if config.hf_oauth_scopes.is_empty() {
            "openid profile".to_owned()
        } else {
            config.hf_oauth_scopes.join(" ")
        };
        set("OAUTH_SCOPES", scopes);
        set("OPENID_PROVIDER_URL", settings.hub_url.clone());
    }
    env
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as u64)
    } else {
        format!("{n}")
    }
}

/// Hub repos as read-only volumes (one per repo folder of the cache, all
/// its wanted revisions and files together), then /data.
fn volumes(config: &SpaceConfig, context: &SpaceContext) -> Vec<Volume> {
    let mut repos: BTreeMap<(HubRepoType, RepoId), Vec<Want>> = BTreeMap::new();
    let mut want = |t: HubRepoType, id: &RepoId, revision: Option<&Revision>, files: &[String]| {
        let wants = repos.entry((t, id.clone())).or_default();
        let revision = revision.map(|r| r.as_str().to_owned());
        match wants.iter_mut().find(|w| w.revision == revision) {
            // A whole revision already covers any file of it.
            Some(w) if w.files.is_empty() => {}
            Some(w) if files.is_empty() => w.files.clear(),
            Some(w) => {
                for f in files {
                    if !w.files.contains(f) {
                        w.files.push(f.clone());
                    }
                }
            }
            None => wants.push(Want {
                revision,
                files: files.to_vec(),
            }),
        }
    };
    for m in &config.models {
        want(HubRepoType::Model, m, None, &[]);
    }
    for d in &config.datasets {
        want(HubRepoType::Dataset, d, None, &[]);
    }
    for PreloadEntry {
        repo_id,
        files,
        revision,
    } in &config.preload_from_hub
    {
        want(HubRepoType::Model, repo_id, revision.as_ref(), files);
    }
    let mut out: Vec<Volume> = repos
        .into_iter()
        .map(|((repo_type, repo_id), wants)| Volume {
            target: format!("{HF_HUB_CACHE}/{}", cache_folder(repo_type, &repo_id)),
            source: VolumeSource::HubRepo {
                repo_type,
                repo_id: repo_id.to_string(),
                wants,
            },
            read_only: true,
        })
        .collect();
    for (index, v) in context.volumes.iter().enumerate() {
        let repo_type = match v.kind.as_str() {
            "dataset" => HubRepoType::Dataset,
            "space" => HubRepoType::Space,
            _ => HubRepoType::Model,
        };
        out.push(Volume {
            target: v.mount_path.clone(),
            source: VolumeSource::HubView {
                repo_type,
                repo_id: v.source.clone(),
                revision: v.revision.clone(),
                path: v.path.clone().filter(|p| !p.trim_matches('/').is_empty()),
                index,
            },
            read_only: true,
        });
    }
    if let Some(tier) = context.storage {
        out.push(Volume {
            source: VolumeSource::Persistent { tier },
            target: "/data".into(),
            read_only: false,
        });
    }
    out
}
