//! The pure build step of the reconcile: a `Space` resource in, the objects
//! it should own out (Deployment, Service, and a PVC for /data).
//!
//! The run half comes from the runtime's plan (`plan::run_plan`), so a Space
//! gets the same environment, resources, volumes and startup timeout on
//! Kubernetes as on one machine. Nothing here talks to the API server; the
//! apply step sends these objects with server-side apply.
//!
//! Cache volumes: each hub repo a Space uses is mounted read-only, with
//! `subPath`, from one per-node cache (a hostPath by default, or a shared
//! PVC), so a second Space using the same model on that node downloads
//! nothing. Init containers (the spaceport image running `spaceport cache
//! fill`, one per repo revision) fill that cache from the hub before the app
//! starts, with the same code and guarantees as on one machine: a blob is
//! downloaded once per node (file locks), resumed after an interruption and
//! verified before any snapshot links to it.

use crate::crd::{HubVolumeKind, RESTART_ANNOTATION, Space, SpaceSpec};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar,
    HTTPGetAction, HostPathVolumeSource, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretEnvSource, SecurityContext, Service, ServicePort,
    ServiceSpec, Toleration, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use spaceport_runtime::config::{PreloadEntry, RepoId, Revision, SpaceConfig, StorageTier};
use spaceport_runtime::hardware::FlavorCatalog;
use spaceport_runtime::plan::dockerfile::STATIC_PORT;
use spaceport_runtime::plan::{
    ApiVolume, PlanError, PlanSettings, RunSpec, SpaceContext, SpaceId, VolumeSource, run_plan,
};
use spaceport_runtime::stage::Stage;
use std::collections::BTreeMap;

/// The label every owned object carries, naming its Space.
pub const SPACE_LABEL: &str = "spaceport.dev/space";
/// The resource name Kubernetes schedules GPUs by.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Where the per-node hub cache lives.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheVolume {
    /// A folder on each node (default `/var/cache/spaceport/hub`).
    HostPath(String),
    /// A shared ReadOnlyMany/ReadWriteMany claim.
    Claim(String),
}

/// Settings of the installation that shape every Space's objects.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub plan: PlanSettings,
    pub catalog: FlavorCatalog,
    pub cache: CacheVolume,
    /// StorageClass of /data claims; `None` uses the cluster's default.
    pub storage_class: Option<String>,
    /// The spaceport image, whose `spaceport cache fill` fills the cache.
    pub image: String,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            plan: PlanSettings::default(),
            catalog: FlavorCatalog::builtin(),
            cache: CacheVolume::HostPath("/var/cache/spaceport/hub".into()),
            storage_class: None,
            image: "ghcr.io/spaceport-dev/spaceport:latest".into(),
        }
    }
}

/// Why a Space has no desired objects yet, or never will as it stands.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DesiredError {
    #[error(
        "the Space has no configuration yet: it comes from the README once a build has read it"
    )]
    NoConfig,
    #[error("the Space's namespace or name cannot form a Space id: {0}")]
    BadId(String),
    #[error("{0}")]
    BadVolume(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl DesiredError {
    /// The stage a Space shows for this error.
    pub fn stage(&self) -> Stage {
        match self {
            DesiredError::Plan(e) => e.stage(),
            DesiredError::NoConfig => Stage::Building,
            _ => Stage::ConfigError,
        }
    }
}

/// The objects a Space owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub deployment: Deployment,
    pub service: Service,
    pub data: Option<PersistentVolumeClaim>,
    pub warnings: Vec<String>,
}

/// The config a Space runs with: the spec's, else the one its last build
/// read from the README, else none yet.
pub fn config_of(space: &Space) -> Option<&SpaceConfig> {
    space
        .spec
        .config
        .as_ref()
        .or_else(|| space.status.as_ref().and_then(|s| s.config.as_ref()))
}

/// The image to run: a prebuilt one from the spec, else the last build's.
pub fn image_of(space: &Space) -> Option<String> {
    space
        .spec
        .source
        .image
        .clone()
        .or_else(|| space.status.as_ref().and_then(|s| s.image.clone()))
}

/// Replicas the Deployment should have now.
pub fn replicas_of(space: &Space) -> i32 {
    let stage = space.status.as_ref().and_then(|s| s.stage);
    let asleep = matches!(stage, Some(Stage::Stopped | Stage::Paused));
    if space.spec.paused || asleep || image_of(space).is_none() {
        0
    } else {
        space.spec.replicas.unwrap_or(1).max(1)
    }
}

fn context_of(space: &Space) -> Result<SpaceContext, DesiredError> {
    // A Space the hub made runs under the hub's id (SPACE_ID, its host).
    let id = SpaceId::parse(&crate::crd::space_id(space))
        .map_err(|e| DesiredError::BadId(e.to_string()))?;
    let SpaceSpec {
        hardware,
        variables,
        storage,
        volumes,
        ..
    } = &space.spec;
    let mut context = SpaceContext::new(id);
    context.hardware = hardware.clone();
    context.variables = variables.clone();
    context.storage = *storage;
    // Repos mounted as plain files at a path, as the hub's volumes API does.
    for v in volumes {
        let Some(mount_path) = &v.mount_path else {
            continue;
        };
        let volume = ApiVolume {
            kind: match v.kind {
                HubVolumeKind::Model => "model",
                HubVolumeKind::Dataset => "dataset",
            }
            .into(),
            source: v.repo.clone(),
            mount_path: mount_path.clone(),
            revision: v.revision.clone(),
            path: v.path.clone(),
        };
        volume.validate().map_err(DesiredError::BadVolume)?;
        context.volumes.push(volume);
    }
    Ok(context)
}

/// The config with the spec's volumes that have no mount path added to the
/// repos the Space's HF cache holds.
fn with_cache_volumes(config: &SpaceConfig, space: &Space) -> Result<SpaceConfig, DesiredError> {
    let mut config = config.clone();
    for v in space.spec.volumes.iter().filter(|v| v.mount_path.is_none()) {
        let bad = |e: spaceport_runtime::config::Invalid| {
            DesiredError::BadVolume(format!("volume {}: {e}", v.repo))
        };
        let repo = RepoId::parse(&v.repo).map_err(bad)?;
        match (v.kind, &v.revision) {
            (HubVolumeKind::Model, None) => config.models.push(repo),
            (HubVolumeKind::Model, Some(rev)) => config.preload_from_hub.push(PreloadEntry {
                repo_id: repo,
                files: Vec::new(),
                revision: Some(Revision::parse(rev).map_err(bad)?),
            }),
            (HubVolumeKind::Dataset, None) => config.datasets.push(repo),
            (HubVolumeKind::Dataset, Some(_)) => {
                return Err(DesiredError::BadVolume(format!(
                    "volume {}: a dataset at a revision needs a mountPath",
                    v.repo
                )));
            }
        }
    }
    Ok(config)
}

fn labels(space: &Space) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "spaceport-space".into()),
        ("app.kubernetes.io/managed-by".into(), "spaceport".into()),
        (SPACE_LABEL.into(), space.name_any()),
    ])
}

fn meta(space: &Space, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: space.namespace(),
        labels: Some(labels(space)),
        owner_references: space.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// Claim sizes of HF's storage tiers.
pub fn storage_size(tier: StorageTier) -> &'static str {
    match tier {
        StorageTier::Small => "20Gi",
        StorageTier::Medium => "150Gi",
        StorageTier::Large => "1Ti",
    }
}

/// Where the fill step sees the whole cache.
const CACHE_MOUNT: &str = "/cache";

/// The init container that fills one revision of a hub repo into the
/// node's cache.
fn fill_container(
    settings: &ControllerSettings,
    index: usize,
    (repo_type, repo_id): (spaceport_runtime::plan::HubRepoType, &str),
    want: &spaceport_runtime::plan::Want,
    view: Option<(&str, Option<&str>)>,
    cache_volume: &str,
) -> Container {
    use spaceport_runtime::plan::HubRepoType;
    let mut args = vec![
        "cache".to_owned(),
        "fill".to_owned(),
        "--cache".to_owned(),
        CACHE_MOUNT.to_owned(),
        "--endpoint".to_owned(),
        settings.plan.hub_url.clone(),
    ];
    match repo_type {
        HubRepoType::Dataset => args.push("--dataset".into()),
        HubRepoType::Space => args.push("--space".into()),
        HubRepoType::Model => {}
    }
    if let Some((dir, sub)) = view {
        args.push("--view".into());
        args.push(format!("{CACHE_MOUNT}/{dir}"));
        if let Some(sub) = sub {
            args.push("--view-path".into());
            args.push(sub.to_owned());
        }
    }
    args.push(match &want.revision {
        Some(r) => format!("{repo_id}@{r}"),
        None => repo_id.to_owned(),
    });
    args.extend(want.files.iter().cloned());
    Container {
        name: format!("cache-fill-{index}"),
        image: Some(settings.image.clone()),
        command: Some(vec!["spaceport".into()]),
        args: Some(args),
        volume_mounts: Some(vec![VolumeMount {
            name: cache_volume.into(),
            mount_path: CACHE_MOUNT.into(),
            ..VolumeMount::default()
        }]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(1000),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// Builds the objects of a Space. Pure.
pub fn desired(space: &Space, settings: &ControllerSettings) -> Result<Desired, DesiredError> {
    let config = with_cache_volumes(config_of(space).ok_or(DesiredError::NoConfig)?, space)?;
    let config = &config;
    let context = context_of(space)?;
    let (run, warnings) = run_plan(config, &context, &settings.catalog, &settings.plan)?;
    // A static Space's image serves its files on a fixed port.
    let port = run.port.unwrap_or(STATIC_PORT);
    let name = space.name_any();
    let flavor = settings.catalog.get(&run.resources.flavor);

    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    let cache_volume = "hub-cache";
    let mut uses_cache = false;
    let mut fills = Vec::new();
    for v in &run.volumes {
        match &v.source {
            VolumeSource::HubRepo {
                repo_type,
                repo_id,
                wants,
            } => {
                uses_cache = true;
                for want in wants {
                    fills.push(fill_container(
                        settings,
                        fills.len(),
                        (*repo_type, repo_id),
                        want,
                        None,
                        cache_volume,
                    ));
                }
                let folder = v.target.rsplit('/').next().unwrap_or_default().to_owned();
                mounts.push(VolumeMount {
                    name: cache_volume.into(),
                    mount_path: v.target.clone(),
                    sub_path: Some(folder),
                    read_only: Some(true),
                    ..VolumeMount::default()
                });
            }
            VolumeSource::HubView {
                repo_type,
                repo_id,
                revision,
                path,
                index,
            } => {
                // The repo's files as plain files (hard links into the
                // cache), made by the fill step in the cache volume.
                uses_cache = true;
                let view = format!(".views/{}/{index}", context.id.host_label());
                fills.push(fill_container(
                    settings,
                    fills.len(),
                    (*repo_type, repo_id),
                    &spaceport_runtime::plan::Want {
                        revision: revision.clone(),
                        files: Vec::new(),
                    },
                    Some((&view, path.as_deref())),
                    cache_volume,
                ));
                mounts.push(VolumeMount {
                    name: cache_volume.into(),
                    mount_path: v.target.clone(),
                    sub_path: Some(view),
                    read_only: Some(true),
                    ..VolumeMount::default()
                });
            }
            VolumeSource::Persistent { .. } => {
                volumes.push(Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: format!("{name}-data"),
                        read_only: Some(false),
                    }),
                    ..Volume::default()
                });
                mounts.push(VolumeMount {
                    name: "data".into(),
                    mount_path: v.target.clone(),
                    ..VolumeMount::default()
                });
            }
        }
    }
    if uses_cache {
        volumes.push(match &settings.cache {
            CacheVolume::HostPath(path) => Volume {
                name: cache_volume.into(),
                host_path: Some(HostPathVolumeSource {
                    path: path.clone(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                ..Volume::default()
            },
            CacheVolume::Claim(claim) => Volume {
                name: cache_volume.into(),
                // Written by the fill step; the app mounts it read-only.
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: Some(false),
                }),
                ..Volume::default()
            },
        });
    }

    let container = container(space, &run, port, mounts);
    let mut pod = PodSpec {
        containers: vec![container],
        init_containers: (!fills.is_empty()).then_some(fills),
        volumes: (!volumes.is_empty()).then_some(volumes),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            fs_group: Some(1000),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    };
    if let Some(f) = flavor
        && !f.node_selector.is_empty()
    {
        pod.node_selector = Some(f.node_selector.clone());
    }
    let mut tolerations = Vec::new();
    if run.resources.gpus > 0 {
        tolerations.push(Toleration {
            key: Some(GPU_RESOURCE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        });
    }
    for t in flavor.iter().flat_map(|f| &f.tolerations) {
        tolerations.push(Toleration {
            key: Some(t.key.clone()),
            operator: t.operator.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            ..Toleration::default()
        });
    }
    if !tolerations.is_empty() {
        pod.tolerations = Some(tolerations);
    }

    let selector = BTreeMap::from([(SPACE_LABEL.to_owned(), name.clone())]);
    let deployment = Deployment {
        metadata: meta(space, name.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas_of(space)),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            // GPUs are whole and scarce: replace rather than surge, so a
            // rollout never needs a second set of them.
            strategy: (run.resources.gpus > 0).then(|| DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(space)),
                    // An owner's restart changes the template: new pods.
                    annotations: space
                        .annotations()
                        .get(RESTART_ANNOTATION)
                        .map(|t| BTreeMap::from([(RESTART_ANNOTATION.to_owned(), t.clone())])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    let service = Service {
        metadata: meta(space, name.clone()),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::Int(i32::from(port))),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    let data = space.spec.storage.map(|tier| PersistentVolumeClaim {
        metadata: meta(space, format!("{name}-data")),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: settings.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(storage_size(tier).into()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    });
    Ok(Desired {
        deployment,
        service,
        data,
        warnings,
    })
}

fn container(space: &Space, run: &RunSpec, port: u16, mounts: Vec<VolumeMount>) -> Container {
    let env: Vec<EnvVar> = run
        .env
        .iter()
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        })
        .collect();
    let env_from: Vec<EnvFromSource> = space
        .spec
        .config_map_refs
        .iter()
        .map(|cm| EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: cm.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        })
        .chain(space.spec.secret_refs.iter().map(|s| EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: s.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }))
        .collect();
    let r = &run.resources;
    let mut limits = BTreeMap::from([
        ("cpu".to_owned(), Quantity(format!("{}m", r.cpu_millis))),
        ("memory".to_owned(), Quantity(r.memory_bytes.to_string())),
    ]);
    if r.gpus > 0 {
        limits.insert(GPU_RESOURCE.into(), Quantity(r.gpus.to_string()));
    }
    let probe_path = run
        .health
        .as_ref()
        .map_or_else(|| "/".to_owned(), |h| h.path.clone());
    let http = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(probe_path.clone()),
            port: IntOrString::Int(i32::from(port)),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    // The startup probe allows startup_duration_timeout before the
    // container counts as failed, as on Hugging Face.
    let startup_failures =
        i32::try_from(run.startup_timeout_secs.div_ceil(5).max(1)).unwrap_or(i32::MAX);
    Container {
        name: "app".into(),
        image: image_of(space),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(env),
        env_from: (!env_from.is_empty()).then_some(env_from),
        resources: Some(ResourceRequirements {
            requests: Some(limits.clone()),
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        startup_probe: Some(http(5, startup_failures)),
        readiness_probe: Some(http(10, 3)),
        security_context: Some(SecurityContext {
            run_as_user: Some(i64::from(run.user.unwrap_or(1000))),
            run_as_group: Some(1000),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        ..Container::default()
    }
}
