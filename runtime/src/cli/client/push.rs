//! `spaceport push`: git push a folder to a Space, then follow the build
//! until the Space runs (exit 0) or fails (exit 1, with the failing lines).
//!
//! The token travels to git as an `http.extraHeader` set through the
//! environment (`GIT_CONFIG_COUNT`), so it is never written into a repo's
//! config, never part of a URL and never on a command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::http::{Api, LogStream, failure};
use super::output::{is_failed_stage, s};
use super::progress::{Progress, build_step, failing_lines};
use super::spaces::space_call;
use super::{Ctx, Done, EXIT_AUTH, Failure, space_id};

pub const PUSH_HELP: &str = "FOLDER's HEAD is pushed to the Space's main branch. A folder that is not\nthe top of a git repo is committed as it is (respecting its .gitignore) on\ntop of the Space's current main, in a temporary repo. Then the build is\nfollowed: a progress line on stderr (plain lines when stderr is not a\nterminal) until the Space is RUNNING.\n\nExamples:\n  spaceport push . --space alice/demo\n  spaceport push examples/gradio-hello --space alice/hello --no-follow\n\nExit status: 0 the pushed commit is RUNNING (or pushed, with --no-follow),\n1 the push was rejected or the Space failed (BUILD_ERROR, RUNTIME_ERROR,\nCONFIG_ERROR, NO_APP_FILE; the failing log lines and the hub's message are\nshown), 2 usage, 3 token refused, 4 no such Space, 5 hub unreachable.";

#[derive(Debug, Clone, clap::Args)]
pub struct PushArgs {
    /// The folder to push.
    #[arg(default_value = ".")]
    pub folder: PathBuf,
    /// The Space, as OWNER/NAME [default: from a git remote of FOLDER that
    /// points at /spaces/OWNER/NAME]
    #[arg(long, value_parser = space_id, value_name = "OWNER/NAME")]
    pub space: Option<String>,
    /// Return once pushed, without following the build.
    #[arg(long)]
    pub no_follow: bool,
    /// Give up following after this many seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    pub timeout: u64,
}

/// One git invocation's result.
struct GitOut {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the system git with no prompts; `env` adds variables.
fn git(cwd: &Path, env: &[(&str, String)], args: &[&str]) -> Result<GitOut, Failure> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| {
        Failure::failed(format!(
            "cannot run git ({e}); push needs git installed and on PATH"
        ))
    })?;
    Ok(GitOut {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The environment that hands git the token as a header.
fn auth_env(token: &str) -> Vec<(&'static str, String)> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("spaceport:{token}"));
    vec![
        ("GIT_CONFIG_COUNT", "1".to_owned()),
        ("GIT_CONFIG_KEY_0", "http.extraHeader".to_owned()),
        (
            "GIT_CONFIG_VALUE_0",
            format!("Authorization: Basic {basic}"),
        ),
    ]
}

/// `OWNER/NAME` from a git URL ending in `/spaces/OWNER/NAME[.git]`.
pub fn space_from_remote(url: &str) -> Option<String> {
    let (_, rest) = url.rsplit_once("/spaces/")?;
    let rest = rest.trim_end_matches('/').trim_end_matches(".git");
    space_id(rest).ok()
}

/// What is pushed: a commit, and the folder git runs in.
struct Prepared {
    sha: String,
    cwd: PathBuf,
    env: Vec<(&'static str, String)>,
    _tmp: Option<tempfile::TempDir>,
}

/// The folder's HEAD when it is the top of a work tree.
fn repo_top(folder: &Path) -> Option<PathBuf> {
    let out = git(folder, &[], &["rev-parse", "--show-toplevel"]).ok()?;
    if !out.ok {
        return None;
    }
    let top = std::fs::canonicalize(&out.stdout).ok()?;
    (std::fs::canonicalize(folder).ok()? == top).then_some(top)
}

/// Commits the folder as it is, on top of the Space's main, in a
/// temporary repo whose work tree is the folder.
fn snapshot(
    ctx: &mut Ctx<'_>,
    folder: &Path,
    remote: &str,
    token: &str,
) -> Result<Prepared, Failure> {
    let tmp = tempfile::tempdir()
        .map_err(|e| Failure::failed(format!("cannot make a temporary repo: {e}")))?;
    let env: Vec<(&'static str, String)> = vec![
        ("GIT_DIR", tmp.path().join("git").display().to_string()),
        ("GIT_WORK_TREE", folder.display().to_string()),
    ];
    let run = |env: &[(&str, String)], args: &[&str]| -> Result<GitOut, Failure> {
        let out = git(folder, env, args)?;
        Ok(out)
    };
    let init = run(&env, &["init", "-q", "-b", "main"])?;
    if !init.ok {
        return Err(Failure::failed(format!(
            "git init failed: {}",
            last_line(&init.stderr)
        )));
    }
    let mut with_auth = env.clone();
    with_auth.extend(auth_env(token));
    let fetched = run(&with_auth, &["fetch", "-q", remote, "main"])?.ok;
    if fetched {
        run(&env, &["update-ref", "refs/heads/main", "FETCH_HEAD"])?;
    }
    let add = run(&env, &["add", "-A"])?;
    if !add.ok {
        return Err(Failure::failed(format!(
            "git add failed in {}: {}",
            folder.display(),
            last_line(&add.stderr)
        )));
    }
    let unchanged = fetched && run(&env, &["diff", "--cached", "--quiet", "main"])?.ok;
    if !unchanged {
        let commit = run(
            &env,
            &[
                "-c",
                "user.name=spaceport",
                "-c",
                "user.email=spaceport@localhost",
                "commit",
                "-q",
                "--no-verify",
                "-m",
                "Push with spaceport",
            ],
        )?;
        if !commit.ok {
            return Err(Failure::usage(format!(
                "nothing to push: {} has no files git would commit ({})",
                folder.display(),
                last_line(&commit.stdout)
            )));
        }
    } else {
        ctx.out
            .note("The Space's main already has these files; pushing nothing new");
    }
    let sha = run(&env, &["rev-parse", "HEAD"])?.stdout;
    Ok(Prepared {
        sha,
        cwd: folder.to_path_buf(),
        env,
        _tmp: Some(tmp),
    })
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

pub async fn push(ctx: &mut Ctx<'_>, a: PushArgs) -> Done {
    let api = ctx.api()?;
    let Some(token) = api.token.clone() else {
        return Err(Failure::new(
            EXIT_AUTH,
            "push needs a token; run `spaceport login` or set SPACEPORT_TOKEN",
        ));
    };
    if !a.folder.is_dir() {
        return Err(Failure::usage(format!(
            "{} is not a folder; give the Space's folder (default: .)",
            a.folder.display()
        )));
    }
    let folder = std::fs::canonicalize(&a.folder)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", a.folder.display())))?;
    let top = repo_top(&folder);
    let space = match (&a.space, &top) {
        (Some(s), _) => s.clone(),
        (None, Some(top)) => {
            let remotes = git(top, &[], &["remote", "-v"])?.stdout;
            remotes
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .find_map(space_from_remote)
                .ok_or_else(|| Failure::usage("say which Space to push to: --space OWNER/NAME"))?
        }
        (None, None) => {
            return Err(Failure::usage(
                "say which Space to push to: --space OWNER/NAME",
            ));
        }
    };
    // The Space exists and the token may see it: clear errors before git.
    let info = space_call(&api, &space, "GET", &format!("/api/spaces/{space}"), None).await?;
    let remote = format!("{}/spaces/{space}", api.base);
    let prepared = match &top {
        Some(top) => {
            let head = git(top, &[], &["rev-parse", "HEAD"])?;
            if !head.ok {
                return Err(Failure::usage(format!(
                    "{} has no commits yet; commit the Space's files first",
                    top.display()
                )));
            }
            let dirty = git(top, &[], &["status", "--porcelain"])?.stdout;
            if !dirty.is_empty() {
                ctx.out
                    .note("note: uncommitted changes are not pushed (only HEAD is)");
            }
            Prepared {
                sha: head.stdout,
                cwd: top.clone(),
                env: Vec::new(),
                _tmp: None,
            }
        }
        None => snapshot(ctx, &folder, &remote, &token)?,
    };
    let mut env = prepared.env.clone();
    env.extend(auth_env(&token));
    let refspec = format!("{}:refs/heads/main", prepared.sha);
    let out = git(
        &prepared.cwd,
        &env,
        &["push", "--porcelain", &remote, &refspec],
    )?;
    for l in out.stderr.lines().map(str::trim_end) {
        if l.starts_with("remote:") && l != "remote:" {
            ctx.out.note(l);
        }
    }
    if !out.ok {
        let all = format!("{}\n{}", out.stdout, out.stderr);
        if all.contains("non-fast-forward") || all.contains("fetch first") {
            return Err(Failure::failed(format!(
                "the Space's main has commits that HEAD lacks; merge them first (git pull {remote} main), then push again"
            )));
        }
        if all.contains("Authentication failed") || all.contains(" 401") || all.contains(" 403") {
            return Err(Failure::new(
                EXIT_AUTH,
                "git was refused (the token may not write to this Space); run `spaceport login` with a valid token",
            ));
        }
        return Err(Failure::failed(format!(
            "git push to {remote} failed: {}",
            last_line(&out.stderr)
        )));
    }
    let short: String = prepared.sha.chars().take(7).collect();
    ctx.out.note(&format!("Pushed {short} to {space}"));
    if a.no_follow {
        ctx.out.line(&format!(
            "Pushed {short} to {space}; `spaceport logs {space} --build -f` follows the build"
        ));
        return Ok(());
    }
    let url = s(&info, "host").to_owned();
    follow(
        ctx,
        &api,
        &space,
        &prepared.sha,
        &url,
        Duration::from_secs(a.timeout),
    )
    .await
}

/// What the build log reader has seen on its current connection.
#[derive(Debug, Default)]
struct Seen {
    lines: Vec<String>,
    step: Option<String>,
}

/// Reads the build log in the background, reconnecting when the hub
/// replaces it (a new build) or when it stays empty.
fn watch_build_log(api: Api, space: String, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let path = format!("/api/spaces/{space}/logs/build");
        loop {
            if let Ok(mut stream) = api.log_stream(&path).await {
                let mut got_any = false;
                loop {
                    let wait = if got_any {
                        Duration::from_secs(3600)
                    } else {
                        Duration::from_secs(2)
                    };
                    match tokio::time::timeout(wait, stream.next()).await {
                        Ok(Ok(Some(l))) => {
                            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                            if !got_any {
                                *seen = Seen::default();
                                got_any = true;
                            }
                            if let Some(step) = build_step(&l.line) {
                                seen.step = Some(step);
                            }
                            seen.lines.push(l.line);
                        }
                        // Ended, broken, or an empty stream: connect again.
                        _ => break,
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

/// The history of a log as it is now (read until the stream goes quiet).
async fn read_log(api: &Api, space: &str, which: &str) -> Vec<String> {
    let Ok(mut stream): Result<LogStream, _> = api
        .log_stream(&format!("/api/spaces/{space}/logs/{which}"))
        .await
    else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    while let Ok(Ok(Some(l))) =
        tokio::time::timeout(Duration::from_millis(1000), stream.next()).await
    {
        lines.push(l.line);
    }
    lines
}

const MOVING: [&str; 4] = [
    "BUILDING",
    "RUNNING_BUILDING",
    "APP_STARTING",
    "RUNNING_APP_STARTING",
];

async fn follow(
    ctx: &mut Ctx<'_>,
    api: &Api,
    space: &str,
    sha: &str,
    url: &str,
    limit: Duration,
) -> Done {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let reader = watch_build_log(api.clone(), space.to_owned(), seen.clone());
    let mut progress = Progress::new(ctx.out.err_tty, ctx.out.err_color);
    let started = Instant::now();
    let mut moved = false;
    let mut last_poll: Option<Instant> = None;
    let mut unreachable_since: Option<Instant> = None;
    let mut stage = String::from("QUEUED");
    let result = loop {
        let due = last_poll.is_none_or(|t| t.elapsed() >= Duration::from_millis(700));
        if due {
            last_poll = Some(Instant::now());
            match api.get(&format!("/api/spaces/{space}/runtime")).await {
                Ok(rt) => {
                    unreachable_since = None;
                    stage = s(&rt, "stage").to_owned();
                    moved |= MOVING.contains(&stage.as_str());
                    let settled = moved || started.elapsed() > Duration::from_secs(15);
                    let serving = rt["sha"].as_str() == Some(sha);
                    let message = rt["errorMessage"].as_str().unwrap_or_default().to_owned();
                    if stage == "RUNNING" && serving {
                        break Ok(());
                    }
                    if settled && is_failed_stage(&stage) {
                        break Err((stage.clone(), message));
                    }
                    if moved && stage == "RUNNING" && message.contains("build failed") {
                        break Err(("BUILD_ERROR".to_owned(), message));
                    }
                    if settled && stage == "PAUSED" {
                        break Err((
                            stage.clone(),
                            format!("the Space is paused; `spaceport restart {space}` starts it"),
                        ));
                    }
                }
                Err(e) => {
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(30) {
                        progress.clear(ctx.out.err);
                        reader.abort();
                        return Err(failure(e, api, Some(space)));
                    }
                }
            }
        }
        if started.elapsed() > limit {
            progress.clear(ctx.out.err);
            reader.abort();
            return Err(Failure::failed(format!(
                "{space} is still {stage} after {} s; `spaceport logs {space} --build -f` shows the build",
                limit.as_secs()
            )));
        }
        let step = {
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.step.clone()
        };
        let step = step.filter(|_| moved && stage.contains("BUILDING"));
        // Until the new build shows, the stage is the previous one's.
        let shown = if moved || started.elapsed() > Duration::from_secs(15) {
            stage.as_str()
        } else {
            "QUEUED"
        };
        progress.update(ctx.out.err, shown, step.as_deref());
        tokio::time::sleep(Duration::from_millis(if ctx.out.err_tty {
            100
        } else {
            300
        }))
        .await;
    };
    reader.abort();
    progress.clear(ctx.out.err);
    match result {
        Ok(()) => {
            let mark = ctx.out.paint("32", "RUNNING");
            ctx.out.line(&format!("{space} is {mark} at {url}"));
            Ok(())
        }
        Err((stage, message)) => {
            let shown = match stage.as_str() {
                "BUILD_ERROR" => {
                    Some(("build", failing_lines(&read_log(api, space, "build").await)))
                }
                "RUNTIME_ERROR" => {
                    let lines = read_log(api, space, "run").await;
                    let from = lines.len().saturating_sub(10);
                    Some(("run", lines[from..].to_vec()))
                }
                _ => None,
            };
            if let Some((which, lines)) = shown
                && !lines.is_empty()
            {
                let title = ctx
                    .out
                    .paint_err("1", &format!("The {which} log of {space} ends with:"));
                ctx.out.note(&title);
                for l in lines {
                    ctx.out.note(&format!("  {}", super::output::clean(&l)));
                }
            }
            let why = if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            };
            let log_flag = if stage == "BUILD_ERROR" {
                " --build"
            } else {
                ""
            };
            Err(Failure::failed(format!(
                "{space} is {stage}{why}; fix it and push again (`spaceport logs {space}{log_flag}` shows the whole log)"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_space_comes_from_a_remote_url() {
        assert_eq!(
            space_from_remote("http://127.0.0.1:8080/spaces/alice/demo").as_deref(),
            Some("alice/demo")
        );
        assert_eq!(
            space_from_remote("https://hub.example.org/spaces/org/x.git").as_deref(),
            Some("org/x")
        );
        assert_eq!(space_from_remote("https://github.com/a/b"), None);
    }
}
