//! Image builds of Spaces: the planned Dockerfile over the Space folder as a
//! streamed context, the log framed as Hugging Face frames it ("===== Build
//! Queued at TS / Commit SHA: SHA =====") and fanned out to subscribers with
//! a bounded history, images tagged by Space and commit, a time limit,
//! cancellation, and a newer build of a Space cancelling the one it
//! supersedes. Build secrets are written to a private temporary folder for
//! the build's duration only and reach the engine as files; their values
//! are masked in the log.
//!
//! It must not decide what to build (that is the plan's job) nor run
//! anything: it only turns an [`ImageBuild`] into an image or a reason.

pub mod context;
pub mod log;

pub use context::{DOCKERFILE_PATH, stream_context};
pub use log::LogBook;

use crate::engine::{ContainerEngine, EngineError, ImageBuildSpec, MANAGED_LABEL};
use crate::plan::{ImageBuild, SpaceId};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Label holding the Space id (`owner/name`) on images and containers.
pub const SPACE_LABEL: &str = "dev.spaceport.space";
/// Label holding the commit an image or container was made from.
pub const COMMIT_LABEL: &str = "dev.spaceport.commit";

/// The image tag of a Space at a commit: `spaceport/owner-name:commit`.
pub fn image_tag(space: &SpaceId, commit: &str) -> String {
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(40)
        .collect();
    let commit = if commit.is_empty() || commit.starts_with(['.', '-']) {
        format!("c{commit}")
    } else {
        commit
    };
    format!(
        "spaceport/{}:{}",
        space.host_label(),
        commit.to_ascii_lowercase()
    )
}

/// Year, month and day of a day number (days since 1970-01-01), by Howard
/// Hinnant's civil-from-days algorithm.
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, as HF's log banners print time.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The first line of every build log.
pub fn queued_banner(at: SystemTime, commit: &str) -> String {
    format!(
        "===== Build Queued at {} / Commit SHA: {} =====",
        utc_timestamp(at),
        commit
    )
}

/// One build to run.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub space: SpaceId,
    pub commit: String,
    /// The Space's files at that commit.
    pub folder: PathBuf,
    pub image: ImageBuild,
    /// Secret values by name; only those the plan lists reach the build.
    pub secrets: BTreeMap<String, String>,
    /// Factory rebuild: no layer reused.
    pub no_cache: bool,
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    Built { tag: String },
    Failed { reason: String },
    Cancelled { reason: String },
    TimedOut { limit: Duration },
}

impl BuildOutcome {
    pub fn is_built(&self) -> bool {
        matches!(self, BuildOutcome::Built { .. })
    }
}

/// Settings of the builder.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// Longest a build may run.
    pub time_limit: Duration,
    /// Log lines kept per build.
    pub history_lines: usize,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            time_limit: Duration::from_secs(45 * 60),
            history_lines: log::DEFAULT_HISTORY_LINES,
        }
    }
}

/// A build in flight or done: its log, its outcome, its cancel switch.
#[derive(Debug, Clone)]
pub struct BuildHandle {
    pub space: SpaceId,
    pub commit: String,
    pub tag: String,
    pub log: Arc<LogBook>,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
    outcome: watch::Receiver<Option<BuildOutcome>>,
}

impl BuildHandle {
    /// Stops the build; its outcome becomes `Cancelled { reason }`.
    pub fn cancel(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        r.get_or_insert_with(|| reason.to_owned());
        self.cancel.cancel();
    }

    /// The outcome, once the build has ended.
    pub fn outcome(&self) -> Option<BuildOutcome> {
        self.outcome.borrow().clone()
    }

    /// Waits for the build to end.
    pub async fn wait(&self) -> BuildOutcome {
        let mut rx = self.outcome.clone();
        loop {
            if let Some(o) = rx.borrow_and_update().clone() {
                return o;
            }
            if rx.changed().await.is_err() {
                return BuildOutcome::Failed {
                    reason: "the build task ended without an outcome".into(),
                };
            }
        }
    }
}

/// Runs builds on an engine, one at a time per Space.
#[derive(Debug)]
pub struct Builder<E> {
    engine: Arc<E>,
    settings: BuildSettings,
    current: Mutex<HashMap<SpaceId, BuildHandle>>,
}

fn mask(line: String, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 3)
        .fold(line, |l, s| l.replace(s.as_str(), "***"))
}

impl<E: ContainerEngine> Builder<E> {
    pub fn new(engine: Arc<E>, settings: BuildSettings) -> Self {
        Builder {
            engine,
            settings,
            current: Mutex::new(HashMap::new()),
        }
    }

    /// The engine builds run on.
    pub fn engine(&self) -> &Arc<E> {
        &self.engine
    }

    /// The latest build of a Space.
    pub fn current(&self, space: &SpaceId) -> Option<BuildHandle> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.get(space).cloned()
    }

    /// Starts a build, cancelling the Space's build it supersedes.
    pub fn start(&self, request: BuildRequest) -> BuildHandle {
        let tag = image_tag(&request.space, &request.commit);
        let log = Arc::new(LogBook::new(self.settings.history_lines));
        log.push(queued_banner(SystemTime::now(), &request.commit));
        let (tx, rx) = watch::channel(None);
        let handle = BuildHandle {
            space: request.space.clone(),
            commit: request.commit.clone(),
            tag: tag.clone(),
            log: log.clone(),
            cancel: CancellationToken::new(),
            reason: Arc::new(Mutex::new(None)),
            outcome: rx,
        };
        {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(old) = current.insert(request.space.clone(), handle.clone())
                && old.outcome().is_none()
            {
                old.cancel(&format!("superseded by commit {}", request.commit));
            }
        }
        let engine = self.engine.clone();
        let limit = self.settings.time_limit;
        let h = handle.clone();
        tokio::spawn(async move {
            let outcome = run_build(engine, request, tag, limit, &h).await;
            h.log.push(match &outcome {
                BuildOutcome::Built { tag } => format!("===== Build Succeeded: {tag} ====="),
                BuildOutcome::Failed { reason } => format!("===== Build Failed: {reason} ====="),
                BuildOutcome::Cancelled { reason } => {
                    format!("===== Build Cancelled: {reason} =====")
                }
                BuildOutcome::TimedOut { limit } => format!(
                    "===== Build Stopped: it exceeded the time limit of {} s =====",
                    limit.as_secs()
                ),
            });
            let _ = tx.send(Some(outcome));
        });
        handle
    }
}

async fn run_build<E: ContainerEngine>(
    engine: Arc<E>,
    request: BuildRequest,
    tag: String,
    limit: Duration,
    handle: &BuildHandle,
) -> BuildOutcome {
    let started = Instant::now();
    let BuildRequest {
        space,
        commit,
        folder,
        image,
        secrets,
        no_cache,
    } = request;
    // BuildKit only when the Dockerfile mounts something: the classic
    // builder streams every line of output, BuildKit through the Moby
    // session does not.
    let buildkit = image.dockerfile.contains("--mount");
    let wanted: Vec<(String, String)> = secrets
        .into_iter()
        .filter(|(k, _)| buildkit && image.build_secrets.contains(k))
        .collect();
    let secret_values: Vec<String> = wanted.iter().map(|(_, v)| v.clone()).collect();
    // Private folder (0700) and files; removed when `_secret_dir` drops,
    // whatever way the build ends.
    let mut secret_files = BTreeMap::new();
    let _secret_dir = if wanted.is_empty() {
        None
    } else {
        let dir = match tempfile::Builder::new()
            .prefix("spaceport-secrets-")
            .tempdir()
        {
            Ok(d) => d,
            Err(e) => {
                return BuildOutcome::Failed {
                    reason: format!("failed to make a private folder for build secrets: {e}"),
                };
            }
        };
        for (i, (name, value)) in wanted.iter().enumerate() {
            let path = dir.path().join(format!("secret-{i}"));
            if let Err(e) = write_private(&path, value) {
                return BuildOutcome::Failed {
                    reason: format!("failed to write the build secret {name}: {e}"),
                };
            }
            secret_files.insert(name.clone(), path);
        }
        Some(dir)
    };
    // The classic builder turns each build label into a LABEL step at the
    // end, which after any change is one more container commit, and a
    // per-commit label would defeat the cache of a no-op rebuild. So the
    // Space's constant labels go into the Dockerfile right after its last
    // FROM (one step, always cached); the tag carries the commit. BuildKit
    // sets labels without steps, so it gets them all as options.
    let constant = BTreeMap::from([
        (MANAGED_LABEL.to_owned(), "true".to_owned()),
        (SPACE_LABEL.to_owned(), space.to_string()),
    ]);
    let (dockerfile, labels) = if buildkit {
        let mut labels = constant;
        labels.insert(COMMIT_LABEL.into(), commit.clone());
        (image.dockerfile.clone(), labels)
    } else {
        (
            label_after_last_from(&image.dockerfile, &constant),
            BTreeMap::new(),
        )
    };
    let spec = ImageBuildSpec {
        tag: tag.clone(),
        dockerfile: DOCKERFILE_PATH.into(),
        build_args: image.build_args.clone(),
        secrets: secret_files,
        labels,
        no_cache,
        buildkit,
    };
    let context = stream_context(folder, image.context_excludes.clone(), dockerfile);
    let (line_tx, mut line_rx) = mpsc::channel::<String>(256);
    let log = handle.log.clone();
    let pump = tokio::spawn(async move {
        while let Some(line) = line_rx.recv().await {
            log.push(mask(line, &secret_values));
        }
    });
    let build = engine.build_image(spec, context, line_tx);
    let outcome = tokio::select! {
        r = tokio::time::timeout(limit, build) => match r {
            Ok(Ok(())) => BuildOutcome::Built { tag },
            Ok(Err(EngineError::BuildFailed(m))) => BuildOutcome::Failed { reason: m },
            Ok(Err(e)) => BuildOutcome::Failed { reason: e.to_string() },
            Err(_) => BuildOutcome::TimedOut { limit },
        },
        _ = handle.cancel.cancelled() => {
            let reason = handle.reason.lock().unwrap_or_else(|p| p.into_inner()).clone();
            BuildOutcome::Cancelled { reason: reason.unwrap_or_else(|| "cancelled".into()) }
        }
    };
    // The sender went with the build future; wait until every line is in.
    let _ = pump.await;
    if outcome.is_built() {
        handle
            .log
            .push(format!("built in {:.1} s", started.elapsed().as_secs_f64()));
    }
    outcome
}

/// Inserts one `LABEL` line after the Dockerfile's last `FROM` (the final
/// stage's), so the labels land on the image in a single cached step.
pub fn label_after_last_from(dockerfile: &str, labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into())
            )
        })
        .collect();
    let label = format!("LABEL {}", pairs.join(" "));
    let lines: Vec<&str> = dockerfile.lines().collect();
    let last_from = lines.iter().rposition(|l| {
        let t = l.trim_start();
        t.len() > 5 && t[..5].eq_ignore_ascii_case("FROM ")
    });
    match last_from {
        Some(i) => {
            // A FROM continued over several lines ends where the
            // backslashes stop.
            let mut end = i;
            while end + 1 < lines.len() && lines[end].trim_end().ends_with('\\') {
                end += 1;
            }
            let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            out.insert(end + 1, label);
            out.join("\n") + "\n"
        }
        None => dockerfile.to_owned(),
    }
}

fn write_private(path: &std::path::Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(value.as_bytes())
}

#[cfg(test)]
mod tests;
