//! `spaceport dev FOLDER`: a Space from a folder, without a build. Its
//! SDK's server runs as a local process in a Python environment made once
//! per set of requirements (and shared with every other Space that needs
//! the same), behind the same proxy and URL scheme as `spaceport up`.
//! Changes to the folder apply at once: gradio's and streamlit's own
//! reloaders take code changes, other changes restart the app, and a
//! change to the README or the requirements plans it again (a new
//! environment only when the requirements changed). The app's output goes
//! to this terminal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use notify_debouncer_full::notify::RecursiveMode;
use spaceport_proxy::{Proxy, ProxyConfig, Route};
use tokio::process::Child;
use tokio::sync::mpsc;

use crate::config::{Sdk, parse_readme};
use crate::hardware::FlavorCatalog;
use crate::hub::StaticSites;
use crate::hub::server::HubFallback;
use crate::local::watch::{Action, Reloads, classify};
use crate::local::{LocalApp, Venv, Venvs, gradio_demo_name, procs};
use crate::plan::{BuildPlan, PlanSettings, RunSpec, SpaceContext, SpaceId, plan};

/// Variables of `spaceport up`'s containers that make no sense on the
/// developer's machine: the app talks to the Hub and caches models as
/// the developer's own Python would.
const HOST_OWNED_ENV: &[&str] = &["HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE"];

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  spaceport dev examples/gradio-hello
  spaceport dev . --listen 127.0.0.1:7000 -e MODEL_ID=gpt2
  spaceport dev my-space --no-sdk-reload

The app is served at http://<owner>-<name>.localhost:<port>/ and at
http://<listen>/apps/<owner>/<name>/ (the owner is 'local' unless --space
says otherwise). The first start of a set of requirements makes its Python
environment (pip install, minutes); later starts and edits reuse it.
Exit status: 0 stopped by Ctrl-C, 1 the Space cannot run, 2 usage error.")]
pub struct DevArgs {
    /// The Space's folder (holding README.md).
    #[arg(default_value = ".")]
    pub folder: PathBuf,
    /// Address and port to serve the Space on.
    #[arg(long, env = "SPACEPORT_DEV_LISTEN", default_value = "127.0.0.1:7000")]
    pub listen: SocketAddr,
    /// The Space is served at `<owner>-<name>.<domain>`.
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// The Space's id in URLs and SPACE_ID (default: local/<folder name>).
    #[arg(long, value_name = "OWNER/NAME")]
    pub space: Option<String>,
    /// The Python that makes the environment.
    #[arg(long, env = "SPACEPORT_PYTHON", default_value = "python3")]
    pub python: String,
    /// Where Python environments are kept (default: the user's cache
    /// dir, spaceport/venvs).
    #[arg(long, env = "SPACEPORT_VENVS")]
    pub venvs: Option<PathBuf>,
    /// Restart the app on every change instead of letting gradio or
    /// streamlit reload the code.
    #[arg(long)]
    pub no_sdk_reload: bool,
    /// A variable for the app, KEY=VALUE (repeatable; secrets too).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub env: Vec<(String, String)>,
    /// Quiet time after a change before acting on it, in milliseconds.
    #[arg(long, default_value_t = 150)]
    pub debounce_ms: u64,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    if !crate::plan::is_env_name(k) {
        return Err(format!("'{k}' cannot be an environment variable name"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Runs until Ctrl-C; the exit code.
pub fn run(args: &DevArgs, err: &mut dyn std::io::Write) -> u8 {
    super::init_logging("warn");
    let result = tokio::runtime::Runtime::new()
        .context("failed to start the async runtime")
        .and_then(|rt| rt.block_on(dev(args.clone())));
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "error: {e:#}");
            super::EXIT_INVALID
        }
    }
}

/// The user's cache dir for environments.
fn default_venvs() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("spaceport").join("venvs")
}

/// `local/<folder name>`, made fit for a Space id.
fn default_space(folder: &Path) -> anyhow::Result<SpaceId> {
    let name: String = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(['-', '.']);
    let name = if name.is_empty() { "space" } else { name };
    SpaceId::parse(&format!("local/{name}"))
        .map_err(|e| anyhow::anyhow!("cannot name the Space after its folder: {e}; use --space"))
}

/// Everything decided about the Space in the folder as it is now.
struct Prepared {
    local: LocalApp,
    run: RunSpec,
    venv: Option<Venv>,
    /// gradio's demo variable or streamlit (""): the SDK reloads code.
    reload: Option<String>,
    /// A static Space's folder and page.
    site: Option<(PathBuf, String)>,
}

impl Prepared {
    fn reloads(&self) -> Reloads {
        Reloads {
            python: self.reload.is_some(),
            all: self.site.is_some(),
        }
    }
}

struct Dev {
    args: DevArgs,
    folder: PathBuf,
    space: SpaceId,
    venvs: Venvs,
    interpreter: String,
    settings: PlanSettings,
}

impl Dev {
    /// Reads, checks and plans the folder, and makes (or finds) its
    /// Python environment.
    async fn prepare(&self) -> anyhow::Result<Prepared> {
        let folder = crate::folder::read(&self.folder)
            .with_context(|| format!("failed to read {}", self.folder.display()))?;
        let parsed = parse_readme(&folder.readme);
        for d in parsed.warnings() {
            eprintln!("{}", d.display("README.md"));
        }
        let Some(config) = parsed.config else {
            let errors: Vec<String> = parsed
                .errors()
                .map(|d| d.display("README.md").to_string())
                .collect();
            bail!("the README is invalid:\n{}", errors.join("\n"));
        };
        let local = LocalApp::plan(&config, &folder.files, &self.settings, &self.interpreter)?;
        let mut context = SpaceContext::new(self.space.clone());
        context.variables = self.args.env.iter().cloned().collect();
        let planned = plan(
            &config,
            &folder.files,
            &context,
            &FlavorCatalog::builtin(),
            &self.settings,
        )?;
        for w in planned
            .warnings
            .iter()
            .chain(&local.warnings(&folder.files))
        {
            eprintln!("warning: {w}");
        }
        let site = match &planned.build {
            BuildPlan::Static(site) => {
                if let Some(cmd) = &local.build_command {
                    eprintln!(
                        "note: app_build_command ({cmd}) is not run in dev mode; run it yourself, the built folder is served"
                    );
                }
                Some((self.folder.join(&site.root), site.index.clone()))
            }
            BuildPlan::Image(_) => None,
        };
        let venv = match &local.python {
            Some(env) => {
                let (tx, mut rx) = mpsc::channel::<String>(64);
                let printer = tokio::spawn(async move {
                    while let Some(line) = rx.recv().await {
                        eprintln!("  | {line}");
                    }
                });
                let made = self.venvs.ensure(env, &self.folder, &tx).await;
                drop(tx);
                let _ = printer.await;
                Some(made.map_err(|e| anyhow::anyhow!("{e}"))?)
            }
            None => None,
        };
        let reload = match config.sdk {
            _ if self.args.no_sdk_reload => None,
            Sdk::Gradio => std::fs::read_to_string(self.folder.join(&local.app_file))
                .ok()
                .and_then(|src| gradio_demo_name(&src)),
            Sdk::Streamlit => Some(String::new()),
            _ => None,
        };
        Ok(Prepared {
            local,
            run: planned.run,
            venv,
            reload,
            site,
        })
    }

    /// Starts the app's server on `port`.
    fn start(&self, p: &Prepared, port: u16) -> anyhow::Result<Child> {
        let venv = p
            .venv
            .as_ref()
            .context("a Python Space without a Python environment")?;
        let argv = p
            .local
            .command(&venv.python(), "127.0.0.1", port, p.reload.as_deref());
        let mut env = procs::base_env(Some(&venv.dir));
        // The developer's own home and Hugging Face settings.
        for keep in [
            "HOME",
            "USER",
            "DISPLAY",
            "HF_TOKEN",
            "HF_HOME",
            "HF_ENDPOINT",
        ] {
            if let Ok(v) = std::env::var(keep) {
                env.insert(keep.to_owned(), v);
            }
        }
        for (k, v) in &p.run.env {
            if !HOST_OWNED_ENV.contains(&k.as_str()) {
                env.insert(k.clone(), v.clone());
            }
        }
        env.extend(self.args.env.iter().cloned());
        env.extend(p.local.env("127.0.0.1", port, None));
        let mut cmd = procs::app_command(&argv, &self.folder, &env);
        cmd.stdout(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::inherit());
        cmd.spawn()
            .with_context(|| format!("failed to start {}", argv.join(" ")))
    }

    fn route(&self, p: &Prepared, upstream: String) -> Route {
        let mut route = Route::new(self.space.to_route_id(), upstream);
        route.disable_embedding = !p.run.headers.embeddable_anywhere;
        route.custom_headers = p
            .run
            .headers
            .custom
            .iter()
            .cloned()
            .collect::<BTreeMap<_, _>>();
        if let Some(h) = &p.run.health {
            route.health_path = h.path.clone();
        }
        route
    }
}

/// Whether the app answers: requests that come while it starts (or
/// restarts) are held by the proxy, as for a waking Space, instead of
/// failing.
#[derive(Debug)]
struct Readiness {
    generation: std::sync::atomic::AtomicU64,
    ready: tokio::sync::watch::Sender<bool>,
}

#[derive(Debug, Clone)]
struct DevWaker(std::sync::Arc<Readiness>);

impl spaceport_proxy::Waker for DevWaker {
    fn wake<'a>(
        &'a self,
        _: &'a spaceport_proxy::route::SpaceId,
    ) -> spaceport_proxy::BoxFuture<'a, Result<(), spaceport_proxy::WakeError>> {
        let mut rx = self.0.ready.subscribe();
        Box::pin(async move {
            rx.wait_for(|r| *r)
                .await
                .map(|_| ())
                .map_err(|_| spaceport_proxy::WakeError("dev mode stopped".into()))
        })
    }
}

/// Routes the Space as starting, then, once its app answers, as running.
fn announce(proxy: &Proxy, readiness: &std::sync::Arc<Readiness>, route: Route, port: Option<u16>) {
    use std::sync::atomic::Ordering;
    let generation = readiness.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let Some(port) = port else {
        // Static files answer at once.
        let _ = proxy.apply_routes(vec![route]);
        readiness.ready.send_replace(true);
        return;
    };
    readiness.ready.send_replace(false);
    let mut starting = route.clone();
    starting.state = spaceport_proxy::route::SpaceState::Stopped;
    let _ = proxy.apply_routes(vec![starting]);
    let proxy = proxy.clone();
    let readiness = readiness.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        loop {
            if readiness.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            if crate::run::health::probe("127.0.0.1", port, &route.health_path).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if readiness.generation.load(Ordering::SeqCst) == generation {
            let _ = proxy.apply_routes(vec![route]);
            readiness.ready.send_replace(true);
            eprintln!(
                "spaceport dev: the app answers ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
    });
}

/// Stops a running app (its whole process group).
async fn stop(child: &mut Option<Child>) {
    let Some(mut c) = child.take() else {
        return;
    };
    if let Some(pgid) = c.id() {
        procs::stop_group(pgid, Duration::from_secs(3), || {
            c.try_wait().ok().flatten().is_some()
        })
        .await;
    }
    let _ = c.wait().await;
}

fn describe(p: &Prepared) -> String {
    let env = match &p.venv {
        Some(v) => format!(
            ", Python environment {} ({})",
            v.dir.file_name().unwrap_or_default().to_string_lossy(),
            if v.reused { "reused" } else { "new" }
        ),
        None => String::new(),
    };
    let reload = match (&p.reload, p.local.sdk, &p.site) {
        (_, _, Some(_)) => "files are served as they are",
        (Some(_), Sdk::Gradio, _) => "gradio reloads code changes",
        (Some(_), Sdk::Streamlit, _) => "streamlit reruns on code changes",
        _ => "every change restarts the app",
    };
    format!("{}{env}; {reload}", p.local.sdk)
}

/// Ctrl-C and SIGTERM, caught from the start on, so the app is never
/// left running behind a stopped `spaceport dev`.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("failed to catch Ctrl-C")?,
            term: signal(SignalKind::terminate()).context("failed to catch SIGTERM")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {},
            _ = self.term.recv() => {},
        }
    }
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let mut signals = Signals::new()?;
    let folder = std::fs::canonicalize(&args.folder)
        .with_context(|| format!("no folder {}", args.folder.display()))?;
    if !folder.is_dir() {
        bail!("{} is not a folder", folder.display());
    }
    let space = match &args.space {
        Some(s) => SpaceId::parse(s).map_err(|e| anyhow::anyhow!("invalid --space '{s}': {e}"))?,
        None => default_space(&folder)?,
    };
    let venvs = Venvs::new(
        args.venvs.clone().unwrap_or_else(default_venvs),
        args.python.clone(),
    );
    let interpreter = venvs
        .interpreter_version()
        .await
        .map_err(|e| anyhow::anyhow!("{e}: dev mode needs Python 3 with venv (set --python)"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let settings = PlanSettings {
        domain: args.domain.clone(),
        ..PlanSettings::default()
    };
    let dev = Dev {
        folder: folder.clone(),
        space: space.clone(),
        venvs,
        interpreter,
        settings,
        args: args.clone(),
    };
    let mut prepared = tokio::select! {
        p = dev.prepare() => p?,
        () = signals.recv() => return Ok(()),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let statics = StaticSites::default();
    let path = format!("/apps/{}/{}/", space.owner(), space.name());
    let to_space = path.clone();
    let readiness = std::sync::Arc::new(Readiness {
        generation: 0.into(),
        ready: tokio::sync::watch::channel(false).0,
    });
    let proxy = Proxy::builder(ProxyConfig {
        domain: Some(args.domain.clone()),
        path_prefix: "/apps".into(),
        // This port serves one app on loopback and nothing else: no hub, no
        // other Space shares the origin, and the app must work in the
        // developer's browser as it will on its own host.
        sandbox_path_routes: false,
        ..Default::default()
    })
    .waker(DevWaker(readiness.clone()))
    .fallback(HubFallback(axum::Router::new().fallback(move || {
        let to = to_space.clone();
        async move { axum::response::Redirect::temporary(&to) }
    })))
    .build()
    .context("invalid proxy settings")?;
    let mut child = None;
    let upstream = |site_addr: Option<SocketAddr>| match site_addr {
        Some(a) => a.to_string(),
        None => format!("127.0.0.1:{port}"),
    };
    let site_addr = match &prepared.site {
        Some((root, index)) => Some(statics.serve(&space, root, index).await?),
        None => {
            child = Some(dev.start(&prepared, port)?);
            None
        }
    };
    announce(
        &proxy,
        &readiness,
        dev.route(&prepared, upstream(site_addr)),
        site_addr.is_none().then_some(port),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let proxy = proxy.clone();
        async move {
            proxy
                .serve(listener, None, async {
                    let _ = stop_rx.await;
                })
                .await
        }
    });
    let port_shown = args.listen.port();
    eprintln!(
        "\nspaceport dev: {space} ({})\n  http://{}:{port_shown}/\n  http://{}{path}\n  watching {} (Ctrl-C stops)\n",
        describe(&prepared),
        space.host(&args.domain),
        args.listen,
        folder.display()
    );
    let (tx, mut changes) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(args.debounce_ms.max(10)),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            use notify_debouncer_full::notify::EventKind;
            use notify_debouncer_full::notify::event::ModifyKind;
            if let Ok(events) = res {
                // Writes, creations, renames and removals; not reads (the
                // app reading its own files at start) nor metadata.
                let paths: Vec<PathBuf> = events
                    .into_iter()
                    .filter(|e| match e.event.kind {
                        EventKind::Create(_) | EventKind::Remove(_) => true,
                        EventKind::Modify(ModifyKind::Metadata(_)) => false,
                        EventKind::Modify(_) => true,
                        _ => false,
                    })
                    .flat_map(|e| e.event.paths)
                    .collect();
                if !paths.is_empty() {
                    let _ = tx.send(paths);
                }
            }
        },
    )
    .context("failed to watch the folder")?;
    debouncer
        .watch(&folder, RecursiveMode::Recursive)
        .context("failed to watch the folder")?;
    loop {
        let exited = async {
            match child.as_mut() {
                Some(c) => c.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = signals.recv() => break,
            status = exited => {
                child = None;
                let how = match status {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                };
                eprintln!("spaceport dev: the app exited ({how}); it starts again on the next change");
            }
            Some(mut paths) = changes.recv() => {
                while let Ok(more) = changes.try_recv() {
                    paths.extend(more);
                }
                let action = classify(&folder, paths.iter().map(PathBuf::as_path), prepared.reloads());
                let names = changed_names(&folder, &paths);
                match action {
                    Action::Nothing => {}
                    Action::SdkReloads => {
                        if child.is_none() && prepared.site.is_none() {
                            eprintln!("spaceport dev: {names} changed: starting the app");
                            child = Some(dev.start(&prepared, port)?);
                            announce(&proxy, &readiness, dev.route(&prepared, upstream(None)), Some(port));
                        }
                    }
                    Action::Restart => {
                        eprintln!("spaceport dev: {names} changed: restarting the app");
                        stop(&mut child).await;
                        if prepared.site.is_none() {
                            child = Some(dev.start(&prepared, port)?);
                            announce(&proxy, &readiness, dev.route(&prepared, upstream(None)), Some(port));
                        }
                    }
                    Action::Replan => {
                        eprintln!("spaceport dev: {names} changed: reading the Space again");
                        match dev.prepare().await {
                            Ok(next) => {
                                stop(&mut child).await;
                                statics.stop(&space);
                                prepared = next;
                                let site_addr = match &prepared.site {
                                    Some((root, index)) => Some(statics.serve(&space, root, index).await?),
                                    None => {
                                        child = Some(dev.start(&prepared, port)?);
                                        None
                                    }
                                };
                                announce(&proxy, &readiness, dev.route(&prepared, upstream(site_addr)), site_addr.is_none().then_some(port));
                                eprintln!("spaceport dev: now {}", describe(&prepared));
                            }
                            Err(e) => eprintln!("spaceport dev: {e:#}\n  (the running version stays until this is fixed)"),
                        }
                    }
                }
            }
        }
    }
    eprintln!("\nspaceport dev: stopping");
    drop(debouncer);
    stop(&mut child).await;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(())
}

fn changed_names(root: &Path, paths: &[PathBuf]) -> String {
    let mut names: Vec<String> = paths
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok())
        .map(|p| p.display().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    names.sort();
    names.dedup();
    match names.len() {
        0 => "the folder".into(),
        1..=3 => names.join(", "),
        n => format!("{}, ... ({n} files)", names[..3].join(", ")),
    }
}
