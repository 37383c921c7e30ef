//! The client commands of the `spaceport` binary against a real
//! `spaceport up`: every command in text and `--json`, the one-line errors
//! and their exit codes, login's private file, completions and the man
//! page, and `push` following a Docker build to RUNNING or to its failing
//! step. Tests that need Docker and the local base image skip without them
//! (and fail under CI=true).

mod hub;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hub::{ADMIN_TOKEN, Git, Hub, example, fixture, remove_spaces};
use serde_json::Value;

/// What one run of the binary gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr: {}", self.stdout, self.stderr))
    }

    /// Exit 0, or a panic with everything it said.
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }

    /// A failure with `code` and exactly one `error:` line on stderr.
    fn fails(self, code: i32) -> Run {
        assert_eq!(self.code, code, "{self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        self
    }
}

/// The binary with its environment: a hub URL, a token, a config home of
/// its own (so no login of the machine's user leaks in).
struct Client {
    url: String,
    token: Option<String>,
    home: tempfile::TempDir,
}

impl Client {
    fn new(url: &str, token: Option<&str>) -> Client {
        Client {
            url: url.to_owned(),
            token: token.map(str::to_owned),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn config_home(&self) -> std::path::PathBuf {
        self.home.path().join("config")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spaceport"));
        cmd.args(args)
            .env("XDG_CONFIG_HOME", self.config_home())
            .env("HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("SPACEPORT_URL")
            .env_remove("SPACEPORT_TOKEN");
        if !self.url.is_empty() {
            cmd.env("SPACEPORT_URL", &self.url);
        }
        if let Some(t) = &self.token {
            cmd.env("SPACEPORT_TOKEN", t);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_stdin(args, None)
    }

    fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spaceport runs");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs on a blocking thread, so the test's hub keeps being polled.
    async fn run_async(self: &std::sync::Arc<Self>, args: &[&str]) -> Run {
        let me = self.clone();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            me.run(&refs)
        })
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_speaks_text_and_json_and_fails_in_one_line() {
    let hub = Hub::start(&[]).await;
    let cli = std::sync::Arc::new(Client::new(&hub.base(), Some(ADMIN_TOKEN)));

    // whoami
    let who = cli.run(&["whoami"]).ok();
    assert!(who.stdout.contains("admin"), "{who:?}");
    let who = cli.run(&["whoami", "--json"]).ok().json();
    assert_eq!(who["name"], "admin");
    assert_eq!(who["is_admin"], true);
    assert!(who["orgs"].is_array());
    assert_eq!(who["url"], hub.base().as_str());

    // create
    let made = cli.run(&["create", "admin/site", "--sdk", "static"]).ok();
    assert!(made.stdout.contains("Created admin/site"), "{made:?}");
    cli.run(&[
        "create",
        "admin/hidden",
        "--sdk",
        "docker",
        "--private",
        "--hardware",
        "cpu-upgrade",
    ])
    .ok();
    // Creating it again: the operation fails, in one line.
    let again = cli
        .run(&["create", "admin/site", "--sdk", "static"])
        .fails(1);
    assert!(again.stderr.contains("already exists"), "{again:?}");
    // An sdk the hub does not know is a usage error before any request.
    assert_eq!(cli.run(&["create", "admin/x", "--sdk", "rails"]).code, 2);

    // ls
    let ls = cli.run(&["ls"]).ok();
    assert!(ls.stdout.starts_with("SPACE"), "{ls:?}");
    assert!(ls.stdout.contains("admin/site"), "{ls:?}");
    assert!(ls.stdout.contains("admin/hidden (private)"), "{ls:?}");
    let list = cli.run(&["ls", "--owner", "admin", "--json"]).ok().json();
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 2, "{list:?}");
    let hidden = list.iter().find(|s| s["id"] == "admin/hidden").unwrap();
    assert_eq!(hidden["owner"], "admin");
    assert_eq!(hidden["sdk"], "docker");
    assert_eq!(hidden["private"], true);
    assert_eq!(hidden["stage"], "NO_APP_FILE");
    assert!(hidden["url"].as_str().unwrap().starts_with("http://"));
    assert!(hidden.get("hardware").is_some() && hidden.get("sha").is_some());
    let none = cli.run(&["ls", "--owner", "nobody", "--json"]).ok().json();
    assert_eq!(none, Value::Array(vec![]));

    // push of a folder that is not a git repo: static, no Docker needed.
    let pushed = cli
        .run_async(&[
            "push",
            example("static-hello").to_str().unwrap(),
            "--space",
            "admin/site",
        ])
        .await
        .ok();
    assert!(
        pushed.stdout.contains("admin/site is RUNNING at http://"),
        "{pushed:?}"
    );
    assert!(
        !pushed.stderr.contains(ADMIN_TOKEN),
        "the token is never shown"
    );
    assert!(!pushed.stderr.contains('\r'), "no spinner off a terminal");
    // The same files again: nothing new, still RUNNING.
    let again = cli
        .run_async(&[
            "push",
            example("static-hello").to_str().unwrap(),
            "--space",
            "admin/site",
        ])
        .await
        .ok();
    assert!(again.stdout.contains("RUNNING"), "{again:?}");
    let (s, _, page) = hub.get("/apps/admin/site/", None).await.unwrap();
    assert_eq!(s, 200);
    assert!(!page.is_empty());

    // info
    let info = cli.run(&["info", "admin/site"]).ok();
    assert!(info.stdout.starts_with("admin/site"), "{info:?}");
    assert!(info.stdout.contains("RUNNING"), "{info:?}");
    let info = cli.run(&["info", "admin/site", "--json"]).ok().json();
    assert_eq!(info["id"], "admin/site");
    assert_eq!(info["owner"], "admin");
    assert_eq!(info["sdk"], "static");
    assert_eq!(info["private"], false);
    assert_eq!(info["stage"], "RUNNING");
    assert!(
        info["sha"].as_str().is_some_and(|s| s.len() == 40),
        "{info}"
    );
    assert!(info["hardware"].get("requested").is_some());
    assert!(
        info["url"].as_str().unwrap().contains("admin-site"),
        "{info}"
    );
    assert!(info["created_at"].is_string());
    let files = info["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f == "index.html"), "{info}");

    // logs: a static Space without a build command has no build log, and
    // an unbuilt one no run log: empty, exit 0, a note on stderr. (The
    // Docker test below reads real lines.)
    let logs = cli.run_async(&["logs", "admin/site", "--build"]).await.ok();
    assert!(logs.stdout.is_empty(), "{logs:?}");
    assert!(logs.stderr.contains("no build log lines"), "{logs:?}");
    let jl = cli
        .run_async(&["logs", "admin/hidden", "--json"])
        .await
        .ok();
    assert!(jl.stdout.is_empty(), "{jl:?}");
    // -f keeps following the open stream until interrupted.
    let mut follow = cli
        .command(&["logs", "admin/hidden", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        follow.try_wait().unwrap().is_none(),
        "-f keeps following an open stream"
    );
    follow.kill().unwrap();
    follow.wait().unwrap();

    // secrets: values are write-only.
    let set = cli
        .run(&[
            "secrets",
            "set",
            "admin/hidden",
            "API_KEY",
            "s3cr3t",
            "--description",
            "the key",
        ])
        .ok();
    assert!(set.stdout.contains("API_KEY"), "{set:?}");
    cli.run_stdin(
        &["secrets", "set", "admin/hidden", "OTHER", "-"],
        Some("from-stdin\n"),
    )
    .ok();
    let ls = cli.run(&["secrets", "ls", "admin/hidden"]).ok();
    assert!(
        ls.stdout.contains("API_KEY") && ls.stdout.contains("the key"),
        "{ls:?}"
    );
    assert!(!ls.stdout.contains("s3cr3t"), "{ls:?}");
    let secrets = cli.run(&["secrets", "ls", "admin/hidden", "--json"]).ok();
    assert!(!secrets.stdout.contains("s3cr3t") && !secrets.stdout.contains("from-stdin"));
    let secrets = secrets.json();
    let keys: Vec<&str> = secrets
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{secrets}");
    assert!(keys.contains(&"API_KEY") && keys.contains(&"OTHER"));
    let api_key = secrets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "API_KEY")
        .unwrap();
    assert_eq!(api_key["description"], "the key");
    assert!(api_key["updated_at"].is_string());
    assert!(api_key.get("value").is_none());
    cli.run(&["secrets", "rm", "admin/hidden", "OTHER"]).ok();
    let secrets = cli
        .run(&["secrets", "ls", "admin/hidden", "--json"])
        .ok()
        .json();
    assert_eq!(secrets.as_array().unwrap().len(), 1, "{secrets}");
    assert_eq!(
        cli.run(&["secrets", "set", "admin/hidden", "BAD-NAME", "x"])
            .code,
        2
    );

    // vars
    cli.run(&["vars", "set", "admin/hidden", "MODEL_ID", "gpt2"])
        .ok();
    let vars = cli.run(&["vars", "ls", "admin/hidden"]).ok();
    assert!(
        vars.stdout.contains("MODEL_ID") && vars.stdout.contains("gpt2"),
        "{vars:?}"
    );
    let vars = cli
        .run(&["vars", "ls", "admin/hidden", "--json"])
        .ok()
        .json();
    let var = &vars.as_array().unwrap()[0];
    assert_eq!(var["key"], "MODEL_ID");
    assert_eq!(var["value"], "gpt2");
    assert!(var.get("description").is_some() && var["updated_at"].is_string());
    cli.run(&["vars", "rm", "admin/hidden", "MODEL_ID"]).ok();
    let vars = cli
        .run(&["vars", "ls", "admin/hidden", "--json"])
        .ok()
        .json();
    assert_eq!(vars, Value::Array(vec![]));

    // hardware
    let hw = cli.run(&["hardware", "admin/hidden", "--json"]).ok().json();
    assert_eq!(hw["space"], "admin/hidden");
    assert_eq!(hw["requested"], "cpu-upgrade");
    let names: Vec<&str> = hw["available"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"cpu-basic"), "{hw}");
    let flavor = &hw["available"][0];
    assert!(flavor["cpu"].is_string() && flavor["ram"].is_string() && flavor.get("gpu").is_some());
    let hw = cli.run(&["hardware", "admin/hidden"]).ok();
    assert!(hw.stdout.contains("cpu-upgrade requested"), "{hw:?}");
    assert!(hw.stdout.contains("* cpu-upgrade"), "{hw:?}");
    cli.run(&["hardware", "admin/hidden", "cpu-basic"]).ok();
    let hw = cli.run(&["hardware", "admin/hidden", "--json"]).ok().json();
    assert_eq!(hw["requested"], "cpu-basic");
    let bad = cli
        .run(&["hardware", "admin/hidden", "no-such-flavor"])
        .fails(2);
    assert!(bad.stderr.contains("unknown hardware flavor"), "{bad:?}");

    // sleep
    cli.run(&["sleep", "admin/hidden", "3600"]).ok();
    let info = cli.run(&["info", "admin/hidden", "--json"]).ok().json();
    assert_eq!(info["sleep_seconds"], 3600);
    let never = cli.run(&["sleep", "admin/hidden", "never"]).ok();
    assert!(never.stdout.contains("never sleeps"), "{never:?}");
    let info = cli.run(&["info", "admin/hidden", "--json"]).ok().json();
    assert!(info["sleep_seconds"].is_null(), "{info}");
    assert_eq!(cli.run(&["sleep", "admin/hidden", "soon"]).code, 2);

    // pause and restart
    let paused = cli.run(&["pause", "admin/site"]).ok();
    assert!(paused.stdout.contains("Paused admin/site"), "{paused:?}");
    let (stage, _) = hub.stage("admin/site").await;
    assert_eq!(stage, "PAUSED");
    cli.run(&["restart", "admin/site"]).ok();
    hub.wait_stage("admin/site", &["RUNNING"], Duration::from_secs(60))
        .await;
    let factory = cli.run(&["restart", "admin/site", "--factory"]).ok();
    assert!(factory.stdout.contains("from scratch"), "{factory:?}");
    hub.wait_stage("admin/site", &["RUNNING"], Duration::from_secs(60))
        .await;

    // open
    let open = cli.run(&["open", "admin/site"]).ok();
    assert!(
        open.stdout.trim().starts_with("http://admin-site."),
        "{open:?}"
    );
    let open = cli.run(&["open", "admin/site", "--json"]).ok().json();
    assert_eq!(open["space"], "admin/site");
    assert!(open["url"].as_str().unwrap().contains("admin-site"));
    let no_display = cli
        .command(&["open", "admin/site", "--browser"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_eq!(no_display.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&no_display.stderr).contains("no display"));

    // Errors: one line, the documented exit code, what to do next.
    let wrong = Client::new(&hub.base(), Some("hf_wrong_token"));
    let refused = wrong.run(&["ls"]).fails(3);
    assert!(refused.stderr.contains("token was refused"), "{refused:?}");
    assert!(refused.stderr.contains("spaceport login"), "{refused:?}");
    wrong.run(&["info", "admin/site"]).fails(3);
    wrong.run(&["whoami", "--json"]).fails(3);
    let missing = cli.run(&["info", "admin/nope"]).fails(4);
    assert!(
        missing
            .stderr
            .contains(&format!("no Space admin/nope on {}", hub.base())),
        "{missing:?}"
    );
    assert!(missing.stderr.contains("spaceport ls"), "{missing:?}");
    for args in [
        &["logs", "admin/nope"][..],
        &["secrets", "ls", "admin/nope"],
        &["vars", "set", "admin/nope", "A", "b"],
        &["restart", "admin/nope"],
        &["pause", "admin/nope"],
        &["hardware", "admin/nope"],
        &["sleep", "admin/nope", "60"],
        &["open", "admin/nope"],
        &["push", ".", "--space", "admin/nope"],
    ] {
        cli.run(args).fails(4);
    }
    let gone = Client::new("http://127.0.0.1:9", Some(ADMIN_TOKEN));
    let unreachable = gone.run(&["ls"]).fails(5);
    assert!(
        unreachable.stderr.contains("cannot reach the hub"),
        "{unreachable:?}"
    );
    assert_eq!(cli.run(&["info", "not-a-space-id"]).code, 2);
    let https = Client::new("ftp://example.org", Some(ADMIN_TOKEN))
        .run(&["ls"])
        .fails(2);
    assert!(https.stderr.contains("not a hub URL"), "{https:?}");
    let anonymous = Client::new(&hub.base(), None);
    let needs = anonymous
        .run(&["push", ".", "--space", "admin/site"])
        .fails(3);
    assert!(needs.stderr.contains("spaceport login"), "{needs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_the_token_and_stores_it_for_the_user_alone() {
    let hub = Hub::start(&[]).await;
    // No token in the environment: login and the stored file are the source.
    let cli = Client::new("", None);
    let url = hub.base();
    let refused = cli
        .run(&["login", "--url", &url, "--token", "hf_not_a_token"])
        .fails(3);
    assert!(refused.stderr.contains("token was refused"), "{refused:?}");
    let file = cli.config_home().join("spaceport/credentials.json");
    assert!(!file.exists(), "a refused token is not stored");

    let done = cli
        .run_stdin(&["login", "--url", &url], Some(&format!("{ADMIN_TOKEN}\n")))
        .ok();
    assert!(done.stdout.contains("as admin"), "{done:?}");
    assert!(!done.stdout.contains(ADMIN_TOKEN) && !done.stderr.contains(ADMIN_TOKEN));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the credentials file is the user's alone");
    let dir_mode = std::fs::metadata(file.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(stored["url"], url.as_str());

    // The stored URL and token serve the other commands.
    let who = cli.run(&["whoami", "--json"]).ok().json();
    assert_eq!(who["name"], "admin");
    // The stored token is not sent to another hub.
    let other = cli.run(&["ls", "--url", "http://127.0.0.1:9"]).fails(5);
    assert!(other.stderr.contains("127.0.0.1:9"), "{other:?}");
    // The environment wins over the stored login.
    let env_wins = cli
        .command(&["whoami"])
        .env("SPACEPORT_TOKEN", "hf_wrong")
        .output()
        .unwrap();
    assert_eq!(env_wins.status.code(), Some(3));

    let out = cli.run(&["logout"]).ok();
    assert!(out.stdout.contains("Logged out"), "{out:?}");
    assert!(!file.exists());
    let anonymous = cli.run(&["whoami", "--url", &url]).fails(3);
    assert!(
        anonymous.stderr.contains("spaceport login"),
        "{anonymous:?}"
    );
    let empty = cli.run_stdin(&["login", "--url", &url], Some("")).fails(2);
    assert!(empty.stderr.contains("no token"), "{empty:?}");
}

#[test]
fn completions_and_the_man_page_cover_the_commands() {
    let cli = Client::new("", None);
    for shell in ["bash", "zsh", "fish"] {
        let out = cli.run(&["completions", shell]).ok();
        assert!(out.stdout.len() > 500, "{shell}: {out:?}");
        for sub in ["push", "logs", "secrets", "login", "validate"] {
            assert!(out.stdout.contains(sub), "{shell} completes {sub}");
        }
    }
    assert_eq!(cli.run(&["completions", "tcsh"]).code, 2);
    let man = cli.run(&["man"]).ok();
    assert!(man.stdout.contains(".TH spaceport 1"), "{man:?}");
    assert!(man.stdout.contains("push"), "{man:?}");
    let dir = tempfile::tempdir().unwrap();
    cli.run(&["man", "--dir", dir.path().to_str().unwrap()])
        .ok();
    assert!(dir.path().join("spaceport.1").is_file());
    assert!(dir.path().join("spaceport-push.1").is_file());
    // Help everywhere lists examples and the exit codes.
    let help = cli.run(&["--help"]).ok();
    assert!(
        help.stdout.contains("Exit status") && help.stdout.contains("5  the hub cannot be reached")
    );
    for cmd in [
        "login", "ls", "info", "logs", "push", "hardware", "open", "whoami",
    ] {
        let h = cli.run(&[cmd, "--help"]).ok();
        assert!(h.stdout.contains("Examples:"), "{cmd} --help: {h:?}");
    }
    let h = cli.run(&["secrets", "ls", "--help"]).ok();
    assert!(h.stdout.contains("JSON"), "{h:?}");
}

/// A Space folder whose Docker build fails at a RUN step.
fn broken_space(dir: &Path) {
    std::fs::write(
        dir.join("README.md"),
        "---\ntitle: Broken\nsdk: docker\napp_port: 7860\n---\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo about-to-fail && exit 3\nCMD [\"python3\", \"-m\", \"http.server\", \"7860\"]\n",
            hub::BASE_IMAGE
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_follows_a_docker_build_to_running_or_to_its_failing_step() {
    if !hub::docker_ready() {
        return;
    }
    let ok_space = "admin/cli-env";
    let bad_space = "admin/cli-broken";
    remove_spaces(&[ok_space, bad_space]);
    let hub = Hub::start(&[]).await;
    let cli = std::sync::Arc::new(Client::new(&hub.base(), Some(ADMIN_TOKEN)));
    cli.run(&["create", ok_space, "--sdk", "docker"]).ok();
    cli.run(&["create", bad_space, "--sdk", "docker"]).ok();

    // A git repo whose remote names the Space: no --space needed, and the
    // repo's config gets no token.
    let git = Git::new();
    let work = git.repo(
        &format!("{}/spaces/{ok_space}", hub.base()),
        &fixture("envspace"),
    );
    let pushed = cli
        .run_async(&["push", work.path().to_str().unwrap()])
        .await;
    assert_eq!(pushed.code, 0, "{pushed:#?}\nhub log:\n{}", hub.logs());
    assert!(
        pushed.stdout.contains(&format!("{ok_space} is RUNNING")),
        "{pushed:?}"
    );
    assert!(
        pushed.stderr.contains("stage: "),
        "plain progress lines: {pushed:?}"
    );
    assert!(!pushed.stderr.contains('\r'), "no spinner off a terminal");
    let config = std::fs::read_to_string(work.path().join(".git/config")).unwrap();
    assert!(!config.contains(ADMIN_TOKEN) && !config.contains("extraHeader"));
    let (stage, rt) = hub.stage(ok_space).await;
    assert_eq!(stage, "RUNNING");
    let head = git.ok(work.path(), &["rev-parse", "HEAD"]);
    assert_eq!(rt["sha"].as_str(), Some(head.trim()));

    // logs of a real build: the history, its tail, JSON Lines, and -f.
    let logs = cli.run_async(&["logs", ok_space, "--build"]).await.ok();
    assert!(logs.stdout.lines().count() > 2, "{logs:?}");
    assert!(logs.stdout.contains("Build Queued"), "{logs:?}");
    let tail = cli
        .run_async(&["logs", ok_space, "--build", "-n", "2"])
        .await
        .ok();
    assert_eq!(tail.stdout.lines().count(), 2, "{tail:?}");
    let last_two: Vec<&str> = logs.stdout.lines().rev().take(2).collect();
    assert!(tail.stdout.contains(last_two[0]), "{tail:?} vs {logs:?}");
    let jl = cli
        .run_async(&["logs", ok_space, "--build", "--json"])
        .await
        .ok();
    assert_eq!(jl.stdout.lines().count(), logs.stdout.lines().count());
    for line in jl.stdout.lines() {
        let v: Value = serde_json::from_str(line).expect("one JSON object per line");
        assert!(v["line"].is_string(), "{v}");
        assert!(v["timestamp"].is_string(), "{v}");
    }
    let follow = cli
        .command(&["logs", ok_space, "--build", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let pid = follow.id();
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let out = follow.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Build Queued"),
        "-f prints the history first"
    );

    // A failing RUN: exit 1, the failing line and the hub's message shown.
    let broken = tempfile::tempdir().unwrap();
    broken_space(broken.path());
    let failed = cli
        .run_async(&[
            "push",
            broken.path().to_str().unwrap(),
            "--space",
            bad_space,
        ])
        .await;
    assert_eq!(failed.code, 1, "{failed:#?}\nhub log:\n{}", hub.logs());
    assert!(
        failed.stderr.contains("about-to-fail"),
        "the failing line: {failed:?}"
    );
    let last = failed.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: admin/cli-broken is BUILD_ERROR: build failed"),
        "{failed:?}"
    );
    assert!(!failed.stderr.contains(ADMIN_TOKEN));
    remove_spaces(&[ok_space, bad_space]);
}
