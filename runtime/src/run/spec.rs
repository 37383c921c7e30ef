//! From a [`RunSpec`] to the container the engine creates: the Space's
//! environment and secrets, uid 1000 (for every image unless the operator
//! lets images choose), limits from the flavor, the network on which Spaces
//! cannot reach each other, a read-only root when the operator asks, the
//! app port published on a loopback (or private) address,
//! read-only hub volumes, the operator's extra CA certificates, the GPUs
//! granted, and the labels by which spaceport finds the container again.
//! Pure: it reads no file and calls no engine.

use crate::build::{COMMIT_LABEL, SPACE_LABEL};
use crate::engine::{BindMount, ContainerSpec, MANAGED_LABEL};
use crate::gpu::GpuInfo;
use crate::plan::{RunSpec, SpaceId, VolumeSource};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Label: the app's port inside the container.
/// Label: the installation a container belongs to.
pub const INSTANCE_LABEL: &str = "dev.spaceport.instance";
pub const PORT_LABEL: &str = "dev.spaceport.port";
/// Label: comma-separated uuids of the GPUs the container was given.
pub const GPUS_LABEL: &str = "dev.spaceport.gpus";
/// Label: the health check path.
pub const HEALTH_LABEL: &str = "dev.spaceport.health-path";
/// Label: the startup timeout in seconds.
pub const STARTUP_LABEL: &str = "dev.spaceport.startup-timeout";
/// Label: the fixed host port the app is published on (absent when the
/// engine chose one).
pub const HOST_PORT_LABEL: &str = "dev.spaceport.host-port";

/// Where the extra CA bundle appears inside Spaces.
pub const CA_BUNDLE_TARGET: &str = "/etc/spaceport/ca-certificates.crt";

/// Variables that make common clients (OpenSSL, Python requests, pip, git,
/// curl, Node) trust the CA bundle at [`CA_BUNDLE_TARGET`].
pub const CA_ENV: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
];

/// Installation settings that shape every container.
#[derive(Debug, Clone)]
pub struct ContainerSettings {
    /// Address the app port is published on: loopback, or a private
    /// address the proxy reaches.
    pub bind_ip: String,
    /// A PEM bundle Spaces must trust (a TLS-inspecting proxy's CA with the
    /// public ones). Mounted read-only; the variables in [`CA_ENV`] point
    /// at it.
    pub ca_bundle: Option<PathBuf>,
    /// Root of the hub cache (`hub/models--org--name`) and of persistent
    /// storage (`data/owner-name`); volumes are not mounted without it.
    pub volume_root: Option<PathBuf>,
    /// The installation the containers belong to (a label): several hubs
    /// on one Docker engine each adopt only their own containers.
    pub instance: Option<String>,
    /// The network Spaces join, on which they reach the outside but not
    /// each other ([`SPACES_NETWORK`] unless set; `None`: the engine's
    /// default network, where containers reach each other by address).
    pub network: Option<String>,
    /// Let an image's own USER stand. Off, every Space runs as uid 1000,
    /// as on Hugging Face: a docker Space whose image says nothing (root)
    /// or names another user runs as 1000 too.
    pub image_user: bool,
    /// Read-only image filesystems, with /tmp, HOME and the mounts (such
    /// as /data) writable. Off by default: many Spaces write next to their
    /// code, outside HOME.
    pub read_only_root: bool,
}

/// The network of Spaces on one engine.
pub const SPACES_NETWORK: &str = "spaceport-isolated";

/// HOME of a Space whose image runs as root and sets none, once it runs as
/// uid 1000 (which has no home in such an image).
pub const FALLBACK_HOME: &str = "/tmp";

impl Default for ContainerSettings {
    fn default() -> Self {
        ContainerSettings {
            bind_ip: "127.0.0.1".into(),
            ca_bundle: None,
            volume_root: None,
            instance: None,
            network: Some(SPACES_NETWORK.into()),
            image_user: false,
            read_only_root: false,
        }
    }
}

/// Where the hub puts the files of a Space's `index`-th API volume.
pub fn view_folder(volume_root: &std::path::Path, space: &SpaceId, index: usize) -> PathBuf {
    volume_root
        .join("views")
        .join(space.host_label())
        .join(index.to_string())
}

/// The container name of a Space's version.
pub fn container_name(space: &SpaceId, commit: &str) -> String {
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!(
        "spaceport-{}-{}",
        space.host_label(),
        commit.to_ascii_lowercase()
    )
}

/// The container of one Space version.
pub fn container_spec(
    space: &SpaceId,
    commit: &str,
    image: &str,
    run: &RunSpec,
    secrets: &BTreeMap<String, String>,
    gpus: &[GpuInfo],
    settings: &ContainerSettings,
) -> ContainerSpec {
    let mut env = run.env.clone();
    for name in &run.secret_env {
        if let Some(value) = secrets.get(name) {
            env.insert(name.clone(), value.clone());
        }
    }
    let mut mounts = Vec::new();
    if let Some(bundle) = &settings.ca_bundle {
        mounts.push(BindMount {
            source: bundle.clone(),
            target: CA_BUNDLE_TARGET.into(),
            read_only: true,
        });
        for name in CA_ENV {
            env.insert((*name).into(), CA_BUNDLE_TARGET.into());
        }
    }
    if let Some(root) = &settings.volume_root {
        for v in &run.volumes {
            let source = match &v.source {
                VolumeSource::HubRepo {
                    repo_type, repo_id, ..
                } => root.join("hub").join(format!(
                    "{}--{}",
                    repo_type.cache_prefix(),
                    repo_id.replace('/', "--")
                )),
                VolumeSource::Persistent { .. } => root.join("data").join(space.host_label()),
                VolumeSource::HubView { index, .. } => view_folder(root, space, *index),
            };
            mounts.push(BindMount {
                source,
                target: v.target.clone(),
                read_only: v.read_only,
            });
        }
    }
    let uuids: Vec<String> = gpus.iter().map(|g| g.uuid.clone()).collect();
    let mut labels = BTreeMap::from([
        (MANAGED_LABEL.to_owned(), "true".to_owned()),
        (SPACE_LABEL.to_owned(), space.to_string()),
        (COMMIT_LABEL.to_owned(), commit.to_owned()),
        (GPUS_LABEL.to_owned(), uuids.join(",")),
        (
            STARTUP_LABEL.to_owned(),
            run.startup_timeout_secs.to_string(),
        ),
    ]);
    if let Some(port) = run.port {
        labels.insert(PORT_LABEL.into(), port.to_string());
    }
    if let Some(instance) = &settings.instance {
        labels.insert(INSTANCE_LABEL.into(), instance.clone());
    }
    if let Some(h) = &run.health {
        labels.insert(HEALTH_LABEL.into(), h.path.clone());
    }
    let r = &run.resources;
    let user = run
        .user
        .or((!settings.image_user).then_some(crate::plan::dockerfile::SPACE_UID));
    ContainerSpec {
        name: container_name(space, commit),
        image: image.to_owned(),
        env,
        user: user.map(|u| format!("{u}:{u}")),
        labels,
        container_port: run.port,
        host_port: None,
        bind_ip: settings.bind_ip.clone(),
        nano_cpus: (r.cpu_millis > 0).then(|| (r.cpu_millis as i64).saturating_mul(1_000_000)),
        memory_bytes: (r.memory_bytes > 0).then(|| r.memory_bytes.min(i64::MAX as u64) as i64),
        pids_limit: (r.pids_limit > 0).then_some(i64::from(r.pids_limit)),
        mounts,
        gpu_device_ids: uuids,
        cmd: None,
        network: settings.network.clone(),
        fallback_home: user.map(|_| FALLBACK_HOME.into()),
        read_only_root: settings.read_only_root,
    }
}

/// Publishes the app on exactly `port` of the bind address. The engine
/// keeps an explicit binding across stops and starts, so the container
/// answers on the same address after every wake (an engine-chosen port may
/// change on each start).
pub fn fix_host_port(spec: &mut ContainerSpec, port: u16) {
    spec.host_port = Some(port);
    spec.labels.insert(HOST_PORT_LABEL.into(), port.to_string());
}

/// Gives a spec other GPUs: for creating a slept container again when its
/// GPUs went to another Space meanwhile.
pub fn set_gpus(spec: &mut ContainerSpec, gpus: &[GpuInfo]) {
    let uuids: Vec<String> = gpus.iter().map(|g| g.uuid.clone()).collect();
    spec.labels.insert(GPUS_LABEL.into(), uuids.join(","));
    spec.gpu_device_ids = uuids;
}
