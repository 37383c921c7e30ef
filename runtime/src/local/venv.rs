//! Python environments for Spaces run as processes: one virtual
//! environment per [`PythonEnv::key`], made once with the machine's Python
//! and pip, then reused by every Space and every restart with the same
//! dependencies. Two makers of one key (two processes, or two Spaces of
//! one hub) take a file lock, so the environment is made once; one that
//! was left half made (a crash, a failed pip) is made again.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::plan::PythonEnv;
use crate::engine::LogSender;

/// Marks an environment whose packages were all installed.
const READY: &str = ".spaceport-ready";

/// The environments under one folder.
#[derive(Debug, Clone)]
pub struct Venvs {
    root: PathBuf,
    /// The interpreter environments are made with (`python3`).
    python: String,
}

/// An environment ready to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venv {
    pub dir: PathBuf,
    /// False when it was made just now.
    pub reused: bool,
}

impl Venv {
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    pub fn bin(&self) -> PathBuf {
        self.dir.join("bin")
    }
}

impl Venvs {
    pub fn new(root: impl Into<PathBuf>, python: impl Into<String>) -> Self {
        Venvs {
            root: root.into(),
            python: python.into(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `major.minor` of the interpreter, or why it cannot be run.
    pub async fn interpreter_version(&self) -> Result<String, String> {
        let out = Command::new(&self.python)
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("failed to run {}: {e}", self.python))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                self.python,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The environment for `env`, made now if it does not exist yet.
    /// `files` is the Space folder its requirement files are read from
    /// (pip runs there, so relative references in them work). Progress
    /// goes to `log`.
    pub async fn ensure(
        &self,
        env: &PythonEnv,
        files: &Path,
        log: &LogSender,
    ) -> Result<Venv, String> {
        let key = env.key();
        let dir = self.root.join(&key);
        std::fs::create_dir_all(&self.root)
            .map_err(|e| format!("failed to create {}: {e}", self.root.display()))?;
        if dir.join(READY).is_file() {
            let _ = log
                .send(format!("Reusing the Python environment {key}"))
                .await;
            return Ok(Venv { dir, reused: true });
        }
        let lock_path = self.root.join(format!("{key}.lock"));
        let lock = crate::lockfile::lock(lock_path)
            .await
            .map_err(|e| format!("{e} (the environment {key})"))?;
        // Another maker may have finished while this one waited.
        if dir.join(READY).is_file() {
            drop(lock);
            let _ = log
                .send(format!("Reusing the Python environment {key}"))
                .await;
            return Ok(Venv { dir, reused: true });
        }
        let made = self.make(env, &dir, files, log).await;
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        drop(lock);
        made.map(|()| Venv { dir, reused: false })
    }

    async fn make(
        &self,
        env: &PythonEnv,
        dir: &Path,
        files: &Path,
        log: &LogSender,
    ) -> Result<(), String> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| format!("failed to clear {}: {e}", dir.display()))?;
        }
        let _ = log
            .send(format!(
                "Creating the Python environment {} (Python {})",
                env.key(),
                env.interpreter
            ))
            .await;
        let mut venv = Command::new(&self.python);
        venv.arg("-m").arg("venv").arg(dir);
        run_logged(venv, "python -m venv", log).await?;
        let python = dir.join("bin").join("python");
        let pip = |extra: &[String]| {
            let mut c = Command::new(&python);
            c.args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
            ])
            .args(extra)
            .current_dir(files)
            .env("PIP_NO_INPUT", "1");
            c
        };
        if env.pre_requirements.is_some() {
            let args = ["-r".to_owned(), "pre-requirements.txt".to_owned()];
            run_logged(pip(&args), "pip install -r pre-requirements.txt", log).await?;
        }
        let mut args = Vec::new();
        if env.requirements.is_some() {
            args.push("-r".to_owned());
            args.push("requirements.txt".to_owned());
        }
        args.extend(env.sdk.iter().cloned());
        if !args.is_empty() {
            let what = format!("pip install {}", args.join(" "));
            run_logged(pip(&args), &what, log).await?;
        }
        std::fs::write(dir.join(READY), env.key())
            .map_err(|e| format!("failed to mark the environment ready: {e}"))?;
        let _ = log.send("The Python environment is ready".to_owned()).await;
        Ok(())
    }
}

/// Runs a command, sending its output to `log` line by line; an error
/// naming the step when it fails.
pub(crate) async fn run_logged(
    mut cmd: Command,
    what: &str,
    log: &LogSender,
) -> Result<(), String> {
    let _ = log.send(format!("--> {what}")).await;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("failed to start {what}: {e}"))?;
    let out = child.stdout.take().map(|s| pump_lines(s, log.clone()));
    let err = child.stderr.take().map(|s| pump_lines(s, log.clone()));
    let status = child
        .wait()
        .await
        .map_err(|e| format!("failed to wait for {what}: {e}"))?;
    for t in [out, err].into_iter().flatten() {
        let _ = t.await;
    }
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({})",
            status
                .code()
                .map(|c| format!("exit code {c}"))
                .unwrap_or_else(|| "killed".into())
        ))
    }
}

/// Sends every line of a stream to `log`.
pub(crate) fn pump_lines<R: AsyncRead + Unpin + Send + 'static>(
    stream: R,
    log: LogSender,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if log.send(line).await.is_err() {
                break;
            }
        }
    })
}
