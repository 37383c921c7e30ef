//! The `spaceport` binary: validate and plan, their output and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn spaceport(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spaceport"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("spaceport runs")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_and_version_work() {
    let out = spaceport(&["--help"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("validate"));
    let out = spaceport(&["--version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("spaceport "));
    let out = spaceport(&["validate", "--help"]);
    assert!(text(&out.stdout).contains("Exit status: 0 valid, 1 invalid, 2 usage error"));
}

#[test]
fn every_example_validates_with_exit_zero() {
    for sdk in ["gradio", "streamlit", "docker", "static"] {
        let dir = repo_root().join("examples").join(format!("{sdk}-hello"));
        let out = spaceport(&["validate", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{sdk}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains(&format!("a valid {sdk} Space")));
    }
}

#[test]
fn an_invalid_readme_exits_one_and_lists_every_error_with_its_position() {
    let file = fixture("malformed/many-errors-at-once.md");
    let out = spaceport(&["validate", &file]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for at in [
        ":3:6: error[invalid-value]",
        ":4:11: error",
        ":5:12: error",
        ":6:11: error",
        ":7:10: error",
    ] {
        assert!(err.contains(at), "{at} missing from:\n{err}");
    }
    assert!(err.contains("invalid (5 errors)"));
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(spaceport(&["validate"]).status.code(), Some(2));
    assert_eq!(
        spaceport(&["validate", "/no/such/README.md"]).status.code(),
        Some(2)
    );
    assert_eq!(spaceport(&["frobnicate"]).status.code(), Some(2));
    let file = fixture("real/SOURCES.md");
    assert_eq!(
        spaceport(&["plan", &file]).status.code(),
        Some(2),
        "plan needs a folder"
    );
}

#[test]
fn json_output_parses_and_carries_the_diagnostics() {
    let file = fixture("malformed/sdk-typo.md");
    let out = spaceport(&["validate", "--json", &file]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["valid"], false);
    assert_eq!(v["stage"], "CONFIG_ERROR");
    let d = &v["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(3), Some(6))
    );
    assert_eq!(d["code"], "invalid-value");
    assert_eq!(d["hint"], "did you mean 'gradio'?");

    let dir = repo_root().join("examples/gradio-hello");
    let out = spaceport(&["validate", "--json", dir.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["valid"], true);
    assert_eq!(v["config"]["sdk"], "gradio");
    assert_eq!(v["plan"]["port"], 7860);
}

#[test]
fn a_folder_whose_app_file_is_missing_is_no_app_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("README.md"),
        "---\nsdk: gradio\napp_file: main.py\n---\n",
    )
    .unwrap();
    let out = spaceport(&["validate", "--json", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stage"], "NO_APP_FILE");
    assert!(v["plan_error"].as_str().unwrap().contains("main.py"));
}

#[test]
fn a_folder_without_readme_is_invalid_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let out = spaceport(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no-front-matter"));
}

#[test]
fn plan_prints_the_dockerfile_and_the_run_spec() {
    let dir = repo_root().join("examples/streamlit-hello");
    let out = spaceport(&["plan", dir.to_str().unwrap(), "--id", "team/charts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("# Dockerfile (generated)"));
    assert!(s.contains("\"streamlit==1.50.0\""));
    assert!(s.contains("SPACE_ID: team/charts"));
    let out = spaceport(&[
        "plan",
        "--json",
        "--hardware",
        "t4-small",
        dir.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["run"]["resources"]["gpus"], 1);
    assert_eq!(v["build"]["kind"], "image");
}

#[test]
fn plan_refuses_an_unknown_flavor_with_exit_one() {
    let dir = repo_root().join("examples/gradio-hello");
    let out = spaceport(&["plan", "--hardware", "quantum-x1", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not offered here"));
}

#[test]
fn an_operator_flavor_file_extends_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let flavors = dir.path().join("flavors.yaml");
    std::fs::write(
        &flavors,
        "flavors:\n  - {name: rtx4090, cpu: 16, memory_gb: 64, gpus: 1, gpu_model: RTX 4090}\n",
    )
    .unwrap();
    let example = repo_root().join("examples/gradio-hello");
    let out = spaceport(&[
        "plan",
        "--json",
        "--hardware",
        "rtx4090",
        "--flavors",
        flavors.to_str().unwrap(),
        example.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["run"]["resources"]["gpu_model"], "RTX 4090");
    std::fs::write(&flavors, "flavors: [{name: x}]\n").unwrap();
    let out = spaceport(&[
        "plan",
        "--flavors",
        flavors.to_str().unwrap(),
        example.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a broken flavor file is a usage error"
    );
    assert!(text(&out.stderr).contains("flavors.yaml"));
}
