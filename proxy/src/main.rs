//! `spaceport-proxy`: the standalone proxy binary. Parses flags, validates
//! everything, then binds and serves a routes file. Logic lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use spaceport_proxy::{FileRoutes, Proxy, ProxyConfig, RoutesFile, StaticTokens};

/// Exit status for bad configuration (EX_CONFIG-like usage error, sysexits 64).
const EXIT_USAGE: u8 = 64;

/// The spaceport reverse proxy: serves Spaces by host or path prefix.
#[derive(Debug, Parser)]
#[command(name = "spaceport-proxy", version, about, long_about = None)]
struct Cli {
    /// Routes file (YAML: `routes:` and optional `tokens:`); reloaded on SIGHUP.
    #[arg(long, env = "SPACEPORT_ROUTES")]
    routes: PathBuf,
    /// Address to serve Spaces on.
    #[arg(long, env = "SPACEPORT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address for /healthz and /metrics.
    #[arg(long, env = "SPACEPORT_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Domain of Space hosts: `<owner>-<name>.<domain>`.
    #[arg(long, env = "SPACEPORT_DOMAIN")]
    domain: Option<String>,
    /// Prefix of path routes.
    #[arg(long, env = "SPACEPORT_PATH_PREFIX", default_value = "/apps")]
    path_prefix: String,
    /// Origin of the hub, allowed to frame Spaces that disable embedding.
    #[arg(long, env = "SPACEPORT_HUB_ORIGIN")]
    hub_origin: Option<String>,
    /// PEM certificate chain; with --tls-key, serve HTTPS (h2 and http/1.1 by ALPN).
    #[arg(long, env = "SPACEPORT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "SPACEPORT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Trust X-Forwarded-* from clients (only behind a load balancer).
    #[arg(long, env = "SPACEPORT_TRUST_FORWARDED")]
    trust_forwarded: bool,
    /// Turn per-request metering off (to measure its cost).
    #[arg(long, env = "SPACEPORT_NO_METERING")]
    no_metering: bool,
    /// Secret for unique-visitor hashing, shared by replicas whose counts are merged.
    #[arg(long, env = "SPACEPORT_VISITOR_SECRET", hide_env_values = true)]
    visitor_secret: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, env = "SPACEPORT_MAX_BODY_BYTES", default_value_t = 1 << 30)]
    max_body_bytes: u64,
    /// Largest request head, in bytes.
    #[arg(long, env = "SPACEPORT_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    max_header_bytes: usize,
    /// Seconds to wait for an upstream's response head.
    #[arg(long, env = "SPACEPORT_RESPONSE_TIMEOUT", default_value_t = 300)]
    response_timeout: u64,
    /// Seconds an API client is held while a Space wakes.
    #[arg(long, env = "SPACEPORT_WAKE_HOLD", default_value_t = 60)]
    wake_hold: u64,
    /// Worker threads, each with its own event loop (0: one per core).
    #[arg(long, env = "SPACEPORT_WORKERS", default_value_t = 0)]
    workers: usize,
}

fn config(cli: &Cli) -> ProxyConfig {
    let mut c = ProxyConfig {
        domain: cli.domain.clone(),
        path_prefix: cli.path_prefix.clone(),
        hub_origin: cli.hub_origin.clone(),
        trust_forwarded: cli.trust_forwarded,
        metering: !cli.no_metering,
        visitor_secret: cli.visitor_secret.as_ref().map(|s| s.as_bytes().to_vec()),
        ..ProxyConfig::default()
    };
    c.limits.max_body_bytes = cli.max_body_bytes;
    c.limits.max_header_bytes = cli.max_header_bytes;
    c.timeouts.response_head = Duration::from_secs(cli.response_timeout);
    c.wake.api_hold = Duration::from_secs(cli.wake_hold);
    c
}

// glibc's malloc and free were 13% of the instructions per proxied
// request (callgrind); mimalloc's thread-local free lists cost a fraction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Validate everything before binding a port.
    let cfg = config(&cli);
    if let Err(e) = cfg.validate() {
        eprintln!("spaceport-proxy: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let file = match RoutesFile::load(&cli.routes) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("spaceport-proxy: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(c), Some(k)) => match spaceport_proxy::tls::acceptor(c, k) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("spaceport-proxy: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        _ => None,
    };
    let workers = if cli.workers > 0 {
        cli.workers
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    // The main thread runs a small runtime for routes, signals, the admin
    // listener and reports; each worker thread runs its own single-threaded
    // runtime with its own listener on the same port (SO_REUSEPORT), so a
    // connection, its requests and their upstream connections stay on one
    // thread, as nginx workers do.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spaceport-proxy: failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, cfg, file, tls, workers)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spaceport-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A listening socket that other workers may bind too.
fn bind_shared(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(4096)?.into_std()
}

async fn run(
    cli: Cli,
    cfg: ProxyConfig,
    file: RoutesFile,
    tls: Option<tokio_rustls::TlsAcceptor>,
    workers: usize,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let proxy = Proxy::builder(cfg)
        .access(StaticTokens::new(file.token_map()))
        .build()?;
    proxy.apply_routes(file.routes)?;
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    let mut source = FileRoutes::new(cli.routes.clone(), Some(reload_rx));
    // The first snapshot was applied above; skip it.
    let _ = spaceport_proxy::RouteSource::next_snapshot(&mut source).await;
    proxy.drive(source);
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading routes");
            let _ = reload_tx.try_send(());
        }
    });
    let listeners = (0..workers)
        .map(|_| bind_shared(cli.listen))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("failed to bind {}", cli.listen))?;
    tracing::info!(listen = %cli.listen, tls = tls.is_some(), workers, "serving spaces");
    if let Some(addr) = cli.admin_listen {
        let admin = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to bind {addr}"))?;
        let p = proxy.clone();
        tokio::spawn(async move { p.serve_admin(admin, std::future::pending()).await });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (proxy, tls, mut stop) = (proxy.clone(), tls.clone(), stop_rx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("spaceport-worker-{i}"))
            .spawn(move || -> anyhow::Result<()> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    proxy.serve(listener, tls, stopped).await
                })?;
                Ok(())
            })
            .context("failed to start a worker thread")?;
        threads.push(thread);
    }
    spaceport_proxy::shutdown_signal().await;
    let _ = stop_tx.send(true);
    for t in threads {
        match t.join() {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("a worker thread panicked"),
        }
    }
    Ok(())
}
