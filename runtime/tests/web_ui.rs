//! The web UI in a real browser: `spaceport up` serving example Spaces, and
//! headless Chromium (Debian's chromium and chromium-driver) driven by
//! selenium from tests/web_ui/test_web_ui.py. Under CI=true a missing
//! browser, driver, selenium or Docker fails the test; elsewhere it is
//! skipped with the reason (without Docker only the live log check is left
//! out). Screenshots go to $SPACEPORT_SCREENSHOTS (the README's come from
//! `SPACEPORT_SCREENSHOTS=docs/screenshots`), else to a folder under the
//! target dir.

mod hub;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hub::{ADMIN_TOKEN, Git, Hub, copy_dir, example, fixture, remove_spaces};
use serde_json::json;

fn screenshots_dir() -> PathBuf {
    match std::env::var_os("SPACEPORT_SCREENSHOTS") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                // Relative to the repo root, as the README writes it.
                Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(d)
            }
        }
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-ui-screenshots"),
    }
}

const PUBLIC: &str = "admin/static-hello";
const PRIVATE: &str = "admin/private-notes";
const LOGGING: &str = "admin/request-log";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_shows_spaces_live_logs_analytics_and_settings_in_a_browser() {
    if !hub::browser_ready() {
        return;
    }
    let with_docker = hub::docker_ready();
    // The examples the hub serves on its first start: the static example,
    // and (with Docker) a Space whose app logs every request.
    let examples = tempfile::tempdir().unwrap();
    let dir = examples.path().join("static-hello");
    std::fs::create_dir_all(&dir).unwrap();
    copy_dir(&example("static-hello"), &dir);
    if with_docker {
        remove_spaces(&[LOGGING]);
        let dir = examples.path().join("request-log");
        std::fs::create_dir_all(&dir).unwrap();
        copy_dir(&fixture("envspace"), &dir);
    }
    let hub = Hub::start(&[
        "--examples",
        examples.path().to_str().unwrap(),
        "--analytics-interval",
        "1",
    ])
    .await;
    // A private Space next to them.
    let (s, body) = hub
        .api(
            "POST",
            "/api/repos/create",
            Some(json!({"name": "private-notes", "organization": "admin", "type": "space", "sdk": "static", "private": true})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let git = Git::new();
    let work = git.repo(&hub.git_url(PRIVATE, ADMIN_TOKEN), &example("static-hello"));
    git.ok(work.path(), &["push", "-q", "origin", "main"]);
    for space in [PUBLIC, PRIVATE] {
        hub.wait_stage(space, &["RUNNING"], Duration::from_secs(60))
            .await;
    }
    if with_docker {
        hub.wait_stage(LOGGING, &["RUNNING"], Duration::from_secs(600))
            .await;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web_ui/test_web_ui.py");
    let shots = screenshots_dir();
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .env("SPACEPORT_URL", hub.base())
        .env("SPACEPORT_TOKEN", ADMIN_TOKEN)
        .env("SPACEPORT_PUBLIC", PUBLIC)
        .env("SPACEPORT_PRIVATE", PRIVATE)
        .env("SPACEPORT_SCREENSHOTS", &shots);
    if with_docker {
        cmd.env("SPACEPORT_LOG_SPACE", LOGGING);
    }
    let (ok, text) = hub::run_script(cmd).await;
    if with_docker {
        remove_spaces(&[LOGGING]);
    }
    assert!(
        ok,
        "the browser checks failed:\n{text}\nhub log:\n{}",
        hub.logs()
    );
    assert!(text.contains("all passed"), "{text}");
    if with_docker {
        assert!(
            text.contains("ok   the log view receives a line written after the page loaded"),
            "{text}"
        );
    }
}
