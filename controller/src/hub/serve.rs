//! `spaceport-controller hub`: the hub of `spaceport up` (repos, git push,
//! the HF-compatible API, the web UI) with its Spaces on Kubernetes.
//!
//! It builds and runs nothing itself: its [`Hub`] has no container engine
//! ([`NoEngine`]) and a [`KubeBackend`] attached. Apps are served by the
//! proxy replicas, not by this process; it serves only the hub's own pages.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use kube::Client;
use spaceport_runtime::build::{BuildSettings, Builder};
use spaceport_runtime::gpu::GpuAllocator;
use spaceport_runtime::hardware::FlavorCatalog;
use spaceport_runtime::hub::backend::NoEngine;
use spaceport_runtime::hub::{Hub, HubConfig};
use spaceport_runtime::plan::PlanSettings;
use spaceport_runtime::repos::RepoStore;
use spaceport_runtime::run::{RunSettings, Runner};
use spaceport_runtime::state::{Store, TokenScope};

use super::backend::KubeBackend;

/// The first user of a fresh hub; the admin token is theirs.
pub const ADMIN_USER: &str = "admin";

/// Settings of the cluster hub.
#[derive(Debug, Clone, clap::Args)]
pub struct HubArgs {
    /// Address and port to listen on.
    #[arg(long, env = "SPACEPORT_LISTEN", default_value = "0.0.0.0:7860")]
    pub listen: SocketAddr,
    /// Where the database and the repos live (a persistent volume).
    #[arg(long, env = "SPACEPORT_DATA", default_value = "/data")]
    pub data: PathBuf,
    /// Spaces are served at `<owner>-<name>.<domain>` (by the proxies).
    #[arg(long, env = "SPACEPORT_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// The one namespace the Space resources go to (default: the client's,
    /// the pod's own namespace in a cluster).
    #[arg(long, env = "SPACEPORT_NAMESPACE")]
    pub namespace: Option<String>,
    /// The hub's URL as users reach it, for clone URLs and links
    /// (default: http://<domain>).
    #[arg(long, env = "SPACEPORT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A file holding the admin user's token (the chart mounts a Secret).
    #[arg(long, env = "SPACEPORT_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Tell clients apart by the last hop of X-Forwarded-For (only behind a
    /// load balancer or ingress that appends it), for the limit on failed
    /// authentications per client address.
    #[arg(long, env = "SPACEPORT_TRUST_FORWARDED")]
    pub trust_forwarded: bool,
}

impl HubArgs {
    fn public_url(&self) -> anyhow::Result<String> {
        let url = match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.domain),
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("invalid --public-url {url}: it must start with http:// or https://");
        }
        Ok(url)
    }
}

/// A hub wired to its Kubernetes backend, not yet serving.
#[derive(Debug)]
pub struct ClusterHub {
    pub hub: Hub<NoEngine>,
    pub backend: Arc<KubeBackend>,
    /// A token made for the admin on the first start without a token file;
    /// shown once.
    pub new_admin_token: Option<String>,
}

impl ClusterHub {
    /// Opens the data folder and attaches the backend; the watch of the
    /// Space resources starts at once. Needs a Tokio runtime.
    pub fn open(args: &HubArgs, client: Client) -> anyhow::Result<Self> {
        let public_url = args.public_url()?;
        let admin_token = match &args.admin_token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("failed to read the admin token in {}", p.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        std::fs::create_dir_all(&args.data)
            .with_context(|| format!("failed to create {}", args.data.display()))?;
        let store = Arc::new(Store::open(&args.data).context("failed to open the database")?);
        let new_admin_token = bootstrap_admin(&store, admin_token.as_deref())?;
        let repos = RepoStore::open(args.data.join("repos")).context("failed to open the repos")?;
        let engine = Arc::new(NoEngine);
        let runner = Runner::new(
            engine.clone(),
            Arc::new(Mutex::new(GpuAllocator::new(Vec::new()))),
            RunSettings::default(),
        );
        let builder = Builder::new(engine, BuildSettings::default());
        let config = HubConfig {
            data_dir: args.data.clone(),
            domain: args.domain.clone(),
            public_url: public_url.clone(),
            port: args.listen.port(),
            plan: PlanSettings {
                domain: args.domain.clone(),
                hub_url: public_url,
                ..PlanSettings::default()
            },
            catalog: FlavorCatalog::builtin(),
            default_sleep_secs: 48 * 3600,
            sleep_check: Duration::from_secs(10),
            cache_max_bytes: None,
            models_upstream: None,
        };
        let hub = Hub::new(config, store, repos, builder, runner);
        hub.auth_limiter().set_trust_forwarded(args.trust_forwarded);
        let backend = KubeBackend::new(client, &namespace);
        backend.watch();
        hub.attach_backend(backend.clone());
        Ok(ClusterHub {
            hub,
            backend,
            new_admin_token,
        })
    }

    /// The hub's router: API, git and pages.
    pub fn router(&self) -> axum::Router {
        spaceport_runtime::hub::web::router(self.hub.clone())
    }
}

/// Creates the admin on the first start and imports the token from the
/// file; a token made here (no file, first start) is returned to show.
fn bootstrap_admin(store: &Store, token: Option<&str>) -> anyhow::Result<Option<String>> {
    let fresh = store.user(ADMIN_USER)?.is_none();
    if fresh {
        store.create_user(ADMIN_USER, Some("Administrator"), true)?;
    }
    match token {
        Some(t) => {
            store
                .import_token(ADMIN_USER, "admin token file", TokenScope::Write, t)
                .context("failed to use the admin token file")?;
            Ok(None)
        }
        None if fresh => {
            let (_, t) = store.create_token(ADMIN_USER, "first start", TokenScope::Write)?;
            Ok(Some(t))
        }
        None => Ok(None),
    }
}

/// Runs the cluster hub until SIGTERM or Ctrl-C.
pub async fn run(args: HubArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("failed to reach the Kubernetes API")?;
    let hub = ClusterHub::open(&args, client)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    if let Some(t) = &hub.new_admin_token {
        println!(
            "Created the user '{ADMIN_USER}' with this write token (shown once; keep it):\n  {t}"
        );
    }
    println!(
        "spaceport hub: {} (Spaces in namespace {})",
        hub.hub.config().public_url,
        args.namespace.as_deref().unwrap_or("of the client")
    );
    axum::serve(
        listener,
        hub.router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
    .context("the server failed")
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
