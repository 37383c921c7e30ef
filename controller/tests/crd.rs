//! The generated CRD: structural, shipped unchanged in the chart, accepting
//! the example manifests and rejecting invalid ones.

use kube::CustomResourceExt;
use serde_json::Value;
use spaceport_controller::crd::{Space, crd_yaml};
use spaceport_controller::manifest::{self, Source};
use spaceport_controller::schema::structural_violations;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn schema() -> Value {
    let crd = serde_json::to_value(Space::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

fn example_manifests() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let manifest = dir.unwrap().path().join("space.yaml");
        if manifest.exists() {
            out.push(manifest);
        }
    }
    out.sort();
    out
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_crd_schema_is_structural() {
    let violations = structural_violations(&schema());
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn the_crd_has_the_agreed_names_and_columns() {
    let crd = serde_json::to_value(Space::crd()).unwrap();
    assert_eq!(crd["metadata"]["name"], "spaces.spaceport.dev");
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["sp"])
    );
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Stage", "Hardware", "URL", "Age"]);
    let config = &schema()["properties"]["spec"]["properties"]["config"];
    assert_eq!(
        config["x-kubernetes-preserve-unknown-fields"], true,
        "unknown README keys survive"
    );
}

#[test]
fn the_chart_ships_the_crd_the_code_generates() {
    let path = repo_root().join("charts/spaceport/crds/spaces.spaceport.dev.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == crd_yaml(),
        "{} is stale: run `cargo run -p spaceport-controller -- crd > {}`",
        path.display(),
        "charts/spaceport/crds/spaces.spaceport.dev.yaml"
    );
}

#[test]
fn the_example_manifests_are_generated_from_their_readmes() {
    let manifests = example_manifests();
    assert!(manifests.len() >= 6);
    for path in manifests {
        let dir = path.parent().unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let space =
            manifest::from_folder(dir, &name, Source::Hub(format!("spaceport/{name}"))).unwrap();
        let expected = manifest::to_yaml(&space, "spaceport-controller manifest");
        let committed = std::fs::read_to_string(&path).unwrap();
        assert!(
            committed == expected,
            "{} is stale: run `cargo run -p spaceport-controller -- manifest examples/{name} --hub spaceport/{name} > examples/{name}/space.yaml`",
            path.display()
        );
    }
}

#[test]
fn valid_manifests_pass_the_schema_and_deserialize() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid-spaces");
    for path in example_manifests().into_iter().chain(yaml_files(&dir)) {
        let doc = load(&path);
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let space: Space =
            serde_json::from_value(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(space.spec.config.is_some());
    }
}

#[test]
fn invalid_manifests_are_rejected_by_the_schema() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid-spaces");
    let files = yaml_files(&dir);
    assert!(files.len() >= 8);
    for path in files {
        let doc = load(&path);
        assert!(!validator.is_valid(&doc), "{} was accepted", path.display());
    }
}

#[test]
fn every_example_folder_has_a_manifest() {
    for dir in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let dir = dir.unwrap().path();
        if dir.join("README.md").exists() {
            assert!(
                dir.join("space.yaml").exists(),
                "{} has no space.yaml",
                dir.display()
            );
        }
    }
}

fn example_space(name: &str) -> Space {
    let path = repo_root().join("examples").join(name).join("space.yaml");
    serde_json::from_value(load(&path)).unwrap()
}

#[test]
fn the_gpu_example_requests_the_gpu_flavor_its_readme_suggests() {
    let space = example_space("gpu-hello");
    let config = space.spec.config.as_ref().unwrap();
    assert_eq!(config.suggested_hardware.as_deref(), Some("t4-small"));
    assert_eq!(space.spec.hardware.as_deref(), Some("t4-small"));
    let catalog = spaceport_runtime::hardware::FlavorCatalog::builtin();
    assert!(catalog.get("t4-small").unwrap().gpus >= 1);
}

#[test]
fn the_model_example_mounts_its_model_and_other_examples_ask_for_no_gpu() {
    let space = example_space("model-hello");
    let config = space.spec.config.as_ref().unwrap();
    let models: Vec<&str> = config.models.iter().map(|m| m.as_str()).collect();
    assert_eq!(models, ["sentence-transformers/all-MiniLM-L6-v2"]);
    let app = std::fs::read_to_string(repo_root().join("examples/model-hello/app.py")).unwrap();
    assert!(app.contains("local_files_only=True") && app.contains("HF_HUB_OFFLINE"));
    for name in [
        "gradio-hello",
        "streamlit-hello",
        "docker-hello",
        "static-hello",
        "model-hello",
    ] {
        assert_eq!(example_space(name).spec.hardware, None, "{name}");
    }
}
