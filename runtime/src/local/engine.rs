//! [`ProcessEngine`]: the [`ContainerEngine`] seam filled with plain
//! processes, for machines without Docker. An "image" is a folder holding
//! the Space's files and a small manifest, with its Python environment
//! made (or reused) by [`Venvs`]; a "container" is the SDK's server started
//! from that folder as a process group of its own, listening on a loopback
//! port, its output kept as the container's log. The hub, the runner, the
//! sleep and wake logic above it are the same as with Docker.
//!
//! It isolates nothing: the app runs as this user, with this user's
//! files, network and limits. `spaceport up` says so when it starts with
//! it. docker Spaces are refused with the reason.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::plan::LocalApp;
use super::procs;
use super::venv::{Venvs, pump_lines, run_logged};
use crate::build::{DOCKERFILE_PATH, SPACE_LABEL};
use crate::config::{Sdk, parse_readme};
use crate::engine::{
    ContainerEngine, ContainerInfo, ContainerSpec, ContextStream, EngineError, ImageBuildSpec,
    LogSender, Result,
};
use crate::plan::PlanSettings;

/// Lines of output kept per process.
const LOG_LINES: usize = 5_000;
/// Largest build context unpacked.
const MAX_CONTEXT_BYTES: u64 = 4 << 30;

/// Settings of the process runner.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// Images, homes and the record of running groups live here.
    pub root: PathBuf,
    /// Where Python environments are kept (shared with `spaceport dev`).
    pub venvs: PathBuf,
    /// The interpreter environments are made with.
    pub python: String,
    /// How the SDK is pinned (default gradio and streamlit versions).
    pub plan: PlanSettings,
}

/// What an image folder says about how to start it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    sdk: Sdk,
    app_file: String,
    /// The environment's folder; absent for static Spaces.
    venv: Option<PathBuf>,
}

#[derive(Debug)]
struct Proc {
    id: String,
    spec: ContainerSpec,
    state: Mutex<ProcState>,
    log: Mutex<VecDeque<(i64, String)>>,
    live: broadcast::Sender<(i64, String)>,
    /// Bumped whenever the process starts or exits.
    changed: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct ProcState {
    pgid: Option<u32>,
    running: bool,
    exit_code: Option<i64>,
    /// Kept across restarts, as a published port is.
    port: Option<u16>,
}

impl Proc {
    fn state(&self) -> std::sync::MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: String) {
        let entry = (unix_now(), line);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(entry.clone());
        let _ = self.live.send(entry);
    }
}

/// Runs Spaces as local processes.
#[derive(Debug)]
pub struct ProcessEngine {
    settings: ProcessSettings,
    venvs: Venvs,
    /// `major.minor` of the interpreter.
    interpreter: String,
    procs: Mutex<HashMap<String, Arc<Proc>>>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_id() -> String {
    let mut bytes = [0u8; 12];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The folder name of an image tag (`spaceport/a-b:c` -> `spaceport_a-b_c`).
fn image_dir_name(tag: &str) -> String {
    tag.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

impl ProcessEngine {
    /// Checks the interpreter, and ends the process groups an earlier run
    /// of spaceport left behind (it was killed before it could).
    pub async fn new(settings: ProcessSettings) -> std::result::Result<Self, String> {
        let venvs = Venvs::new(&settings.venvs, settings.python.clone());
        let interpreter = venvs.interpreter_version().await.map_err(|e| {
            format!("{e}: the process runner needs Python 3 with its venv module (set --python)")
        })?;
        for dir in ["images", "homes", "groups"] {
            std::fs::create_dir_all(settings.root.join(dir)).map_err(|e| {
                format!(
                    "failed to create {}: {e}",
                    settings.root.join(dir).display()
                )
            })?;
        }
        let engine = ProcessEngine {
            settings,
            venvs,
            interpreter,
            procs: Mutex::new(HashMap::new()),
        };
        engine.end_leftovers();
        Ok(engine)
    }

    /// `major.minor` of the Python Spaces run with.
    pub fn interpreter(&self) -> &str {
        &self.interpreter
    }

    fn groups_dir(&self) -> PathBuf {
        self.settings.root.join("groups")
    }

    fn end_leftovers(&self) {
        let Ok(entries) = std::fs::read_dir(self.groups_dir()) else {
            return;
        };
        for e in entries.flatten() {
            if let Some(pgid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && procs::alive(pgid)
                && procs::cwd_under(pgid, &self.settings.root)
            {
                tracing::info!(pgid, "ending a Space process left by an earlier run");
                procs::signal_group(pgid, "KILL");
            }
            let _ = std::fs::remove_file(e.path());
        }
    }

    fn image_dir(&self, tag: &str) -> PathBuf {
        self.settings.root.join("images").join(image_dir_name(tag))
    }

    fn read_manifest(&self, tag: &str) -> Option<Manifest> {
        let text = std::fs::read_to_string(self.image_dir(tag).join("image.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn get(&self, id: &str) -> Option<Arc<Proc>> {
        let procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        procs
            .get(id)
            .or_else(|| procs.values().find(|p| p.spec.name == id))
            .cloned()
    }

    fn not_found(id: &str) -> EngineError {
        EngineError::NotFound {
            kind: "process",
            name: id.to_owned(),
        }
    }

    /// Unpacks, plans, installs and records one image; the folder it
    /// made, not yet in place.
    async fn build_into(
        &self,
        spec: &ImageBuildSpec,
        context: ContextStream,
        log: &LogSender,
        scratch: &Path,
    ) -> Result<Manifest> {
        let app = scratch.join("app");
        unpack(context, app.clone()).await?;
        let _ = std::fs::remove_file(app.join(DOCKERFILE_PATH));
        let folder = crate::folder::read(&app)
            .map_err(|e| EngineError::BuildFailed(format!("failed to read the Space: {e}")))?;
        let parsed = parse_readme(&folder.readme);
        let Some(config) = parsed.config else {
            return Err(EngineError::BuildFailed(
                "the README's configuration is invalid".into(),
            ));
        };
        let plan = LocalApp::plan(
            &config,
            &folder.files,
            &self.settings.plan,
            &self.interpreter,
        )
        .map_err(|e| EngineError::BuildFailed(e.to_string()))?;
        for w in plan.warnings(&folder.files) {
            let _ = log.send(format!("warning: {w}")).await;
        }
        let venv = match &plan.python {
            Some(env) => {
                let v = self
                    .venvs
                    .ensure(env, &app, log)
                    .await
                    .map_err(EngineError::BuildFailed)?;
                Some(v.dir)
            }
            None => None,
        };
        if let Some(command) = &plan.build_command {
            let mut c = tokio::process::Command::new("sh");
            c.args(["-c", command]).current_dir(&app);
            if spec.no_cache {
                c.env("SPACEPORT_NO_CACHE", "1");
            }
            run_logged(c, &format!("app_build_command: {command}"), log)
                .await
                .map_err(EngineError::BuildFailed)?;
        }
        Ok(Manifest {
            sdk: plan.sdk,
            app_file: plan.app_file,
            venv,
        })
    }

    /// Starts a created process.
    fn spawn(&self, p: &Arc<Proc>) -> Result<()> {
        let manifest = self
            .read_manifest(&p.spec.image)
            .ok_or_else(|| Self::not_found(&p.spec.image))?;
        let dir = self.image_dir(&p.spec.image).join("app");
        let port = {
            let mut st = p.state();
            if st.running {
                return Ok(());
            }
            match st.port.or(p.spec.host_port) {
                Some(port) => port,
                None => {
                    let port = free_port(&p.spec.bind_ip)?;
                    st.port = Some(port);
                    port
                }
            }
        };
        let space = p
            .spec
            .labels
            .get(SPACE_LABEL)
            .map(|s| s.replace('/', "-"))
            .unwrap_or_else(|| p.spec.name.clone());
        let home = self.settings.root.join("homes").join(&space);
        std::fs::create_dir_all(&home)
            .map_err(|e| EngineError::Api(format!("failed to create {}: {e}", home.display())))?;
        let app = LocalApp {
            sdk: manifest.sdk,
            app_file: manifest.app_file.clone(),
            python: None,
            wanted_python: String::new(),
            build_command: None,
        };
        let python = manifest
            .venv
            .as_ref()
            .map(|v| v.join("bin").join("python"))
            .ok_or_else(|| EngineError::Api("a static Space has no process to start".into()))?;
        let command = app.command(&python, &p.spec.bind_ip, port, None);
        let env = process_env(&p.spec, &app, &manifest, port, &home);
        let mut cmd = procs::app_command(&command, &dir, &env);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| EngineError::Api(format!("failed to start {}: {e}", command[0])))?;
        let pgid = child.id().unwrap_or(0);
        let record = self.groups_dir().join(pgid.to_string());
        let _ = std::fs::write(&record, &p.id);
        {
            let mut st = p.state();
            st.pgid = Some(pgid);
            st.running = true;
            st.exit_code = None;
        }
        p.changed.send_modify(|n| *n += 1);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
        let out = child.stdout.take().map(|s| pump_lines(s, tx.clone()));
        let err = child.stderr.take().map(|s| pump_lines(s, tx));
        let sink = p.clone();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                sink.push(line);
            }
        });
        let waiter = p.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            for t in [out, err].into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
            }
            let code = match status {
                Ok(s) => s.code().map(i64::from).unwrap_or(137),
                Err(_) => -1,
            };
            // Whatever the app left running in its group ends with it.
            procs::signal_group(pgid, "KILL");
            let _ = std::fs::remove_file(&record);
            {
                let mut st = waiter.state();
                st.running = false;
                st.exit_code = Some(code);
            }
            waiter.changed.send_modify(|n| *n += 1);
        });
        Ok(())
    }
}

/// The variables of a Space's process: a clean slate with a PATH through
/// its environment, the Space's own variables, and the paths of this
/// machine where a container would have had its own.
fn process_env(
    spec: &ContainerSpec,
    app: &LocalApp,
    manifest: &Manifest,
    port: u16,
    home: &Path,
) -> BTreeMap<String, String> {
    let mut env = procs::base_env(manifest.venv.as_deref());
    for (k, v) in &spec.env {
        // A value naming a file mounted into a container (the CA bundle)
        // names that file on this machine instead.
        let v = spec
            .mounts
            .iter()
            .find(|m| m.target == *v)
            .map(|m| m.source.display().to_string())
            .unwrap_or_else(|| v.clone());
        env.insert(k.clone(), v);
    }
    env.extend(app.env(&spec.bind_ip, port, Some(home)));
    // Mounted model and dataset repos: a process cannot have them mounted
    // into its own cache, so its cache is the node's (read as the same
    // layout; the process runner isolates nothing anyway).
    if let Some(m) = spec
        .mounts
        .iter()
        .find(|m| m.target.starts_with(crate::plan::dockerfile::HF_HUB_CACHE))
        && let Some(node_cache) = m.source.parent()
    {
        env.insert("HF_HUB_CACHE".to_owned(), node_cache.display().to_string());
    }
    if !spec.gpu_device_ids.is_empty() {
        env.insert(
            "CUDA_VISIBLE_DEVICES".to_owned(),
            spec.gpu_device_ids.join(","),
        );
    }
    env
}

fn free_port(bind: &str) -> Result<u16> {
    std::net::TcpListener::bind((bind, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| EngineError::Api(format!("failed to find a free port on {bind}: {e}")))
}

/// Unpacks a build context stream into `dest`, with the repo export's
/// checks (no path outside, no links out, bounded size).
async fn unpack(mut context: ContextStream, dest: PathBuf) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<bytes::Bytes>>(16);
    let feeder = tokio::spawn(async move {
        while let Some(chunk) = context.recv().await {
            if tx.send(chunk).is_err() {
                break;
            }
        }
    });
    let unpacked = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx,
            current: bytes::Bytes::new(),
        };
        crate::repos::extract_tar(
            std::io::BufReader::new(reader),
            &dest,
            crate::repos::ExportLimits {
                max_bytes: MAX_CONTEXT_BYTES,
                max_entries: 500_000,
            },
        )
    })
    .await
    .map_err(|e| EngineError::Context(format!("the unpacking task failed: {e}")))?;
    let _ = feeder.await;
    unpacked
        .map(|_| ())
        .map_err(|e| EngineError::Context(e.to_string()))
}

struct ChannelReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.current = b,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

impl ContainerEngine for ProcessEngine {
    async fn build_image(
        &self,
        spec: ImageBuildSpec,
        context: ContextStream,
        log: LogSender,
    ) -> Result<()> {
        let images = self.settings.root.join("images");
        let scratch = tempfile::Builder::new()
            .prefix(".build-")
            .tempdir_in(&images)
            .map_err(|e| EngineError::Api(format!("failed to create a build folder: {e}")))?;
        let manifest = self
            .build_into(&spec, context, &log, scratch.path())
            .await?;
        let json =
            serde_json::to_string_pretty(&manifest).map_err(|e| EngineError::Api(e.to_string()))?;
        std::fs::write(scratch.path().join("image.json"), json)
            .map_err(|e| EngineError::Api(format!("failed to write the image manifest: {e}")))?;
        let dest = self.image_dir(&spec.tag);
        if dest.exists() {
            // Same commit built again (a factory rebuild): running
            // processes keep their open files; the folder is replaced.
            let old = images.join(format!(".old-{}", random_id()));
            let _ = std::fs::rename(&dest, &old);
            let _ = std::fs::remove_dir_all(&old);
        }
        let kept = scratch.keep();
        std::fs::rename(&kept, &dest)
            .map_err(|e| EngineError::Api(format!("failed to keep the image folder: {e}")))?;
        let _ = log.send(format!("Successfully tagged {}", spec.tag)).await;
        Ok(())
    }

    async fn image_exists(&self, tag: &str) -> Result<bool> {
        Ok(self.read_manifest(tag).is_some())
    }

    async fn remove_image(&self, tag: &str) -> Result<()> {
        let dir = self.image_dir(tag);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| {
                EngineError::Api(format!("failed to remove {}: {e}", dir.display()))
            })?;
        }
        Ok(())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        if self.read_manifest(&spec.image).is_none() {
            return Err(EngineError::NotFound {
                kind: "image",
                name: spec.image.clone(),
            });
        }
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        if procs.values().any(|p| p.spec.name == spec.name) {
            return Err(EngineError::Api(format!(
                "the name {} is already in use",
                spec.name
            )));
        }
        let id = random_id();
        procs.insert(
            id.clone(),
            Arc::new(Proc {
                id: id.clone(),
                spec: spec.clone(),
                state: Mutex::new(ProcState::default()),
                log: Mutex::new(VecDeque::new()),
                live: broadcast::channel(1024).0,
                changed: watch::channel(0).0,
            }),
        );
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let p = self.get(id).ok_or_else(|| Self::not_found(id))?;
        self.spawn(&p)
    }

    async fn stop_container(&self, id: &str, grace_secs: u32) -> Result<()> {
        let p = self.get(id).ok_or_else(|| Self::not_found(id))?;
        let pgid = {
            let st = p.state();
            if !st.running {
                return Ok(());
            }
            st.pgid
        };
        if let Some(pgid) = pgid {
            let mut changed = p.changed.subscribe();
            let watcher = p.clone();
            procs::stop_group(pgid, Duration::from_secs(u64::from(grace_secs)), || {
                !watcher.state().running
            })
            .await;
            // The waiter records the exit a moment after the signal.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while p.state().running {
                    if changed.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let Some(p) = self.get(id) else {
            return Ok(());
        };
        self.stop_container(&p.id, 0).await?;
        self.procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&p.id);
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>> {
        Ok(self.get(id).map(|p| info(&p)))
    }

    async fn list_containers(&self, labels: &[(String, String)]) -> Result<Vec<ContainerInfo>> {
        let procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(procs
            .values()
            .filter(|p| labels.iter().all(|(k, v)| p.spec.labels.get(k) == Some(v)))
            .map(|p| info(p))
            .collect())
    }

    async fn copy_out(&self, id: &str, path: &str, dest: &Path, max_bytes: u64) -> Result<()> {
        let p = self.get(id).ok_or_else(|| Self::not_found(id))?;
        if path.trim_end_matches('/') != crate::plan::dockerfile::APP_DIR {
            return Err(EngineError::Api(format!(
                "a process image holds only the app folder, not {path}"
            )));
        }
        let dir = self.image_dir(&p.spec.image).join("app");
        let dest = dest.to_owned();
        tokio::task::spawn_blocking(move || write_tar(&dir, &dest, max_bytes))
            .await
            .map_err(|e| EngineError::Api(format!("the copy task failed: {e}")))?
    }

    async fn follow_logs(&self, id: &str, since: i64, log: LogSender) -> Result<()> {
        let p = self.get(id).ok_or_else(|| Self::not_found(id))?;
        let (history, mut live) = {
            let kept = p.log.lock().unwrap_or_else(|p| p.into_inner());
            (
                kept.iter()
                    .filter(|(t, _)| *t >= since)
                    .map(|(_, l)| l.clone())
                    .collect::<Vec<_>>(),
                p.live.subscribe(),
            )
        };
        for line in history {
            if log.send(line).await.is_err() {
                return Ok(());
            }
        }
        let mut changed = p.changed.subscribe();
        loop {
            if !p.state().running {
                // Lines still in flight from the pumps.
                while let Ok((_, line)) = live.try_recv() {
                    let _ = log.send(line).await;
                }
                return Ok(());
            }
            tokio::select! {
                got = live.recv() => match got {
                    Ok((_, line)) => {
                        if log.send(line).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                c = changed.changed() => if c.is_err() { return Ok(()) },
            }
        }
    }
}

fn info(p: &Proc) -> ContainerInfo {
    let st = p.state();
    ContainerInfo {
        id: p.id.clone(),
        name: p.spec.name.clone(),
        image: p.spec.image.clone(),
        labels: p.spec.labels.clone(),
        running: st.running,
        exit_code: if st.running { None } else { st.exit_code },
        host_port: st.port.or(p.spec.host_port),
    }
}

/// A tar of `dir` as `app/...`, at most `max_bytes` of file contents.
fn write_tar(dir: &Path, dest: &Path, max_bytes: u64) -> Result<()> {
    let mut total = 0u64;
    for e in walk(dir) {
        total += e.metadata().map(|m| m.len()).unwrap_or(0);
        if total > max_bytes {
            return Err(EngineError::Api(format!(
                "the app folder is larger than {max_bytes} bytes"
            )));
        }
    }
    let file = std::fs::File::create(dest)
        .map_err(|e| EngineError::Api(format!("failed to create {}: {e}", dest.display())))?;
    let mut tar = tar::Builder::new(file);
    tar.follow_symlinks(false);
    tar.append_dir_all("app", dir)
        .and_then(|()| tar.finish())
        .map_err(|e| EngineError::Api(format!("failed to write the archive: {e}")))
}

fn walk(dir: &Path) -> Vec<std::fs::DirEntry> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => out.push(e),
                Err(_) => {}
            }
        }
    }
    out
}
