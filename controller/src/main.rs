//! `spaceport-controller`: the Kubernetes controller binary. Parses the
//! command line and hands over to the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use spaceport_controller::manifest::{self, Source};
use spaceport_controller::proxy::ProxyOptions;
use std::net::SocketAddr;
use std::path::PathBuf;

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

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Proxy(args) => proxy(args)?,
        Command::Crd => print!("{}", spaceport_controller::crd::crd_yaml()),
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
        let stop = shutdown_signal();
        let admin_proxy = proxy.clone();
        let admin_task = tokio::spawn(async move {
            admin_proxy.serve_admin(admin, std::future::pending()).await
        });
        proxy.serve(listener, None, stop).await?;
        admin_task.abort();
        Ok(())
    })
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down: draining open connections");
}
