//! Helpers shared by the controller's tests: Space fixtures and real git
//! repositories on disk.
#![allow(dead_code)] // each test file uses a part of it

use serde_json::json;
use spaceport_controller::crd::Space;
use std::path::Path;
use std::process::Command;

pub const C1: &str = "1111111111111111111111111111111111111111";
pub const C2: &str = "2222222222222222222222222222222222222222";
pub const SPACES: &str = "/apis/spaceport.dev/v1alpha1/namespaces/team/spaces";

pub fn space(name: &str, url: &str, r#ref: &str, commit: Option<&str>) -> Space {
    let mut annotations = serde_json::Map::new();
    if let Some(c) = commit {
        annotations.insert("spaceport.dev/commit".into(), json!(c));
    }
    serde_json::from_value(json!({
        "apiVersion": "spaceport.dev/v1alpha1",
        "kind": "Space",
        "metadata": { "name": name, "namespace": "team", "uid": format!("uid-{name}"),
                      "annotations": annotations },
        "spec": { "source": { "git": { "url": url, "ref": r#ref } } }
    }))
    .unwrap()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=T", "-c", "user.email=t@example.invalid"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A repository with one commit on main: its file URL and the commit.
pub fn repo(dir: &Path) -> (String, String) {
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "hello").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "one"]);
    (
        format!("file://{}", dir.display()),
        git(dir, &["rev-parse", "HEAD"]),
    )
}

/// Fails the test unless the chart's RBAC grants `component` this call:
/// every mocked API server checks each call it answers with this.
pub fn assert_granted(component: &spaceport_controller::rbac::Component, method: &str, uri: &str) {
    assert!(
        component.allows(method, uri),
        "the chart grants the {} no {method} {uri}",
        component.name
    );
}
