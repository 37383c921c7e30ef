//! Spaces as local processes, with real gradio from PyPI: `spaceport dev`
//! applies an edit within 3 s without a new Python environment, and
//! `spaceport up` without a Docker engine serves a gradio Space through
//! the process runner, says so at start, and refuses docker Spaces with
//! the reason.
//!
//! Both need Python 3 with venv and pip able to install gradio (PyPI or a
//! mirror). Under CI=true a missing prerequisite fails the test; elsewhere
//! the test is skipped with the reason. The environments are kept under
//! the target dir, so only the first run installs gradio.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "hf_process_runner_token_0123456789";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = "python3 with the venv and ensurepip modules is missing";
        assert!(!ci(), "CI=true and {why}");
        eprintln!("skipped: {why}");
    }
    ok
}

/// Environments shared by the tests of this file and kept between runs.
fn venvs() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("spaceport-venvs")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

/// A plain HTTP/1.1 GET: status and body (None when nothing answers).
fn get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .env("NO_COLOR", "1")
            .spawn()
            .expect("spaceport starts");
        Proc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("spaceport exited with {status}:\n{}", self.log());
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("spaceport did not stop on SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(2));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn venv_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(venvs())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The port of the local URL gradio printed.
fn gradio_port(log: &str) -> Option<u16> {
    let at = log.rfind("Running on local URL:")?;
    let rest = &log[at..];
    let url = rest.split_whitespace().nth(4)?;
    url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
}

#[test]
fn dev_mode_shows_an_edit_within_3_seconds_without_a_new_environment() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("hello-dev");
    copy_dir(&example("gradio-hello"), &space);
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spaceport"));
    cmd.arg("dev")
        .arg(&space)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--venvs")
        .arg(venvs());
    let mut dev = Proc::spawn(cmd, dir.path().join("dev.log"));
    let config = "/apps/local/hello-dev/config";
    // The first run ever installs gradio: minutes.
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        dev.assert_alive();
        if let Some((200, body)) = get(port, config, None) {
            assert!(body.contains("\"label\":\"Name\""), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the app never answered:\n{}",
            dev.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let before = venv_names();
    assert!(!before.is_empty(), "no environment was made");
    // The root of the dev server leads to the Space.
    let (status, _) = get(port, "/", None).unwrap();
    assert_eq!(status, 307);

    let app = space.join("app.py");
    let text = std::fs::read_to_string(&app).unwrap();
    assert!(text.contains("label=\"Name\""));
    std::fs::write(
        &app,
        text.replace("label=\"Name\"", "label=\"Name (edited)\""),
    )
    .unwrap();
    let t0 = Instant::now();
    let seen = loop {
        if let Some((200, body)) = get(port, config, None)
            && body.contains("Name (edited)")
        {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the edit never showed:\n{}",
            dev.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("the edit showed after {} ms", seen.as_millis());
    assert!(
        seen < Duration::from_secs(3),
        "the edit took {} ms to show:\n{}",
        seen.as_millis(),
        dev.log()
    );
    assert_eq!(venv_names(), before, "an edit made a new environment");
    let log = dev.log();
    assert!(
        log.matches("Creating the Python environment").count() <= 1,
        "{log}"
    );
    assert!(log.contains("gradio reloads code changes"), "{log}");

    let app_port = gradio_port(&log).expect("gradio printed its URL");
    let status = dev.terminate();
    assert!(status.success(), "{status}\n{}", dev.log());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        TcpStream::connect(("127.0.0.1", app_port)).is_err(),
        "the app outlived spaceport dev"
    );
}

#[test]
fn up_without_docker_serves_gradio_through_the_process_runner() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    copy_dir(&example("gradio-hello"), &examples.join("gradio-hello"));
    copy_dir(&example("docker-hello"), &examples.join("docker-hello"));
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spaceport"));
    cmd.arg("up")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--examples")
        .arg(&examples)
        .arg("--venvs")
        .arg(venvs())
        // No Docker engine answers here.
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("SPACEPORT_ADMIN_TOKEN", ADMIN_TOKEN);
    let mut hub = Proc::spawn(cmd, dir.path().join("up.log"));
    let runtime = |space: &str| -> Option<serde_json::Value> {
        let (status, body) = get(
            port,
            &format!("/api/spaces/admin/{space}/runtime"),
            Some(ADMIN_TOKEN),
        )?;
        (status == 200).then(|| serde_json::from_str(&body).unwrap())
    };
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        hub.assert_alive();
        if let Some(rt) = runtime("gradio-hello") {
            match rt["stage"].as_str().unwrap_or_default() {
                "RUNNING" => break,
                "BUILD_ERROR" | "RUNTIME_ERROR" | "CONFIG_ERROR" | "NO_APP_FILE" => {
                    panic!("gradio-hello failed: {rt}\n{}", hub.log())
                }
                _ => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "gradio-hello never ran:\n{}",
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = hub.log();
    assert!(
        log.contains("Spaces run as local processes") && log.contains("not isolated"),
        "no warning at start:\n{log}"
    );
    let (status, body) = get(port, "/apps/admin/gradio-hello/config", None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"label\":\"Name\""), "{body}");
    // The docker example is refused, with the reason.
    let deadline = Instant::now() + Duration::from_secs(60);
    let rt = loop {
        if let Some(rt) = runtime("docker-hello")
            && rt["stage"] == "BUILD_ERROR"
        {
            break rt;
        }
        assert!(
            Instant::now() < deadline,
            "docker-hello was not refused: {:?}\n{}",
            runtime("docker-hello"),
            hub.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let msg = rt["errorMessage"].as_str().unwrap_or_default();
    assert!(msg.contains("need a Docker engine"), "{rt}");

    let status = hub.terminate();
    assert!(status.success(), "{status}\n{}", hub.log());
}
