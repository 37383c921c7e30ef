//! The `spaceport-proxy` binary: refuses bad config with exit status 64
//! before binding, serves a routes file, reloads it on SIGHUP.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_spaceport-proxy");

fn run_expecting_failure(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version_work_without_a_routes_file() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--routes"));
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("spaceport-proxy 0."));
}

#[test]
fn bad_config_exits_64_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("routes.yaml");
    std::fs::write(&bad, "routes:\n  - space: a/b\n    upstreams: [\"127.0.0.1:1\"]\n    custom_headers: {x-frame-options: deny}\n").unwrap();
    let (code, err) =
        run_expecting_failure(&["--routes", bad.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("x-frame-options"), "{err}");
    let missing = dir.path().join("missing.yaml");
    let (code, err) = run_expecting_failure(&["--routes", missing.to_str().unwrap()]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("failed to read"), "{err}");
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "routes: []\n").unwrap();
    let (code, err) =
        run_expecting_failure(&["--routes", good.to_str().unwrap(), "--domain", "bad domain"]);
    assert_eq!(code, 64, "{err}");
    let (code, err) = run_expecting_failure(&[
        "--routes",
        good.to_str().unwrap(),
        "--tls-cert",
        "/nonexistent.pem",
        "--tls-key",
        "/nonexistent.key",
    ]);
    assert_eq!(code, 64, "{err}");
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serves_a_routes_file_and_reloads_it_on_sighup() {
    let a = upstream("a").await;
    let b = upstream("b").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    std::fs::write(
        &file,
        format!(
            "routes:\n  - space: alice/demo\n    upstreams: [\"{}\"]\n",
            a.addr
        ),
    )
    .unwrap();
    let port = dead_port().await;
    let admin = dead_port().await;
    let child = Child(
        Command::new(BIN)
            .args([
                "--routes",
                file.to_str().unwrap(),
                "--listen",
                &port.to_string(),
            ])
            .args([
                "--admin-listen",
                &admin.to_string(),
                "--domain",
                "spaces.test",
            ])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(port).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "proxy did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = get(port, "alice-demo.spaces.test", "/echo", &[]).await;
    assert_eq!(got.json()["tag"], "a");
    std::fs::write(
        &file,
        format!(
            "routes:\n  - space: alice/demo\n    upstreams: [\"{}\"]\n",
            b.addr
        ),
    )
    .unwrap();
    let pid = child.0.id().to_string();
    // The shell's built-in kill: present wherever sh is.
    let hup = format!("kill -HUP {pid}");
    assert!(
        Command::new("sh")
            .args(["-c", &hup])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = get(port, "alice-demo.spaces.test", "/echo", &[]).await;
        if got.json()["tag"] == "b" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "routes were not reloaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = get(admin, "localhost", "/metrics", &[]).await.text();
    assert!(
        metrics.contains("spaceport_proxy_route_updates_total{result=\"applied\"} 2"),
        "{metrics}"
    );
}
