//! `spaceport-controller`: the Kubernetes controller binary. Parses the
//! command line and hands over to the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use spaceport_controller::build::docker::{DockerBuilder, DockerSettings};
use spaceport_controller::desired::{CacheVolume, ControllerSettings};
use spaceport_controller::leader::LeaseSettings;
use spaceport_controller::manifest::{self, Source};
use spaceport_controller::operator::{self, RunConfig};
use spaceport_controller::proxy::ProxyOptions;
use spaceport_controller::reconcile::HubSource;
use spaceport_controller::source::{poll, webhook};
use spaceport_runtime::hardware::FlavorCatalog;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The spaceport Kubernetes controller.
///
/// Reconciles `Space` resources (group spaceport.dev) into running apps.
#[derive(Debug, Parser)]
#[command(name = "spaceport-controller", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller: reconcile Spaces into Deployments and Services,
    /// build them, sleep and wake them.
    ///
    /// Serves /healthz, /readyz, /metrics and the build logs on --listen.
    /// With --lease-namespace, several replicas can run: the one holding
    /// the Lease works, the others wait.
    Run(Box<RunArgs>),
    /// Print the Space CustomResourceDefinition as YAML.
    ///
    /// Example: spaceport-controller crd | kubectl apply -f -
    Crd,
    /// Print a Space resource made from a Space folder's README.
    ///
    /// Example: spaceport-controller manifest examples/gradio-hello --hub spaceport/gradio-hello
    Manifest(ManifestArgs),
    /// Serve Spaces: the spaceport proxy, routing from the cluster's Spaces.
    ///
    /// Example: spaceport-controller proxy --domain spaces.example.com --hub-url http://spaceport-hub:7860
    Proxy(ProxyArgs),
    /// Run the hub (git push, HF API, web UI) with its Spaces as Space
    /// resources.
    ///
    /// Example: spaceport-controller hub --namespace spaces --public-url https://hub.example.org
    Hub(spaceport_controller::hub::serve::HubArgs),
}

#[derive(Debug, clap::Args)]
struct ProxyArgs {
    /// Where visitors connect.
    #[arg(long, env = "SPACEPORT_LISTEN", default_value = "0.0.0.0:8000")]
    listen: SocketAddr,
    /// Where /metrics and /healthz are served.
    #[arg(long, env = "SPACEPORT_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    metrics_listen: SocketAddr,
    /// Spaces are served at <namespace>-<name>.<domain> (and always at /apps/<namespace>/<name>/).
    #[arg(long, env = "SPACEPORT_DOMAIN")]
    domain: Option<String>,
    /// Namespaces whose Spaces are served (repeat or comma-separate; none: all).
    #[arg(long, env = "SPACEPORT_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
    /// The hub that checks tokens for private Spaces (without it they answer 404).
    #[arg(long, env = "SPACEPORT_HUB_URL")]
    hub_url: Option<String>,
    /// Take the visitor's address from X-Forwarded-For and Forwarded (set
    /// it only behind a load balancer or Ingress that sets them): the hub
    /// counts failed tokens per visitor, and without it every visitor
    /// behind the Ingress counts as one.
    #[arg(long, env = "SPACEPORT_TRUST_FORWARDED")]
    trust_forwarded: bool,
}

#[derive(Debug, clap::Args)]
struct ManifestArgs {
    /// The Space folder.
    folder: PathBuf,
    /// Resource name (default: the folder's name).
    #[arg(long)]
    name: Option<String>,
    /// Build from this git repository.
    #[arg(long, conflicts_with_all = ["hub", "image"])]
    git_url: Option<String>,
    /// Branch or tag of --git-url.
    #[arg(long, default_value = "main", requires = "git_url")]
    git_ref: String,
    /// Build from this Space repo on the spaceport hub (owner/name).
    #[arg(long, conflicts_with = "image")]
    hub: Option<String>,
    /// Run this prebuilt image.
    #[arg(long)]
    image: Option<String>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Address of the HTTP server (health, metrics, build logs, webhooks).
    #[arg(long, env = "SPACEPORT_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// The one namespace to watch (default: all namespaces).
    #[arg(long, env = "SPACEPORT_NAMESPACE")]
    namespace: Option<String>,
    /// Spaces are served at `<namespace>-<name>.<domain>`.
    #[arg(long, env = "SPACEPORT_DOMAIN", default_value = "spaces.localhost")]
    domain: String,
    /// The hub's URL as builds and Spaces reach it.
    #[arg(
        long,
        env = "SPACEPORT_HUB_URL",
        default_value = "http://spaceport-hub:7860"
    )]
    hub_url: String,
    /// A file holding a hub token that may read every Space repo.
    #[arg(long, env = "SPACEPORT_HUB_TOKEN_FILE")]
    hub_token_file: Option<PathBuf>,
    /// The spaceport image, run by the init containers that fill the model cache.
    #[arg(long, env = "SPACEPORT_IMAGE")]
    image: Option<String>,
    /// Cache models and datasets in this folder on each node (the default).
    #[arg(
        long,
        env = "SPACEPORT_CACHE_HOST_PATH",
        conflicts_with = "cache_claim"
    )]
    cache_host_path: Option<String>,
    /// Cache models and datasets in this shared (ReadWriteMany) claim instead.
    #[arg(long, env = "SPACEPORT_CACHE_CLAIM")]
    cache_claim: Option<String>,
    /// StorageClass of the Spaces' /data claims (default: the cluster's).
    #[arg(long, env = "SPACEPORT_STORAGE_CLASS")]
    storage_class: Option<String>,
    /// A YAML flavor catalog replacing the built-in one.
    #[arg(long, env = "SPACEPORT_FLAVORS")]
    flavors: Option<PathBuf>,
    /// Seconds without visits before a Space sleeps, unless it sets its own (-1: never).
    #[arg(long, env = "SPACEPORT_DEFAULT_SLEEP", default_value_t = 48 * 3600, allow_hyphen_values = true)]
    default_sleep: i64,
    /// Namespace of the leader Lease; without it there is no election (run one replica).
    #[arg(long, env = "SPACEPORT_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "SPACEPORT_LEASE_NAME",
        default_value = "spaceport-controller"
    )]
    lease_name: String,
    /// Docker API endpoint builds run on (tcp://host:2375, unix:///path);
    /// without it, Spaces must name a prebuilt image.
    #[arg(long, env = "SPACEPORT_BUILDER")]
    builder: Option<String>,
    /// Folder with ca.pem, cert.pem and key.pem for a TLS builder endpoint.
    #[arg(long, env = "SPACEPORT_BUILDER_TLS_DIR", requires = "builder")]
    builder_tls_dir: Option<PathBuf>,
    /// Image prefix builds are pushed to (registry.example:5000/spaces);
    /// without it images stay on the builder's engine.
    #[arg(long, env = "SPACEPORT_REGISTRY")]
    registry: Option<String>,
    /// A docker config.json with the registry's credentials.
    #[arg(long, env = "SPACEPORT_REGISTRY_AUTH_FILE")]
    registry_auth_file: Option<PathBuf>,
    /// A file holding the shared secret push webhooks sign with.
    #[arg(long, env = "SPACEPORT_WEBHOOK_SECRET_FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// Seconds between two looks at a git source (failures back off).
    #[arg(long, env = "SPACEPORT_POLL_INTERVAL", default_value_t = 60)]
    poll_interval: u64,
    /// This replica's identity in the Lease and in Events.
    #[arg(long, env = "POD_NAME", default_value = "spaceport-controller")]
    identity: String,
}

fn read_secret_file(path: &Option<PathBuf>) -> anyhow::Result<Option<String>> {
    path.as_ref()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .with_context(|| format!("failed to read {}", p.display()))
        })
        .transpose()
}

fn run_controller(args: RunArgs) -> anyhow::Result<()> {
    let mut settings = ControllerSettings::default();
    settings.plan.domain = args.domain;
    settings.plan.hub_url = args.hub_url.clone();
    if let Some(image) = args.image {
        settings.image = image;
    }
    if let Some(path) = args.cache_host_path {
        settings.cache = CacheVolume::HostPath(path);
    }
    if let Some(claim) = args.cache_claim {
        settings.cache = CacheVolume::Claim(claim);
    }
    settings.storage_class = args.storage_class;
    if let Some(path) = &args.flavors {
        settings.catalog = FlavorCatalog::from_file(path)?;
    }
    let webhook_secret = read_secret_file(&args.webhook_secret_file)?.map(String::into_bytes);
    let poll_interval = Duration::from_secs(args.poll_interval.max(5));
    let builder_settings = args.builder.map(|endpoint| DockerSettings {
        endpoint: Some(endpoint),
        tls_dir: args.builder_tls_dir,
        registry: args.registry,
        registry_auth_file: args.registry_auth_file,
        push: true,
        plan: settings.plan.clone(),
        catalog: settings.catalog.clone(),
        static_server_image: settings.image.clone(),
        ..DockerSettings::default()
    });
    let hub = HubSource {
        url: args.hub_url,
        token: read_secret_file(&args.hub_token_file)?,
    };
    let lease = args.lease_namespace.map(|namespace| LeaseSettings {
        namespace,
        name: args.lease_name,
        identity: args.identity.clone(),
        duration: Duration::from_secs(15),
    });
    let config = RunConfig {
        listen: args.listen,
        namespace: args.namespace,
        settings,
        hub,
        builder: None,
        lease,
        default_sleep_seconds: args.default_sleep,
        identity: args.identity,
        extra_routes: Box::new(|_| axum::Router::new()),
        while_leading: Box::new(|_| Box::pin(std::future::pending())),
    };
    tokio::runtime::Runtime::new()?.block_on(async move {
        let client = kube::Client::try_default().await.context(
            "failed to find the Kubernetes API (in-cluster service account or kubeconfig)",
        )?;
        let mut config = config;
        if let Some(settings) = builder_settings {
            let builder = DockerBuilder::connect(settings)
                .await
                .map_err(|e| anyhow::anyhow!("failed to reach the builder: {e}"))?;
            config.builder = Some(Arc::new(builder));
        }
        let hooks = client.clone();
        config.extra_routes = Box::new(move |store| webhook::router(store, hooks, webhook_secret));
        let polls = client.clone();
        config.while_leading =
            Box::new(move |store| Box::pin(poll::run(store, polls, poll_interval)));
        operator::run(client, config).await
    })
}

/// Errors are one paragraph on stderr and exit status 1 (no backtrace).
fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run(args) => run_controller(*args)?,
        Command::Proxy(args) => proxy(args)?,
        Command::Crd => print!("{}", spaceport_controller::crd::crd_yaml()),
        Command::Hub(args) => {
            tokio::runtime::Runtime::new()?.block_on(spaceport_controller::hub::serve::run(args))?
        }
        Command::Manifest(args) => {
            let source = match (args.git_url, args.hub, args.image) {
                (Some(url), _, _) => Source::Git {
                    url,
                    r#ref: args.git_ref,
                },
                (_, Some(repo), _) => Source::Hub(repo),
                (_, _, Some(image)) => Source::Image(image),
                _ => anyhow::bail!("say where the code comes from: --git-url, --hub or --image"),
            };
            let name = match &args.name {
                Some(n) => n.clone(),
                None => args
                    .folder
                    .canonicalize()?
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let space = manifest::from_folder(&args.folder, &name, source)?;
            print!(
                "{}",
                manifest::to_yaml(&space, "spaceport-controller manifest")
            );
        }
    }
    Ok(())
}

/// Bad configuration exits with this code (EX_USAGE), before any port is bound.
const EXIT_CONFIG: i32 = 64;

fn proxy(args: ProxyArgs) -> anyhow::Result<()> {
    // The logger may already be set up by the caller; one is enough.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let options = ProxyOptions {
        listen: args.listen,
        metrics_listen: args.metrics_listen,
        domain: args.domain,
        namespaces: args.namespace,
        hub_url: args.hub_url,
        trust_forwarded: args.trust_forwarded,
    };
    let config = match options.proxy_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    tokio::runtime::Runtime::new()?.block_on(async move {
        let client = kube::Client::try_default()
            .await
            .context("failed to find the Kubernetes API (in-cluster or kubeconfig)")?;
        let proxy = spaceport_controller::proxy::build(client, &options, config)?;
        let listener = tokio::net::TcpListener::bind(options.listen).await?;
        let admin = tokio::net::TcpListener::bind(options.metrics_listen).await?;
        tracing::info!(listen = %options.listen, metrics = %options.metrics_listen, "proxy serving");
        let stop = spaceport_proxy::shutdown_signal();
        let admin_proxy = proxy.clone();
        let admin_task = tokio::spawn(async move {
            admin_proxy.serve_admin(admin, std::future::pending()).await
        });
        proxy.serve(listener, None, stop).await?;
        admin_task.abort();
        Ok(())
    })
}
