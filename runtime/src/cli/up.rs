//! `spaceport up`: the single-node platform in one process on one port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::build::{BuildSettings, Builder};
use crate::engine::{ContainerEngine, DockerEngine};
use crate::gpu::{GpuAllocator, GpuProbe, NvmlProbe};
use crate::hardware::FlavorCatalog;
use crate::hub::plugs::{StoreAccess, StoreSink};
use crate::hub::server::HubFallback;
use crate::hub::sleep::HubWaker;
use crate::hub::{Hub, HubConfig};
use crate::local::{ProcessEngine, ProcessSettings};
use crate::plan::PlanSettings;
use crate::repos::RepoStore;
use crate::run::{ContainerSettings, RunSettings, Runner};
use crate::state::{Store, TokenScope};

/// The name of the first user, created on the first start.
pub const ADMIN_USER: &str = "admin";

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  spaceport up
  spaceport up --data-dir /srv/spaceport --listen 0.0.0.0:8080 --domain spaces.example.org
  SPACEPORT_ADMIN_TOKEN=hf_mysecrettoken0123 spaceport up --sleep-check 2

Spaces are served at http://<owner>-<name>.<domain>:<port>/ (browsers and curl
resolve *.localhost to this machine; Python and other glibc programs do not:
use http://<listen>/apps/<owner>/<name>/ or an /etc/hosts line for those).")]
pub struct UpArgs {
    /// Where the database, the secret key, the repos and the builds live.
    #[arg(long, env = "SPACEPORT_DATA_DIR", default_value = "spaceport-data")]
    pub data_dir: PathBuf,
    /// Address and port to listen on (one port for the hub and every Space).
    #[arg(long, env = "SPACEPORT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Spaces are served at `<owner>-<name>.<domain>`.
    #[arg(long, env = "SPACEPORT_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// The hub's URL as users reach it (default: http://<domain>:<port>).
    #[arg(long, env = "SPACEPORT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Sleep time of Spaces whose owner set none, in seconds (-1: never).
    #[arg(long, env = "SPACEPORT_DEFAULT_SLEEP", default_value_t = 48 * 3600, allow_negative_numbers = true)]
    pub default_sleep: i64,
    /// How often idle Spaces are looked for, in seconds.
    #[arg(long, env = "SPACEPORT_SLEEP_CHECK", default_value_t = 10)]
    pub sleep_check: u64,
    /// Base image of gradio and streamlit Spaces (`{python_version}` is replaced).
    #[arg(
        long,
        env = "SPACEPORT_PYTHON_IMAGE",
        default_value = "python:{python_version}"
    )]
    pub python_image: String,
    /// Image in which static Spaces run their app_build_command.
    #[arg(long, env = "SPACEPORT_STATIC_BUILD_IMAGE", default_value = "node:20")]
    pub static_build_image: String,
    /// A YAML file of hardware flavors (default: Hugging Face's).
    #[arg(long, env = "SPACEPORT_FLAVORS")]
    pub flavors: Option<PathBuf>,
    /// A PEM bundle that builds and Spaces must trust (corporate TLS proxies).
    #[arg(long, env = "SPACEPORT_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// Largest git push accepted, in bytes.
    #[arg(long, env = "SPACEPORT_MAX_PUSH_BYTES", default_value_t = 1 << 30)]
    pub max_push_bytes: u64,
    /// Folder of example Spaces to serve when the hub has none yet
    /// (default: ./examples when it exists; "none" to skip).
    #[arg(long, env = "SPACEPORT_EXAMPLES")]
    pub examples: Option<String>,
    /// How often usage counts are written to the database, in seconds.
    #[arg(long, env = "SPACEPORT_ANALYTICS_INTERVAL", default_value_t = 10)]
    pub analytics_interval: u64,
    /// Build time limit, in seconds.
    #[arg(long, env = "SPACEPORT_BUILD_TIMEOUT", default_value_t = 3600)]
    pub build_timeout: u64,
    /// Largest size of the model and dataset cache in bytes (snapshots no
    /// Space mounts are evicted, least recently used first).
    #[arg(long, env = "SPACEPORT_CACHE_MAX_BYTES")]
    pub cache_max_bytes: Option<u64>,
    /// An HF-compatible hub (https://huggingface.co, a mirror) that the
    /// models and datasets Spaces name come from when this hub has no repo
    /// of that name.
    #[arg(long, env = "SPACEPORT_MODELS_UPSTREAM")]
    pub models_upstream: Option<String>,
    /// The token for --models-upstream (private or gated repos).
    #[arg(long, env = "SPACEPORT_MODELS_UPSTREAM_TOKEN", hide_env_values = true)]
    pub models_upstream_token: Option<String>,
    /// What runs the Spaces: docker (containers), process (local
    /// processes, no isolation: for machines without Docker), or auto
    /// (docker when a Docker engine answers, else process).
    #[arg(long, env = "SPACEPORT_RUNNER", value_enum, default_value_t = RunnerKind::Auto)]
    pub runner: RunnerKind,
    /// Let a docker Space's image choose its user (its USER, root when it
    /// names none). Without it every Space runs as uid 1000, as on Hugging
    /// Face.
    #[arg(long, env = "SPACEPORT_ALLOW_IMAGE_USER")]
    pub allow_image_user: bool,
    /// Run Space containers with a read-only root filesystem: /tmp (a
    /// tmpfs), HOME and /data stay writable. Spaces that write next to
    /// their code elsewhere fail with it.
    #[arg(long, env = "SPACEPORT_READ_ONLY_ROOT")]
    pub read_only_root: bool,
    /// The Python that makes the environments of Spaces run as processes.
    #[arg(long, env = "SPACEPORT_PYTHON", default_value = "python3")]
    pub python: String,
    /// Where the Python environments of process-run Spaces are kept
    /// (default: <data-dir>/venvs; `spaceport dev` can share it).
    #[arg(long, env = "SPACEPORT_VENVS")]
    pub venvs: Option<PathBuf>,
}

/// What runs the Spaces of `spaceport up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerKind {
    /// Docker when an engine answers, else local processes.
    Auto,
    /// Containers on a Docker engine (isolated; every SDK).
    Docker,
    /// Local processes of this user (gradio, streamlit and static only;
    /// no isolation).
    Process,
}

/// Said at start when Spaces run as processes.
pub const PROCESS_WARNING: &str = "WARNING: Spaces run as local processes (the process runner): their code runs as this user, with this user's files and network, and is not isolated. Run only Spaces you trust, or start Docker. docker Spaces are refused.";

impl UpArgs {
    fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}:{}", self.domain, self.listen.port()),
        }
    }

    /// Checks everything that can be checked before binding a port.
    fn validate(&self) -> anyhow::Result<()> {
        if self.domain.is_empty()
            || self.domain.starts_with('.')
            || !self
                .domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            bail!(
                "invalid --domain '{}': give a DNS name such as localhost or spaces.example.org",
                self.domain
            );
        }
        if self.default_sleep == 0 || self.default_sleep < -1 {
            bail!(
                "invalid --default-sleep {}: give seconds above 0, or -1 for never",
                self.default_sleep
            );
        }
        if self.analytics_interval == 0 {
            bail!("--analytics-interval must be at least 1 second");
        }
        if self.sleep_check == 0 {
            bail!("--sleep-check must be at least 1 second");
        }
        if let Some(ca) = &self.ca_bundle
            && !ca.is_file()
        {
            bail!("--ca-bundle {} is not a readable file", ca.display());
        }
        Ok(())
    }
}

/// Runs the hub until Ctrl-C or SIGTERM.
pub fn run(args: &UpArgs) -> anyhow::Result<()> {
    super::init_logging("info");
    args.validate()?;
    let rt = tokio::runtime::Runtime::new().context("failed to start the async runtime")?;
    rt.block_on(up(args.clone()))
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let catalog = match &args.flavors {
        Some(p) => FlavorCatalog::from_file(p)
            .with_context(|| format!("failed to read the flavors in {}", p.display()))?,
        None => FlavorCatalog::builtin(),
    };
    prepare_data_dir(&args.data_dir)?;
    // Everything that can fail without side effects comes first, so that a
    // first start that fails does not leave an admin whose token nobody saw.
    const NO_DOCKER: &str = "failed to reach the Docker engine (--runner docker runs Spaces as containers: start Docker, or set DOCKER_HOST)";
    match args.runner {
        RunnerKind::Docker => {
            let engine = DockerEngine::connect().await.context(NO_DOCKER)?;
            serve(args, catalog, Arc::new(engine), false).await
        }
        RunnerKind::Process => {
            let engine = process_engine(&args).await?;
            serve(args, catalog, Arc::new(engine), true).await
        }
        RunnerKind::Auto => match DockerEngine::connect().await {
            Ok(engine) => serve(args, catalog, Arc::new(engine), false).await,
            Err(e) => {
                tracing::warn!(error = %e, "no Docker engine answers: Spaces run as local processes");
                let engine = process_engine(&args).await?;
                serve(args, catalog, Arc::new(engine), true).await
            }
        },
    }
}

/// Makes the data dir and the folders the hub keeps in it owner-only
/// (0700, tightening looser existing ones) before anything writes there:
/// they hold private repos, their exported files and the node's key.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    let private = |d: &Path| {
        crate::state::private_dir(d).with_context(|| format!("failed to prepare {}", d.display()))
    };
    private(dir)?;
    for sub in ["repos", "trees", "cache"] {
        private(&dir.join(sub))?;
    }
    // Only there when Spaces ran as local processes.
    for sub in ["processes", "venvs"] {
        let d = dir.join(sub);
        if d.is_dir() {
            private(&d)?;
        }
    }
    Ok(())
}

/// The process runner, under the data dir.
async fn process_engine(args: &UpArgs) -> anyhow::Result<ProcessEngine> {
    let plan = plan_settings(args);
    ProcessEngine::new(ProcessSettings {
        root: args.data_dir.join("processes"),
        venvs: args
            .venvs
            .clone()
            .unwrap_or_else(|| args.data_dir.join("venvs")),
        python: args.python.clone(),
        plan,
    })
    .await
    .map_err(|e| anyhow::anyhow!("failed to set up the process runner: {e}"))
}

fn plan_settings(args: &UpArgs) -> PlanSettings {
    PlanSettings {
        domain: args.domain.clone(),
        hub_url: args.public_url(),
        python_base_image: args.python_image.clone(),
        static_build_image: args.static_build_image.clone(),
        ..PlanSettings::default()
    }
}

async fn serve<E: ContainerEngine>(
    args: UpArgs,
    catalog: FlavorCatalog,
    engine: Arc<E>,
    processes: bool,
) -> anyhow::Result<()> {
    if processes {
        tracing::warn!("{PROCESS_WARNING}");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let store = Arc::new(Store::open(&args.data_dir).context("failed to open the database")?);
    let admin_token = bootstrap_admin(&store)?;
    let instance = instance_id(&store)?;
    let probe: Arc<dyn GpuProbe> = Arc::new(NvmlProbe::new());
    let gpus = Arc::new(Mutex::new(GpuAllocator::new(probe.inventory())));
    let runner = Runner::new(
        engine.clone(),
        gpus,
        RunSettings {
            container: ContainerSettings {
                ca_bundle: args.ca_bundle.clone(),
                instance: Some(instance),
                volume_root: Some(args.data_dir.join("cache")),
                image_user: args.allow_image_user,
                read_only_root: args.read_only_root,
                ..ContainerSettings::default()
            },
            ..RunSettings::default()
        },
    );
    let builder = Builder::new(
        engine.clone(),
        BuildSettings {
            time_limit: Duration::from_secs(args.build_timeout),
            ..BuildSettings::default()
        },
    );
    let repos = RepoStore::open(args.data_dir.join("repos"))
        .context("failed to open the repos")?
        .with_max_push_bytes(args.max_push_bytes)
        // A pack compresses: bound what a commit may unpack to as well
        // (four times the push cap, at least 1 GiB), and its file count.
        .with_export_limits(crate::repos::ExportLimits {
            max_bytes: args.max_push_bytes.saturating_mul(4).max(1 << 30),
            max_entries: crate::folder::MAX_FILES as u64,
        });
    let public_url = args.public_url();
    let plan = plan_settings(&args);
    let config = HubConfig {
        data_dir: args.data_dir.clone(),
        domain: args.domain.clone(),
        public_url: public_url.clone(),
        port: args.listen.port(),
        plan,
        catalog,
        default_sleep_secs: args.default_sleep,
        sleep_check: Duration::from_secs(args.sleep_check),
        cache_max_bytes: args.cache_max_bytes,
        models_upstream: args
            .models_upstream
            .clone()
            .map(|u| (u, args.models_upstream_token.clone())),
    };
    let hub = Hub::new(config, store.clone(), repos, builder, runner);
    hub.attach_metrics(
        crate::hub::metrics::HubMetrics::new(Some(probe))
            .context("failed to set up the metrics")?,
    );
    let proxy = spaceport_proxy::Proxy::builder(spaceport_proxy::ProxyConfig {
        domain: Some(args.domain.clone()),
        path_prefix: "/apps".into(),
        hub_origin: Some(public_url.clone()),
        hub_cookies: crate::hub::ui::session::HUB_COOKIES
            .iter()
            .map(|c| (*c).to_owned())
            .collect(),
        report_interval: Duration::from_secs(args.analytics_interval),
        ..Default::default()
    })
    .access(StoreAccess::new(store.clone()))
    .waker(HubWaker(hub.clone()))
    .sink(StoreSink(store.clone()))
    .fallback(HubFallback(crate::hub::web::router(hub.clone())))
    .build()
    .context("invalid proxy settings")?;
    hub.attach_proxy(proxy.clone());
    let adopted = hub
        .runner()
        .adopt()
        .await
        .context("failed to look for running Spaces")?;
    if !adopted.is_empty() {
        tracing::info!(count = adopted.len(), "adopted running Spaces");
    }
    hub.recover(&adopted).await;
    if let Some(dir) = examples_dir(&args) {
        match hub.seed_examples(&dir, ADMIN_USER).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, from = %dir.display(), "serving the example Spaces"),
            Err(e) => tracing::warn!(error = %e, "failed to load the example Spaces"),
        }
    }
    hub.spawn_sleeper();
    print_banner(&args, &public_url, admin_token.as_deref(), processes);
    proxy
        .serve(listener, None, shutdown())
        .await
        .context("the server failed")?;
    if processes {
        tracing::info!(
            "stopped; the Spaces' processes end with it and start again on the next start"
        );
    } else {
        tracing::info!("stopped; running Spaces keep running and are adopted on the next start");
    }
    Ok(())
}

fn examples_dir(args: &UpArgs) -> Option<PathBuf> {
    match args.examples.as_deref() {
        Some("none") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let p = Path::new("examples");
            p.is_dir().then(|| p.to_owned())
        }
    }
}

/// This installation's id, made on the first start: its containers carry
/// it, so that two hubs on one Docker engine never adopt each other's.
fn instance_id(store: &Store) -> anyhow::Result<String> {
    if let Some(id) = store.setting("instance")? {
        return Ok(id);
    }
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("failed to read random bytes"))?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    store.set_setting("instance", &id)?;
    Ok(id)
}

/// Creates the admin user on the first start; imports SPACEPORT_ADMIN_TOKEN.
/// Returns a token to print when one was made here.
fn bootstrap_admin(store: &Store) -> anyhow::Result<Option<String>> {
    let from_env = std::env::var("SPACEPORT_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let fresh = store.user(ADMIN_USER)?.is_none();
    if fresh {
        store.create_user(ADMIN_USER, Some("Administrator"), true)?;
    }
    match from_env {
        Some(token) => {
            store
                .import_token(
                    ADMIN_USER,
                    "SPACEPORT_ADMIN_TOKEN",
                    TokenScope::Write,
                    &token,
                )
                .context("failed to use SPACEPORT_ADMIN_TOKEN")?;
            Ok(None)
        }
        None if fresh => {
            let (_, token) = store.create_token(ADMIN_USER, "first start", TokenScope::Write)?;
            Ok(Some(token))
        }
        None => Ok(None),
    }
}

fn print_banner(args: &UpArgs, public_url: &str, token: Option<&str>, processes: bool) {
    let mut text = format!(
        "\nspaceport is up: {public_url}\n  Spaces at http://<owner>-<name>.{}:{}/ (or {public_url}/apps/<owner>/<name>/)\n  data in {}\n",
        args.domain,
        args.listen.port(),
        args.data_dir.display()
    );
    if processes {
        text.push_str(&format!("\n{PROCESS_WARNING}\n"));
    }
    match token {
        Some(t) => text.push_str(&format!(
            "\nCreated the user '{ADMIN_USER}' with this write token (shown once; keep it):\n  {t}\n\nUse it:\n  python -c \"from huggingface_hub import HfApi; print(HfApi(endpoint='{public_url}', token='{t}').whoami())\"\n  git clone {public_url}/spaces/{ADMIN_USER}/<name>   (user {ADMIN_USER}, the token as password)\n"
        )),
        None => text.push_str(&format!(
            "\nSign in as '{ADMIN_USER}' with the token from the first start or SPACEPORT_ADMIN_TOKEN.\n"
        )),
    }
    eprintln!("{text}");
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
