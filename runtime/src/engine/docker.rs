//! The Docker engine through bollard: the local socket or DOCKER_HOST, API
//! version negotiated (older engines such as 20.10 speak 1.41, below
//! bollard's default).
//!
//! Builds without secrets use the classic builder, whose output arrives as
//! plain lines, streamed as they come. Builds that mount secrets (or other
//! `RUN --mount`s) need BuildKit; its session through bollard's Moby driver
//! is the one that serves secrets, from a file, so values never become
//! build args, layers or log lines. That driver returns no step output: the
//! log then holds what spaceport itself says and the final error.

use super::{
    BindMount, ContainerEngine, ContainerInfo, ContainerSpec, ContextStream, EngineError,
    ImageBuildSpec, LogSender, MANAGED_LABEL, Result, split_lines,
};
use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::grpc::build::{ImageBuildFrontendOptions, ImageBuildLoadInput, SecretSource};
use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, ImageConfig, Mount, MountType,
    NetworkCreateRequest, NetworkInspect, PortBinding,
};
use bollard::query_parameters::{
    BuildImageOptions, BuilderVersion, CreateContainerOptions, InspectContainerOptions,
    ListContainersOptions, LogsOptions, RemoveContainerOptions, RemoveImageOptions,
    StopContainerOptions,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::Path;

/// A Docker engine.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    /// The engine host's CPUs, in nano-CPUs: Docker refuses a container
    /// limit above it, so larger flavors are capped to the whole machine.
    host_nano_cpus: Option<i64>,
    /// Held while the isolated network is looked up and created.
    network_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

fn api(e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError { message, .. } => EngineError::Api(message),
        other => EngineError::Unavailable(other.to_string()),
    }
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerEngine {
    /// Connects to DOCKER_HOST or the local socket and agrees on an API
    /// version with the engine.
    pub async fn connect() -> Result<Self> {
        let docker = Docker::connect_with_defaults().map_err(api)?;
        Self::ready(docker, api).await
    }

    /// Agrees on an API version with a connected engine, checks that it
    /// answers, and reads its CPU count.
    async fn ready(
        docker: Docker,
        err: impl Fn(bollard::errors::Error) -> EngineError,
    ) -> Result<Self> {
        let docker = docker.negotiate_version().await.map_err(&err)?;
        docker.ping().await.map_err(&err)?;
        let host_nano_cpus = docker
            .info()
            .await
            .ok()
            .and_then(|i| i.ncpu)
            .filter(|n| *n > 0)
            .map(|n| n * 1_000_000_000);
        Ok(DockerEngine {
            docker,
            host_nano_cpus,
            network_lock: Default::default(),
        })
    }

    /// Connects to one Docker API endpoint (`unix:///path`, `tcp://host:port`
    /// or `http://host:port`); with `tls_dir` (holding ca.pem, cert.pem and
    /// key.pem) a tcp endpoint is spoken to over mutual TLS.
    pub async fn connect_to(endpoint: &str, tls_dir: Option<&Path>) -> Result<Self> {
        const TIMEOUT_SECS: u64 = 120;
        let version = bollard::API_DEFAULT_VERSION;
        let docker = match (endpoint.split_once("://"), tls_dir) {
            (Some(("unix", path)), None) if path.starts_with('/') => {
                Docker::connect_with_unix(endpoint, TIMEOUT_SECS, version)
            }
            (Some(("tcp" | "https", rest)), Some(dir)) if !rest.is_empty() => {
                Docker::connect_with_ssl(
                    endpoint,
                    &dir.join("key.pem"),
                    &dir.join("cert.pem"),
                    &dir.join("ca.pem"),
                    TIMEOUT_SECS,
                    version,
                )
            }
            (Some(("tcp" | "http", rest)), None) if !rest.is_empty() => {
                Docker::connect_with_http(endpoint, TIMEOUT_SECS, version)
            }
            _ => {
                return Err(EngineError::Unavailable(format!(
                    "'{endpoint}' is not a Docker API endpoint: use unix:///path, tcp://host:port, or tcp://host:port with a TLS folder"
                )));
            }
        }
        .map_err(|e| EngineError::Unavailable(format!("{endpoint}: {e}")))?;
        Self::ready(docker, |e| {
            EngineError::Unavailable(format!("{endpoint}: {e}"))
        })
        .await
    }

    /// The bollard client, for callers that need more than the trait.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    async fn build_classic(
        &self,
        spec: ImageBuildSpec,
        mut context: ContextStream,
        log: LogSender,
    ) -> Result<()> {
        let options = BuildImageOptions {
            dockerfile: spec.dockerfile.clone(),
            t: Some(spec.tag.clone()),
            nocache: spec.no_cache,
            rm: true,
            forcerm: true,
            buildargs: Some(spec.build_args.clone().into_iter().collect()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            version: BuilderVersion::BuilderV1,
            ..Default::default()
        };
        let body = futures_util::stream::poll_fn(move |cx| context.poll_recv(cx));
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_try_stream(body)));
        let mut pending = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                        for line in split_lines(&mut pending, text) {
                            let _ = log.send(line).await;
                        }
                    }
                    if let Some(detail) = info.error_detail {
                        let message = detail.message.unwrap_or_default();
                        let _ = log.send(message.clone()).await;
                        return Err(EngineError::BuildFailed(message));
                    }
                }
                Err(BollardError::DockerStreamError { error }) => {
                    let _ = log.send(error.clone()).await;
                    return Err(EngineError::BuildFailed(error));
                }
                Err(e) => return Err(api(e)),
            }
        }
        if !pending.is_empty() {
            let _ = log.send(std::mem::take(&mut pending)).await;
        }
        Ok(())
    }

    async fn build_buildkit(
        &self,
        spec: ImageBuildSpec,
        mut context: ContextStream,
        log: LogSender,
    ) -> Result<()> {
        let mut tar = Vec::new();
        while let Some(chunk) = context.recv().await {
            tar.extend_from_slice(&chunk.map_err(|e| EngineError::Context(e.to_string()))?);
        }
        let mut options = ImageBuildFrontendOptions::builder()
            .dockerfile(Path::new(&spec.dockerfile))
            .nocache(spec.no_cache);
        for (k, v) in &spec.build_args {
            options = options.buildarg(k, v);
        }
        for (k, v) in &spec.labels {
            options = options.label(k, v);
        }
        for (id, file) in &spec.secrets {
            options = options.set_secret(id, &SecretSource::File(file.clone()));
        }
        let _ = log
            .send(format!(
                "building with BuildKit ({} secret(s) mounted); step output is not streamed for these builds",
                spec.secrets.len()
            ))
            .await;
        let driver = bollard::grpc::driver::moby::Moby::new(&self.docker);
        let tag = spec.tag.clone();
        let options = options.build();
        // The driver's future is not Send; it runs on a thread of its own
        // and is abandoned (so the session closes) when the caller drops us.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = done_tx.send(Err(EngineError::Unavailable(e.to_string())));
                    return;
                }
            };
            rt.block_on(async move {
                let build = bollard::grpc::driver::Build::docker_build(
                    driver,
                    &tag,
                    options,
                    ImageBuildLoadInput::Upload(tar.into()),
                    None,
                    None,
                );
                tokio::select! {
                    r = build => {
                        let _ = done_tx.send(r.map_err(|e| EngineError::BuildFailed(e.to_string())));
                    }
                    _ = cancel_rx => {}
                }
            });
        });
        let _cancel_on_drop = cancel_tx;
        let result = done_rx
            .await
            .unwrap_or_else(|_| Err(EngineError::Unavailable("the build thread ended".into())));
        if let Err(EngineError::BuildFailed(message)) = &result {
            let _ = log.send(message.clone()).await;
        }
        result
    }
}

/// The driver option that turns traffic between a bridge's containers off.
const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";

/// The request that creates an isolated network: a bridge whose containers
/// reach the outside (masqueraded, as on the default bridge) but not each
/// other, labelled as spaceport's.
fn network_request(name: &str) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: name.to_owned(),
        driver: Some("bridge".into()),
        options: Some(HashMap::from([
            (ICC_OPTION.to_owned(), "false".to_owned()),
            (
                "com.docker.network.bridge.enable_ip_masquerade".to_owned(),
                "true".to_owned(),
            ),
        ])),
        labels: Some(HashMap::from([(
            MANAGED_LABEL.to_owned(),
            "true".to_owned(),
        )])),
        ..Default::default()
    }
}

/// Refuses a network of that name that lets its containers talk to each
/// other (made by hand, or by something else): joining it would undo the
/// isolation it stands for.
fn check_isolated(name: &str, network: &NetworkInspect) -> Result<()> {
    let icc = network
        .options
        .as_ref()
        .and_then(|o| o.get(ICC_OPTION))
        .map(String::as_str);
    if icc == Some("false") {
        Ok(())
    } else {
        Err(EngineError::Api(format!(
            "failed to use the network {name}: it lets containers reach each other \
             ({ICC_OPTION} is not false); remove it and spaceport creates it isolated"
        )))
    }
}

/// Whether an image's USER is root (empty means root).
fn is_root_user(user: Option<&str>) -> bool {
    let user = user.unwrap_or_default();
    let name = user.split(':').next().unwrap_or_default();
    matches!(name, "" | "root" | "0")
}

/// HOME as set by a list of `KEY=value` variables.
fn home_in(env: &[String]) -> Option<&str> {
    env.iter().rev().find_map(|kv| kv.strip_prefix("HOME="))
}

/// The user a container of `spec` runs as, by name or uid, without group.
fn effective_user(spec: &ContainerSpec, image: Option<&ImageConfig>) -> String {
    let user = spec
        .user
        .as_deref()
        .or(image.and_then(|i| i.user.as_deref()))
        .unwrap_or_default();
    match user.split(':').next().unwrap_or_default() {
        "" => "root".into(),
        name => name.to_owned(),
    }
}

/// The home folder that an /etc/passwd gives `user` (a name or a uid).
fn passwd_home(passwd: &str, user: &str) -> Option<String> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, uid, _, _, home, ..] = fields[..] else {
            return None;
        };
        ((name == user || uid == user) && home.starts_with('/')).then(|| home.to_owned())
    })
}

/// Whether HOME is set by the spec or the image's variables.
fn home_is_set(spec: &ContainerSpec, image: Option<&ImageConfig>) -> bool {
    spec.env.contains_key("HOME")
        || image
            .and_then(|i| i.env.as_deref())
            .and_then(home_in)
            .is_some()
}

/// The body that creates the container of `spec` from an image configured
/// as `image` (`None` when the image could not be read: then only what
/// the spec says is known), whose /etc/passwd gives its user `passwd_home`.
fn create_body(
    spec: &ContainerSpec,
    image: Option<&ImageConfig>,
    passwd_home: Option<&str>,
) -> ContainerCreateBody {
    let mut env = spec.env.clone();
    let image_home = image
        .and_then(|i| i.env.as_deref())
        .and_then(home_in)
        .map(str::to_owned);
    if !env.contains_key("HOME")
        && image_home.is_none()
        && passwd_home.is_none()
        && spec.user.is_some()
        && image.is_some_and(|i| is_root_user(i.user.as_deref()))
        && let Some(home) = &spec.fallback_home
    {
        env.insert("HOME".into(), home.clone());
    }
    // The engine itself sets HOME from the passwd entry.
    let home = env
        .get("HOME")
        .cloned()
        .or(image_home)
        .or(passwd_home.map(str::to_owned));
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: spec.user.clone(),
        env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(spec.labels.clone().into_iter().collect()),
        exposed_ports: spec.container_port.map(|p| vec![format!("{p}/tcp")]),
        cmd: spec.cmd.clone(),
        host_config: Some(host_config(spec, home.as_deref())),
        ..Default::default()
    }
}

/// Where `/tmp` is a tmpfs: sticky and world-writable as a disk /tmp, no
/// device files or setuid. Its pages count against the memory limit.
const TMPFS_OPTIONS: &str = "rw,nosuid,nodev,mode=1777";

/// `home` is the container's HOME when known; with a read-only root it
/// gets a volume of its own unless /tmp or a mount already covers it.
fn host_config(spec: &ContainerSpec, home: Option<&str>) -> HostConfig {
    let port_bindings = spec.container_port.map(|port| {
        HashMap::from([(
            format!("{port}/tcp"),
            Some(vec![PortBinding {
                host_ip: Some(spec.bind_ip.clone()),
                host_port: Some(spec.host_port.map(|p| p.to_string()).unwrap_or_default()),
            }]),
        )])
    });
    let mut mounts: Vec<Mount> = spec
        .mounts
        .iter()
        .map(
            |BindMount {
                 source,
                 target,
                 read_only,
             }| Mount {
                target: Some(target.clone()),
                source: Some(source.to_string_lossy().into_owned()),
                typ: Some(MountType::BIND),
                read_only: Some(*read_only),
                ..Default::default()
            },
        )
        .collect();
    let under = |path: &str, folder: &str| {
        let folder = folder.trim_end_matches('/');
        path == folder || path.starts_with(&format!("{folder}/"))
    };
    let mut tmpfs = None;
    if spec.read_only_root {
        tmpfs = Some(HashMap::from([(
            "/tmp".to_owned(),
            TMPFS_OPTIONS.to_owned(),
        )]));
        if let Some(home) = home.map(|h| h.trim_end_matches('/'))
            && home.starts_with('/')
            && !home.is_empty()
            && !under(home, "/tmp")
            && !spec.mounts.iter().any(|m| under(home, &m.target))
        {
            // An anonymous volume starts as a copy of the image's folder
            // (owner included), so files the image put in HOME stay.
            mounts.push(Mount {
                target: Some(home.to_owned()),
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            });
        }
    }
    let device_requests = (!spec.gpu_device_ids.is_empty()).then(|| {
        vec![DeviceRequest {
            driver: Some("nvidia".into()),
            device_ids: Some(spec.gpu_device_ids.clone()),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }]
    });
    HostConfig {
        port_bindings,
        mounts: Some(mounts),
        device_requests,
        nano_cpus: spec.nano_cpus,
        memory: spec.memory_bytes,
        pids_limit: spec.pids_limit,
        privileged: Some(false),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        network_mode: spec.network.clone(),
        readonly_rootfs: spec.read_only_root.then_some(true),
        tmpfs,
        ..Default::default()
    }
}

fn info_from_inspect(r: bollard::models::ContainerInspectResponse) -> ContainerInfo {
    let state = r.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let exited = !running
        && state
            .finished_at
            .as_deref()
            .is_some_and(|f| !f.starts_with("0001"));
    let host_port = r
        .network_settings
        .and_then(|n| n.ports)
        .into_iter()
        .flat_map(|ports| ports.into_values())
        .flatten()
        .flatten()
        .filter_map(|b| b.host_port.and_then(|p| p.parse().ok()))
        .next();
    let config = r.config.unwrap_or_default();
    ContainerInfo {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: config.image.unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        running,
        exit_code: if exited { state.exit_code } else { None },
        host_port,
    }
}

impl DockerEngine {
    /// Makes sure the isolated network `name` exists, creating it when
    /// missing; one of that name that is not isolated is refused.
    async fn ensure_network(&self, name: &str) -> Result<()> {
        // One check-then-create at a time: older engines accept a second
        // network of the same name, which makes the name ambiguous.
        let _one = self.network_lock.lock().await;
        match self.docker.inspect_network(name, None).await {
            Ok(n) => return check_isolated(name, &n),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api(e)),
        }
        match self.docker.create_network(network_request(name)).await {
            Ok(_) => {
                tracing::info!(network = name, "created the isolated network of Spaces");
                Ok(())
            }
            // Another hub on this engine made it meanwhile.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                let n = self.docker.inspect_network(name, None).await.map_err(api)?;
                check_isolated(name, &n)
            }
            Err(e) => Err(EngineError::Api(format!(
                "failed to create the network {name}: {e}"
            ))),
        }
    }

    /// The /etc/passwd of an image, read from a container created for
    /// that alone (never started, then removed); `None` when it has none
    /// or it cannot be read.
    async fn read_passwd(&self, image: &str) -> Option<String> {
        const MAX_BYTES: usize = 1 << 20;
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            // Images FROM scratch may have no CMD; this one never runs.
            cmd: Some(vec!["/nonexistent".into()]),
            labels: Some(HashMap::from([(
                MANAGED_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .ok()?
            .id;
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
            .path("/etc/passwd")
            .build();
        let mut stream = self.docker.download_from_container(&id, Some(options));
        let mut tar = Vec::new();
        let mut complete = true;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) if tar.len() + c.len() <= MAX_BYTES => tar.extend_from_slice(&c),
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        drop(stream);
        let _ = self.remove_container(&id).await;
        if !complete {
            return None;
        }
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entry = archive.entries().ok()?.next()?.ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).ok()?;
        Some(text)
    }

    /// The spec with its CPU limit capped to the engine host's CPUs.
    fn fit(&self, spec: &ContainerSpec) -> ContainerSpec {
        let mut spec = spec.clone();
        if let (Some(want), Some(host)) = (spec.nano_cpus, self.host_nano_cpus)
            && want > host
        {
            tracing::warn!(
                container = %spec.name,
                asked = want as f64 / 1e9,
                host = host as f64 / 1e9,
                "the flavor asks for more CPUs than this machine has; capped to the machine"
            );
            spec.nano_cpus = Some(host);
        }
        spec
    }
}

impl ContainerEngine for DockerEngine {
    async fn build_image(
        &self,
        spec: ImageBuildSpec,
        context: ContextStream,
        log: LogSender,
    ) -> Result<()> {
        if spec.buildkit {
            self.build_buildkit(spec, context, log).await
        } else {
            self.build_classic(spec, context, log).await
        }
    }

    async fn image_exists(&self, tag: &str) -> Result<bool> {
        match self.docker.inspect_image(tag).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(api(e)),
        }
    }

    async fn remove_image(&self, tag: &str) -> Result<()> {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        match self.docker.remove_image(tag, Some(options), None).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(e)),
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        if let Some(network) = &spec.network {
            self.ensure_network(network).await?;
        }
        // HOME decides what a read-only root leaves writable and whether a
        // replaced root user needs one: the image's settings say.
        let image = if spec.user.is_some() || spec.read_only_root {
            match self.docker.inspect_image(&spec.image).await {
                Ok(i) => i.config,
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(api(e)),
            }
        } else {
            None
        };
        let passwd = if image.is_some() && !home_is_set(spec, image.as_ref()) {
            let user = effective_user(spec, image.as_ref());
            self.read_passwd(&spec.image)
                .await
                .and_then(|p| passwd_home(&p, &user))
        } else {
            None
        };
        let body = create_body(&self.fit(spec), image.as_ref(), passwd.as_deref());
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(api)?;
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.docker.start_container(id, None).await.map_err(api)
    }

    async fn stop_container(&self, id: &str, grace_secs: u32) -> Result<()> {
        let options = StopContainerOptions {
            t: Some(grace_secs as i32),
            ..Default::default()
        };
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(api(e)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(e)),
        }
    }

    async fn copy_out(&self, id: &str, path: &str, dest: &Path, max_bytes: u64) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let options = bollard::query_parameters::DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| EngineError::Api(format!("failed to create {}: {e}", dest.display())))?;
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(api)?;
            written += chunk.len() as u64;
            if written > max_bytes {
                return Err(EngineError::Api(format!(
                    "{path} is larger than the {max_bytes} bytes allowed"
                )));
            }
            file.write_all(&chunk).await.map_err(|e| {
                EngineError::Api(format!("failed to write {}: {e}", dest.display()))
            })?;
        }
        file.flush()
            .await
            .map_err(|e| EngineError::Api(format!("failed to write {}: {e}", dest.display())))?;
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>> {
        match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(r) => Ok(Some(info_from_inspect(r))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(e)),
        }
    }

    async fn list_containers(&self, labels: &[(String, String)]) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([(
            "label".to_owned(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(api)?;
        let mut out = Vec::new();
        for s in summaries {
            if let Some(id) = s.id
                && let Some(info) = self.inspect_container(&id).await?
            {
                out.push(info);
            }
        }
        Ok(out)
    }

    async fn follow_logs(&self, id: &str, since: i64, log: LogSender) -> Result<()> {
        let options = LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            since: since.clamp(0, i32::MAX as i64) as i32,
            tail: "all".into(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(id, Some(options));
        let mut pending = String::new();
        while let Some(item) = stream.next().await {
            let output = match item {
                Ok(o) => o,
                Err(e) if is_not_found(&e) => break,
                Err(e) => return Err(api(e)),
            };
            let text = String::from_utf8_lossy(&output.into_bytes()).into_owned();
            for line in split_lines(&mut pending, &text) {
                if log.send(line).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !pending.is_empty() {
            let _ = log.send(pending).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_is_unprivileged_with_loopback_ports_and_read_only_mounts() {
        let spec = ContainerSpec {
            container_port: Some(7860),
            bind_ip: "127.0.0.1".into(),
            mounts: vec![BindMount {
                source: "/cache/models--a--b".into(),
                target: "/home/user/.cache/huggingface/hub/models--a--b".into(),
                read_only: true,
            }],
            gpu_device_ids: vec!["GPU-1".into()],
            pids_limit: Some(4096),
            ..ContainerSpec::default()
        };
        let hc = host_config(&spec, None);
        assert_eq!(hc.privileged, Some(false));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(hc.security_opt, Some(vec!["no-new-privileges".to_owned()]));
        assert_eq!(hc.pids_limit, Some(4096));
        let binding = &hc.port_bindings.unwrap()["7860/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            binding.host_port.as_deref(),
            Some(""),
            "the engine picks the port"
        );
        assert_eq!(hc.mounts.unwrap()[0].read_only, Some(true));
        let gpu = &hc.device_requests.unwrap()[0];
        assert_eq!(gpu.device_ids, Some(vec!["GPU-1".to_owned()]));
        assert_eq!(gpu.driver.as_deref(), Some("nvidia"));
    }

    fn image(user: &str, env: &[&str]) -> ImageConfig {
        ImageConfig {
            user: Some(user.into()),
            env: Some(env.iter().map(|e| (*e).to_owned()).collect()),
            ..Default::default()
        }
    }

    fn as_uid_1000() -> ContainerSpec {
        ContainerSpec {
            user: Some("1000:1000".into()),
            fallback_home: Some("/tmp".into()),
            network: Some("spaceport-isolated".into()),
            ..ContainerSpec::default()
        }
    }

    fn env_of(body: &ContainerCreateBody) -> Vec<String> {
        body.env.clone().unwrap_or_default()
    }

    #[test]
    fn a_container_joins_the_isolated_network_and_runs_as_the_spec_user() {
        let body = create_body(&as_uid_1000(), Some(&image("", &[])), None);
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("spaceport-isolated"));
        assert_eq!(
            hc.readonly_rootfs, None,
            "the root stays writable by default"
        );
        assert_eq!(hc.tmpfs, None);
    }

    #[test]
    fn the_isolated_network_turns_traffic_between_its_containers_off() {
        let request = network_request("spaceport-isolated");
        assert_eq!(request.driver.as_deref(), Some("bridge"));
        assert_eq!(request.options.unwrap()[ICC_OPTION], "false");
        assert_eq!(request.labels.unwrap()[MANAGED_LABEL], "true");
        let open = NetworkInspect {
            options: Some(HashMap::new()),
            ..Default::default()
        };
        let err = check_isolated("spaceport-isolated", &open).unwrap_err();
        assert!(
            err.to_string().contains("failed to use the network"),
            "{err}"
        );
        let closed = NetworkInspect {
            options: Some(HashMap::from([(ICC_OPTION.into(), "false".into())])),
            ..Default::default()
        };
        assert!(check_isolated("spaceport-isolated", &closed).is_ok());
    }

    #[test]
    fn a_root_image_without_home_gets_the_fallback_home_once_it_runs_as_1000() {
        let body = create_body(&as_uid_1000(), Some(&image("", &["PATH=/bin"])), None);
        assert!(env_of(&body).contains(&"HOME=/tmp".to_owned()));
        let body = create_body(&as_uid_1000(), Some(&image("root", &[])), None);
        assert!(env_of(&body).contains(&"HOME=/tmp".to_owned()));
    }

    #[test]
    fn a_home_from_the_image_its_user_or_the_spec_is_kept() {
        let set = create_body(&as_uid_1000(), Some(&image("", &["HOME=/home/user"])), None);
        assert!(!env_of(&set).iter().any(|e| e.starts_with("HOME=")));
        // The image's user has a passwd entry, which gives its HOME.
        let named = create_body(&as_uid_1000(), Some(&image("user", &[])), None);
        assert!(!env_of(&named).iter().any(|e| e.starts_with("HOME=")));
        let mut spec = as_uid_1000();
        spec.env.insert("HOME".into(), "/srv".into());
        assert!(
            env_of(&create_body(&spec, Some(&image("", &[])), None)).contains(&"HOME=/srv".into())
        );
        // The image keeps its own user: nothing to replace.
        let mut own = as_uid_1000();
        own.user = None;
        assert!(
            !env_of(&create_body(&own, Some(&image("", &[])), None))
                .iter()
                .any(|e| e.starts_with("HOME="))
        );
    }

    #[test]
    fn a_read_only_root_keeps_tmp_home_and_data_writable() {
        let mut spec = as_uid_1000();
        spec.read_only_root = true;
        spec.mounts = vec![BindMount {
            source: "/srv/data/alice-demo".into(),
            target: "/data".into(),
            read_only: false,
        }];
        let body = create_body(&spec, Some(&image("1000", &["HOME=/home/user"])), None);
        let hc = body.host_config.unwrap();
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.tmpfs.unwrap()["/tmp"], TMPFS_OPTIONS);
        let mounts = hc.mounts.unwrap();
        let home = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/home/user"))
            .expect("a volume at HOME");
        assert_eq!(home.typ, Some(MountType::VOLUME));
        assert_eq!(home.source, None, "a fresh anonymous volume");
        let data = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/data"))
            .unwrap();
        assert_eq!(data.read_only, Some(false));
    }

    #[test]
    fn a_home_under_tmp_or_a_mount_gets_no_volume_of_its_own() {
        let mut spec = as_uid_1000();
        spec.read_only_root = true;
        let hc = create_body(&spec, Some(&image("", &[])), None)
            .host_config
            .unwrap();
        assert!(hc.mounts.unwrap().is_empty(), "HOME=/tmp is on the tmpfs");
        spec.mounts = vec![BindMount {
            source: "/srv/data/x".into(),
            target: "/data".into(),
            read_only: false,
        }];
        spec.env.insert("HOME".into(), "/data/home".into());
        let hc = create_body(&spec, Some(&image("", &[])), None)
            .host_config
            .unwrap();
        assert_eq!(hc.mounts.unwrap().len(), 1, "only /data");
    }

    #[test]
    fn the_passwd_entry_of_a_name_or_uid_gives_its_home() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/sh\nbroken\n";
        assert_eq!(passwd_home(passwd, "1000").as_deref(), Some("/home/user"));
        assert_eq!(passwd_home(passwd, "user").as_deref(), Some("/home/user"));
        assert_eq!(passwd_home(passwd, "root").as_deref(), Some("/root"));
        assert_eq!(passwd_home(passwd, "1001"), None);
        let spec = as_uid_1000();
        assert_eq!(effective_user(&spec, Some(&image("", &[]))), "1000");
        let own = ContainerSpec::default();
        assert_eq!(effective_user(&own, Some(&image("", &[]))), "root");
        assert_eq!(
            effective_user(&own, Some(&image("user:users", &[]))),
            "user"
        );
    }

    #[test]
    fn a_home_from_passwd_is_kept_and_made_writable_under_a_read_only_root() {
        let mut spec = as_uid_1000();
        spec.read_only_root = true;
        let body = create_body(&spec, Some(&image("", &[])), Some("/home/user"));
        assert!(
            !env_of(&body).iter().any(|e| e.starts_with("HOME=")),
            "the engine sets HOME from passwd"
        );
        let mounts = body.host_config.unwrap().mounts.unwrap();
        assert_eq!(mounts[0].target.as_deref(), Some("/home/user"));
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
    }

    #[test]
    fn no_gpus_means_no_device_request() {
        assert!(
            host_config(&ContainerSpec::default(), None)
                .device_requests
                .is_none()
        );
    }
}
