//! A recording container engine for unit tests: it keeps every call, reads
//! the build context it is given (so tests see which files were sent),
//! plays scripted build outcomes, and holds containers in memory whose exit
//! a test decides. It never touches Docker, the network or the disk.

use super::{
    ContainerEngine, ContainerInfo, ContainerSpec, ContextStream, EngineError, ImageBuildSpec,
    LogSender, Result,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;
use tokio::sync::watch;

/// A call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineCall {
    /// A build, with the paths of the context's tar entries in order.
    Build {
        spec: ImageBuildSpec,
        context: Vec<String>,
    },
    RemoveImage(String),
    Create(ContainerSpec),
    Start(String),
    Stop(String),
    Remove(String),
    /// A copy out of a container: its id and the path.
    CopyOut(String, String),
}

/// What the next build does.
#[derive(Debug, Clone)]
struct ScriptedBuild {
    lines: Vec<String>,
    outcome: Result<()>,
    /// Never finishes: for cancellation and time-limit tests.
    hang: bool,
}

#[derive(Debug)]
struct FakeContainer {
    info: ContainerInfo,
    logs: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<EngineCall>,
    images: BTreeSet<String>,
    containers: BTreeMap<String, FakeContainer>,
    builds: VecDeque<ScriptedBuild>,
    next_id: u64,
    host_port: Option<u16>,
}

/// The recording fake. Builds succeed with no output unless scripted.
#[derive(Debug)]
pub struct FakeEngine {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        FakeEngine {
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
        }
    }
}

impl FakeEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<EngineCall> {
        self.with(|s| s.calls.clone())
    }

    /// The next build prints `lines` and ends with `outcome`.
    pub fn script_build(&self, lines: &[&str], outcome: Result<()>) {
        let lines = lines.iter().map(|l| (*l).to_owned()).collect();
        self.with(|s| {
            s.builds.push_back(ScriptedBuild {
                lines,
                outcome,
                hang: false,
            })
        });
    }

    /// The next build prints `lines` and never ends.
    pub fn hang_next_build(&self, lines: &[&str]) {
        let lines = lines.iter().map(|l| (*l).to_owned()).collect();
        self.with(|s| {
            s.builds.push_back(ScriptedBuild {
                lines,
                outcome: Ok(()),
                hang: true,
            })
        });
    }

    /// Containers report this host port for their app.
    pub fn set_host_port(&self, port: u16) {
        self.with(|s| s.host_port = Some(port));
    }

    /// Adds an existing image, as if built earlier.
    pub fn add_image(&self, tag: &str) {
        self.with(|s| s.images.insert(tag.to_owned()));
    }

    /// Adds a running container, as if left by an earlier process.
    pub fn add_running_container(&self, info: ContainerInfo) {
        self.with(|s| {
            s.containers.insert(
                info.id.clone(),
                FakeContainer {
                    info: ContainerInfo {
                        running: true,
                        ..info
                    },
                    logs: Vec::new(),
                },
            )
        });
        self.bump();
    }

    /// Makes a container print `lines` and exit with `code`.
    pub fn exit_container(&self, id: &str, code: i64, lines: &[&str]) {
        self.with(|s| {
            if let Some(c) = s.containers.get_mut(id) {
                c.logs.extend(lines.iter().map(|l| (*l).to_owned()));
                c.info.running = false;
                c.info.exit_code = Some(code);
            }
        });
        self.bump();
    }

    /// Appends output to a container's log.
    pub fn print(&self, id: &str, lines: &[&str]) {
        self.with(|s| {
            if let Some(c) = s.containers.get_mut(id) {
                c.logs.extend(lines.iter().map(|l| (*l).to_owned()));
            }
        });
        self.bump();
    }

    /// The containers the fake holds now.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.with(|s| s.containers.values().map(|c| c.info.clone()).collect())
    }
}

/// Reads a tar stream to the list of its entry paths.
async fn read_context(mut context: ContextStream) -> Result<Vec<String>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = context.recv().await {
        bytes.extend_from_slice(&chunk.map_err(|e| EngineError::Context(e.to_string()))?);
    }
    let mut archive = tar::Archive::new(bytes.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| EngineError::Context(e.to_string()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::Context(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| EngineError::Context(e.to_string()))?;
        paths.push(path.to_string_lossy().into_owned());
    }
    Ok(paths)
}

impl ContainerEngine for FakeEngine {
    async fn build_image(
        &self,
        spec: ImageBuildSpec,
        context: ContextStream,
        log: LogSender,
    ) -> Result<()> {
        let paths = read_context(context).await?;
        let tag = spec.tag.clone();
        let script = self.with(|s| {
            s.calls.push(EngineCall::Build {
                spec,
                context: paths,
            });
            s.builds.pop_front()
        });
        let script = script.unwrap_or(ScriptedBuild {
            lines: Vec::new(),
            outcome: Ok(()),
            hang: false,
        });
        for line in script.lines {
            let _ = log.send(line).await;
        }
        if script.hang {
            std::future::pending::<()>().await;
        }
        if script.outcome.is_ok() {
            self.with(|s| s.images.insert(tag));
        }
        script.outcome
    }

    async fn image_exists(&self, tag: &str) -> Result<bool> {
        Ok(self.with(|s| s.images.contains(tag)))
    }

    async fn remove_image(&self, tag: &str) -> Result<()> {
        self.with(|s| {
            s.calls.push(EngineCall::RemoveImage(tag.to_owned()));
            s.images.remove(tag);
        });
        Ok(())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let id = self.with(|s| {
            s.calls.push(EngineCall::Create(spec.clone()));
            s.next_id += 1;
            let id = format!("fake{:04}", s.next_id);
            let info = ContainerInfo {
                id: id.clone(),
                name: spec.name.clone(),
                image: spec.image.clone(),
                labels: spec.labels.clone(),
                running: false,
                exit_code: None,
                host_port: spec.container_port.and(s.host_port.or(spec.host_port)),
            };
            s.containers.insert(
                id.clone(),
                FakeContainer {
                    info,
                    logs: Vec::new(),
                },
            );
            id
        });
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let found = self.with(|s| {
            s.calls.push(EngineCall::Start(id.to_owned()));
            match s.containers.get_mut(id) {
                Some(c) => {
                    c.info.running = true;
                    c.info.exit_code = None;
                    true
                }
                None => false,
            }
        });
        self.bump();
        if found {
            Ok(())
        } else {
            Err(EngineError::NotFound {
                kind: "container",
                name: id.to_owned(),
            })
        }
    }

    async fn stop_container(&self, id: &str, _grace_secs: u32) -> Result<()> {
        self.with(|s| {
            s.calls.push(EngineCall::Stop(id.to_owned()));
            if let Some(c) = s.containers.get_mut(id)
                && c.info.running
            {
                c.info.running = false;
                c.info.exit_code = Some(143);
            }
        });
        self.bump();
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.with(|s| {
            s.calls.push(EngineCall::Remove(id.to_owned()));
            s.containers.remove(id);
        });
        self.bump();
        Ok(())
    }

    async fn copy_out(&self, id: &str, path: &str, dest: &std::path::Path, _: u64) -> Result<()> {
        self.with(|s| {
            s.calls
                .push(EngineCall::CopyOut(id.to_owned(), path.to_owned()))
        });
        // An empty tar: two zero blocks.
        std::fs::write(dest, [0u8; 1024]).map_err(|e| EngineError::Api(e.to_string()))
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInfo>> {
        Ok(self.with(|s| s.containers.get(id).map(|c| c.info.clone())))
    }

    async fn list_containers(&self, labels: &[(String, String)]) -> Result<Vec<ContainerInfo>> {
        Ok(self.with(|s| {
            s.containers
                .values()
                .filter(|c| labels.iter().all(|(k, v)| c.info.labels.get(k) == Some(v)))
                .map(|c| c.info.clone())
                .collect()
        }))
    }

    async fn follow_logs(&self, id: &str, _since: i64, log: LogSender) -> Result<()> {
        let mut sent = 0;
        let mut changed = self.changed.subscribe();
        loop {
            let (lines, alive) = self.with(|s| match s.containers.get(id) {
                Some(c) => (c.logs[sent.min(c.logs.len())..].to_vec(), c.info.running),
                None => (Vec::new(), false),
            });
            sent += lines.len();
            for line in lines {
                if log.send(line).await.is_err() {
                    return Ok(());
                }
            }
            if !alive {
                return Ok(());
            }
            if changed.changed().await.is_err() {
                return Ok(());
            }
        }
    }
}
