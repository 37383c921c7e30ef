//! Process groups: every app runs in a group of its own, so stopping it
//! stops whatever it started too (reloaders, workers).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A command for an app: its own process group, a clean environment of
/// exactly `env`, no stdin, killed if its handle is dropped.
pub fn app_command(
    argv: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .process_group(0)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// The variables every app process starts from: a PATH through its
/// Python environment, the locale and temp dir of this process.
pub fn base_env(venv: Option<&Path>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut path = String::new();
    if let Some(v) = venv {
        path.push_str(&v.join("bin").display().to_string());
        path.push(':');
        env.insert("VIRTUAL_ENV".to_owned(), v.display().to_string());
    }
    path.push_str(&std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()));
    env.insert("PATH".to_owned(), path);
    for keep in ["LANG", "LC_ALL", "TZ", "TMPDIR", "TERM"] {
        if let Ok(v) = std::env::var(keep) {
            env.insert(keep.to_owned(), v);
        }
    }
    env.entry("LANG".to_owned())
        .or_insert_with(|| "C.UTF-8".to_owned());
    env
}

/// Sends `signal` (TERM, KILL, ...) to the process group `pgid`.
pub fn signal_group(pgid: u32, signal: &str) {
    // The shell's kill takes a negative pid for a group; no unsafe code,
    // no extra dependency.
    let _ = std::process::Command::new("sh")
        .args([
            "-c",
            "kill -s \"$1\" -- \"-$2\" 2>/dev/null",
            "sh",
            signal,
            &pgid.to_string(),
        ])
        .status();
}

/// Whether a process with this pid exists.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether the process `pid` works in a folder under `root`: a recorded
/// pid is only ours while this holds (pids are reused).
pub fn cwd_under(pid: u32, root: &Path) -> bool {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&root))
}

/// Stops a group: TERM, then KILL once `grace` has passed without the
/// leader exiting (as `exited` says).
pub async fn stop_group<F>(pgid: u32, grace: Duration, mut exited: F)
where
    F: FnMut() -> bool,
{
    if exited() {
        // The leader is gone; stragglers of its group go too.
        signal_group(pgid, "KILL");
        return;
    }
    signal_group(pgid, "TERM");
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if exited() {
            signal_group(pgid, "KILL");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal_group(pgid, "KILL");
}
