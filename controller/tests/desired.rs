//! The pure build step: the objects each Space should own, for each SDK and
//! for GPU flavors, compared with YAML fixtures that `kubernetes-validate
//! --strict` accepts. Set UPDATE_FIXTURES=1 to rewrite the fixtures after an
//! intended change, then review the diff.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use spaceport_controller::crd::{Space, SpaceStatus};
use spaceport_controller::desired::{ControllerSettings, Desired, desired};
use spaceport_runtime::stage::Stage;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/desired")
}

fn space(path: &Path) -> Space {
    let text = std::fs::read_to_string(path).unwrap();
    let mut space: Space = serde_norway::from_str(&text).unwrap();
    if space.metadata.namespace.is_none() {
        space.metadata.namespace = Some("spaces".into());
    }
    space.metadata.uid = Some("0e6f1c9a-0000-4000-8000-000000000001".into());
    space
}

/// A Space that has been built: its status names an image.
fn built(mut space: Space) -> Space {
    let image = format!("registry.local/spaces/{}:abc1234", space.name_any());
    space.status = Some(SpaceStatus {
        image: Some(image),
        stage: Some(Stage::Running),
        ..SpaceStatus::default()
    });
    space
}

fn as_yaml(d: &Desired) -> String {
    let mut docs = vec![
        serde_norway::to_string(&with_kind(&d.deployment, "apps/v1", "Deployment")).unwrap(),
        serde_norway::to_string(&with_kind(&d.service, "v1", "Service")).unwrap(),
    ];
    if let Some(pvc) = &d.data {
        docs.push(serde_norway::to_string(&with_kind(pvc, "v1", "PersistentVolumeClaim")).unwrap());
    }
    docs.join("---\n")
}

fn with_kind<T: serde::Serialize>(obj: &T, api_version: &str, kind: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(obj).unwrap();
    let map = v.as_object_mut().unwrap();
    map.insert("apiVersion".into(), api_version.into());
    map.insert("kind".into(), kind.into());
    v
}

fn cases() -> Vec<(String, Space)> {
    let mut out = Vec::new();
    for sdk in ["gradio", "streamlit", "docker"] {
        let path = root().join(format!("examples/{sdk}-hello/space.yaml"));
        out.push((format!("{sdk}-hello"), built(space(&path))));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid-spaces");
    out.push((
        "gpu-from-git".into(),
        built(space(&dir.join("gpu-from-git.yaml"))),
    ));
    out.push((
        "prebuilt-image".into(),
        space(&dir.join("prebuilt-image.yaml")),
    ));
    let path = root().join("examples/static-hello/space.yaml");
    out.push(("static-hello".into(), built(space(&path))));
    out
}

#[test]
fn desired_objects_match_their_fixtures() {
    let settings = ControllerSettings::default();
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let mut stale = Vec::new();
    for (name, space) in cases() {
        let yaml = as_yaml(&desired(&space, &settings).unwrap());
        let path = fixtures().join(format!("{name}.yaml"));
        if update {
            std::fs::write(&path, &yaml).unwrap();
        } else if std::fs::read_to_string(&path).unwrap_or_default() != yaml {
            stale.push(format!("{}:\n{yaml}", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "fixtures differ (UPDATE_FIXTURES=1 rewrites them):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_fixtures_pass_kubernetes_validate_strict() {
    let available = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kubernetes-validate is missing under CI=true: pip install kubernetes-validate"
        );
        eprintln!(
            "skipped: kubernetes-validate is not installed (pip install kubernetes-validate)"
        );
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", "1.33"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn deployment(space: &Space) -> Deployment {
    desired(space, &ControllerSettings::default())
        .unwrap()
        .deployment
}

fn limits(d: &Deployment) -> std::collections::BTreeMap<String, String> {
    let c = &d
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    c.resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

#[test]
fn a_gpu_flavor_requests_its_gpus_and_tolerates_gpu_nodes() {
    let s = &cases()[3].1;
    let d = deployment(s);
    assert_eq!(limits(&d)["nvidia.com/gpu"], "1");
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(
        pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("nvidia.com/gpu")
    );
    assert_eq!(
        d.spec
            .as_ref()
            .unwrap()
            .strategy
            .as_ref()
            .unwrap()
            .type_
            .as_deref(),
        Some("Recreate")
    );
}

#[test]
fn changing_the_hardware_changes_resources_and_gpu_limits() {
    let mut s = cases()[0].1.clone();
    assert!(!limits(&deployment(&s)).contains_key("nvidia.com/gpu"));
    s.spec.hardware = Some("a10g-largex2".into());
    let l = limits(&deployment(&s));
    assert_eq!(l["nvidia.com/gpu"], "2");
    assert_eq!(l["cpu"], "24000m");
}

#[test]
fn sleeping_paused_and_unbuilt_spaces_have_no_replicas() {
    let replicas = |s: &Space| deployment(s).spec.unwrap().replicas;
    let awake = cases()[0].1.clone();
    assert_eq!(replicas(&awake), Some(1));
    let mut asleep = awake.clone();
    asleep.status.as_mut().unwrap().stage = Some(Stage::Stopped);
    assert_eq!(replicas(&asleep), Some(0));
    let mut paused = awake.clone();
    paused.spec.paused = true;
    assert_eq!(replicas(&paused), Some(0));
    let mut unbuilt = awake;
    unbuilt.status = None;
    assert_eq!(replicas(&unbuilt), Some(0));
}

#[test]
fn spaces_run_unprivileged_without_api_access() {
    let d = deployment(&cases()[0].1);
    let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let sc = pod.containers[0].security_context.as_ref().unwrap();
    assert_eq!(
        (
            sc.run_as_user,
            sc.run_as_non_root,
            sc.allow_privilege_escalation
        ),
        (Some(1000), Some(true), Some(false))
    );
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
}

#[test]
fn owned_objects_point_back_at_their_space() {
    let d = desired(&cases()[3].1, &ControllerSettings::default()).unwrap();
    for meta in [
        &d.deployment.metadata,
        &d.service.metadata,
        &d.data.as_ref().unwrap().metadata,
    ] {
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Space", Some(true))
        );
    }
}

#[test]
fn static_spaces_serve_on_the_image_port_and_missing_configs_wait() {
    let s = built(space(&root().join("examples/static-hello/space.yaml")));
    let d = desired(&s, &ControllerSettings::default()).unwrap();
    assert_eq!(
        d.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
    let mut no_config = cases()[0].1.clone();
    no_config.spec.config = None;
    let err = desired(&no_config, &ControllerSettings::default()).unwrap_err();
    assert_eq!(err.stage(), Stage::Building);
    let mut bad = cases()[0].1.clone();
    bad.spec.hardware = Some("warp-drive".into());
    assert_eq!(
        desired(&bad, &ControllerSettings::default())
            .unwrap_err()
            .stage(),
        Stage::ConfigError
    );
}

#[test]
fn a_restart_request_changes_the_pod_template_so_pods_roll() {
    let mut s = cases()[0].1.clone();
    let before = desired(&s, &ControllerSettings::default()).unwrap();
    s.annotations_mut().insert(
        spaceport_controller::crd::RESTART_ANNOTATION.into(),
        "2026-06-01T12:00:00Z".into(),
    );
    let after = desired(&s, &ControllerSettings::default()).unwrap();
    let template = |d: &Desired| d.deployment.spec.as_ref().unwrap().template.clone();
    assert_ne!(template(&before), template(&after));
    assert_eq!(
        template(&after).metadata.unwrap().annotations.unwrap()
            [spaceport_controller::crd::RESTART_ANNOTATION],
        "2026-06-01T12:00:00Z"
    );
}

#[test]
fn spec_volumes_join_the_cache_or_mount_as_files_at_their_path() {
    let mut s = cases()[0].1.clone();
    s.spec.volumes = serde_json::from_value(serde_json::json!([
        {"type": "dataset", "repo": "team/reviews", "mountPath": "/mnt/reviews", "path": "train"},
        {"type": "model", "repo": "team/tiny"},
    ]))
    .unwrap();
    let d = desired(&s, &ControllerSettings::default()).unwrap();
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    let files = mounts
        .iter()
        .find(|m| m.mount_path == "/mnt/reviews")
        .expect("mounted at its path");
    assert_eq!(files.read_only, Some(true));
    assert!(files.sub_path.as_deref().unwrap().starts_with(".views/"));
    let fills: Vec<String> = pod
        .init_containers
        .unwrap()
        .iter()
        .map(|c| c.args.clone().unwrap().join(" "))
        .collect();
    assert!(
        fills.iter().any(|a| a.contains("--dataset")
            && a.contains("--view-path train")
            && a.ends_with("team/reviews")),
        "{fills:#?}"
    );
    assert!(
        fills.iter().any(|a| a.ends_with(" team/tiny")),
        "{fills:#?}"
    );

    s.spec.volumes = serde_json::from_value(serde_json::json!([
        {"type": "dataset", "repo": "team/reviews", "mountPath": "relative"},
    ]))
    .unwrap();
    let err = desired(&s, &ControllerSettings::default()).unwrap_err();
    assert_eq!(err.stage(), Stage::ConfigError, "{err}");
}

#[test]
fn a_flavors_own_tolerations_join_the_gpu_one() {
    let catalog = spaceport_runtime::hardware::FlavorCatalog::from_yaml(
        "flavors:\n  - name: t4-small\n    cpu: 4\n    memory_gb: 15\n    gpus: 1\n    gpu_model: T4\n    tolerations:\n      - {key: dedicated, value: spaces, effect: NoSchedule}\n",
        "flavors.yaml",
    )
    .unwrap();
    let settings = ControllerSettings {
        catalog,
        ..ControllerSettings::default()
    };
    let d = desired(&cases()[3].1, &settings).unwrap();
    let pod = d.deployment.spec.unwrap().template.spec.unwrap();
    let tolerations = pod.tolerations.unwrap();
    let keys: Vec<_> = tolerations.iter().map(|t| t.key.clone().unwrap()).collect();
    assert_eq!(keys, ["nvidia.com/gpu", "dedicated"]);
    assert_eq!(tolerations[1].value.as_deref(), Some("spaces"));
    assert_eq!(tolerations[1].effect.as_deref(), Some("NoSchedule"));
}
