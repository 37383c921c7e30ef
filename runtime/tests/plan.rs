//! The plan of a Space: one test per SDK and per key that changes the plan.

use spaceport_runtime::config::{SpaceConfig, StorageTier, parse_yaml};
use spaceport_runtime::hardware::FlavorCatalog;
use spaceport_runtime::plan::{
    BuildPlan, HubRepoType, ImageBuild, Plan, PlanError, PlanSettings, RepoFiles, SpaceContext,
    SpaceId, StaticSite, VolumeSource, Want, plan,
};
use spaceport_runtime::stage::Stage;

fn config(yaml: &str) -> SpaceConfig {
    let parsed = parse_yaml(yaml);
    parsed
        .config
        .unwrap_or_else(|| panic!("invalid test config: {:?}", parsed.diagnostics))
}

fn context() -> SpaceContext {
    SpaceContext::new(SpaceId::parse("alice/demo").unwrap())
}

fn gradio_files() -> RepoFiles {
    RepoFiles::new()
        .with("README.md", "")
        .with("app.py", "")
        .with("requirements.txt", "torch\n")
}

fn plan_of(yaml: &str, files: &RepoFiles) -> Result<Plan, PlanError> {
    plan(
        &config(yaml),
        files,
        &context(),
        &FlavorCatalog::builtin(),
        &PlanSettings::default(),
    )
}

fn image(p: &Plan) -> &ImageBuild {
    match &p.build {
        BuildPlan::Image(i) => i,
        BuildPlan::Static(s) => panic!("expected an image build, got {s:?}"),
    }
}

fn position(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{haystack}"))
}

#[test]
fn gradio_gets_a_generated_dockerfile_with_the_sdk_pinned() {
    let p = plan_of(
        "sdk: gradio\nsdk_version: 4.44.1\npython_version: 3.11\n",
        &gradio_files(),
    )
    .unwrap();
    let build = image(&p);
    assert!(build.generated);
    let d = &build.dockerfile;
    assert!(d.contains("FROM python:3.11\n"), "{d}");
    assert!(d.contains("\"gradio==4.44.1\""), "{d}");
    assert!(d.contains("-r /home/user/app/requirements.txt"), "{d}");
    assert!(d.contains("useradd --create-home --uid 1000"), "{d}");
    assert!(d.contains("USER 1000"), "{d}");
    assert!(d.contains("CMD [\"python\", \"app.py\"]"), "{d}");
    assert!(
        !d.contains("# syntax="),
        "a syntax line would pull a frontend image"
    );
    assert_eq!(p.run.port, Some(7860));
    assert_eq!(p.run.env["GRADIO_SERVER_NAME"], "0.0.0.0");
    assert_eq!(p.run.user, Some(1000));
}

#[test]
fn dependency_layers_come_before_the_code() {
    let files = gradio_files()
        .with("packages.txt", "libgl1\n")
        .with("pre-requirements.txt", "pip>=24\n");
    let p = plan_of("sdk: gradio\n", &files).unwrap();
    let d = &image(&p).dockerfile;
    let code = position(d, "COPY --chown=1000:1000 . /home/user/app");
    for dep in [
        "apt-get install -y --no-install-recommends libgl1",
        "pre-requirements.txt",
        "COPY --chown=1000:1000 requirements.txt",
        "RUN pip install -r /home/user/app/requirements.txt",
    ] {
        assert!(position(d, dep) < code, "{dep} comes after the code:\n{d}");
    }
    assert!(
        position(d, "pre-requirements.txt")
            < position(d, "COPY --chown=1000:1000 requirements.txt")
    );
    assert_eq!(d.matches("COPY --chown=1000:1000 . ").count(), 1);
}

#[test]
fn a_code_only_change_leaves_the_dependency_layers_identical() {
    let before = plan_of("sdk: gradio\n", &gradio_files()).unwrap();
    let after = plan_of("sdk: gradio\n", &gradio_files().with("new_module.py", "")).unwrap();
    assert_eq!(image(&before).dockerfile, image(&after).dockerfile);
}

#[test]
fn streamlit_runs_streamlit_on_its_port() {
    let files = RepoFiles::new().with("streamlit_app.py", "");
    let p = plan_of("sdk: streamlit\napp_file: streamlit_app.py\n", &files).unwrap();
    let d = &image(&p).dockerfile;
    assert!(d.contains("\"streamlit==1.67.0\""), "{d}");
    assert!(
        d.contains("\"streamlit\", \"run\", \"streamlit_app.py\", \"--server.port=8501\""),
        "{d}"
    );
    assert_eq!(p.run.port, Some(8501));
    assert_eq!(p.run.health.as_ref().unwrap().port, 8501);
}

#[test]
fn docker_uses_the_repo_dockerfile_with_variables_as_build_args() {
    let files = RepoFiles::new().with("Dockerfile", "FROM scratch\n");
    let mut ctx = context();
    ctx.variables.insert("MODEL".into(), "small".into());
    ctx.secret_names.insert("HF_TOKEN".into());
    let p = plan(
        &config("sdk: docker\napp_port: 8080\n"),
        &files,
        &ctx,
        &FlavorCatalog::builtin(),
        &PlanSettings::default(),
    )
    .unwrap();
    let build = image(&p);
    assert_eq!(build.dockerfile, "FROM scratch\n");
    assert!(!build.generated);
    assert_eq!(build.build_args["MODEL"], "small");
    assert_eq!(build.build_secrets, ["HF_TOKEN"]);
    assert_eq!(p.run.port, Some(8080));
    assert_eq!(p.run.env["MODEL"], "small");
    assert_eq!(p.run.secret_env, ["HF_TOKEN"]);
    assert!(
        !p.run.env.contains_key("HF_TOKEN"),
        "secret values never enter the plan"
    );
}

#[test]
fn docker_without_a_dockerfile_is_a_config_error() {
    let err = plan_of("sdk: docker\n", &RepoFiles::new().with("app.py", "")).unwrap_err();
    assert_eq!(err, PlanError::NoDockerfile);
    assert_eq!(err.stage(), Stage::ConfigError);
}

#[test]
fn static_is_served_from_the_app_files_folder_without_an_image() {
    let files = RepoFiles::new().with("site/index.html", "");
    let p = plan_of("sdk: static\napp_file: site/index.html\n", &files).unwrap();
    assert_eq!(
        p.build,
        BuildPlan::Static(StaticSite {
            root: "site".into(),
            index: "index.html".into(),
            build: None
        })
    );
    assert_eq!(p.run.port, None);
    assert!(p.run.health.is_none());
}

#[test]
fn static_with_a_build_command_builds_first() {
    let p = plan_of(
        "sdk: static\napp_file: dist/index.html\napp_build_command: npm run build\n",
        &RepoFiles::new().with("package.json", "{}"),
    )
    .unwrap();
    let BuildPlan::Static(site) = &p.build else {
        panic!("not static")
    };
    assert_eq!(site.root, "dist");
    let build = site.build.as_ref().expect("a build");
    assert!(
        build
            .dockerfile
            .contains("RUN [\"/bin/sh\", \"-c\", \"npm run build\"]")
    );
}

#[test]
fn a_missing_app_file_is_no_app_file() {
    let err = plan_of("sdk: gradio\napp_file: src/main.py\n", &gradio_files()).unwrap_err();
    assert_eq!(
        err,
        PlanError::NoAppFile {
            path: "src/main.py".into()
        }
    );
    assert_eq!(err.stage(), Stage::NoAppFile);
}

#[test]
fn a_gpu_flavor_gives_its_gpu_count_and_model() {
    let mut ctx = context();
    ctx.hardware = Some("a10g-largex2".into());
    let p = plan(
        &config("sdk: gradio\n"),
        &gradio_files(),
        &ctx,
        &FlavorCatalog::builtin(),
        &PlanSettings::default(),
    )
    .unwrap();
    let r = &p.run.resources;
    assert_eq!((r.gpus, r.gpu_model.as_deref()), (2, Some("A10G")));
    assert_eq!((r.cpu_millis, r.memory_bytes), (24_000, 92_000_000_000));
    assert_eq!(p.run.env["ACCELERATOR"], "a10g");
    assert_eq!(p.run.env["CPU_CORES"], "24");
}

#[test]
fn suggested_hardware_is_a_hint_unless_the_operator_honours_it() {
    let yaml = "sdk: gradio\nsuggested_hardware: t4-small\n";
    let p = plan_of(yaml, &gradio_files()).unwrap();
    assert_eq!(p.run.resources.gpus, 0);
    assert!(p.warnings.iter().any(|w| w.contains("t4-small")));
    let settings = PlanSettings {
        honor_suggested_hardware: true,
        ..PlanSettings::default()
    };
    let p = plan(
        &config(yaml),
        &gradio_files(),
        &context(),
        &FlavorCatalog::builtin(),
        &settings,
    )
    .unwrap();
    assert_eq!(p.run.resources.gpus, 1);
}

#[test]
fn an_unknown_requested_flavor_is_refused_with_the_offered_ones() {
    let mut ctx = context();
    ctx.hardware = Some("h100x16".into());
    let err = plan(
        &config("sdk: gradio\n"),
        &gradio_files(),
        &ctx,
        &FlavorCatalog::builtin(),
        &PlanSettings::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cpu-basic"), "{err}");
}

#[test]
fn models_datasets_and_preload_become_read_only_cache_volumes() {
    let yaml = "sdk: gradio\nmodels: [openai/whisper-tiny]\ndatasets: [org/data]\npreload_from_hub:\n  - openai/whisper-tiny config.json\n  - org/weights a.bin,b.bin v2\n  - org/weights c.bin v2\n";
    let p = plan_of(yaml, &gradio_files()).unwrap();
    let vols = &p.run.volumes;
    assert_eq!(vols.len(), 3);
    assert!(vols.iter().all(|v| v.read_only));
    let find = |target: &str| {
        vols.iter()
            .find(|v| v.target == format!("/home/user/.cache/huggingface/hub/{target}"))
            .unwrap_or_else(|| panic!("no volume {target}: {vols:?}"))
    };
    // The whole repo already covers the preloaded file.
    assert_eq!(
        find("models--openai--whisper-tiny").source,
        VolumeSource::HubRepo {
            repo_type: HubRepoType::Model,
            repo_id: "openai/whisper-tiny".into(),
            wants: vec![Want {
                revision: None,
                files: vec![]
            }]
        }
    );
    assert_eq!(
        find("models--org--weights").source,
        VolumeSource::HubRepo {
            repo_type: HubRepoType::Model,
            repo_id: "org/weights".into(),
            wants: vec![Want {
                revision: Some("v2".into()),
                files: vec!["a.bin".into(), "b.bin".into(), "c.bin".into()]
            }]
        }
    );
    assert!(matches!(
        find("datasets--org--data").source,
        VolumeSource::HubRepo {
            repo_type: HubRepoType::Dataset,
            ..
        }
    ));
    assert_eq!(
        p.run.env["HF_HUB_CACHE"],
        "/home/user/.cache/huggingface/hub"
    );
}

#[test]
fn persistent_storage_mounts_data_read_write() {
    let mut ctx = context();
    ctx.storage = Some(StorageTier::Small);
    let p = plan(
        &config("sdk: gradio\n"),
        &gradio_files(),
        &ctx,
        &FlavorCatalog::builtin(),
        &PlanSettings::default(),
    )
    .unwrap();
    let data = p
        .run
        .volumes
        .iter()
        .find(|v| v.target == "/data")
        .expect("/data");
    assert!(!data.read_only);
}

#[test]
fn disable_embedding_restricts_framing() {
    let open = plan_of("sdk: gradio\n", &gradio_files()).unwrap();
    assert!(open.run.headers.embeddable_anywhere);
    let closed = plan_of("sdk: gradio\ndisable_embedding: true\n", &gradio_files()).unwrap();
    assert!(!closed.run.headers.embeddable_anywhere);
}

#[test]
fn custom_headers_are_passed_to_the_proxy() {
    let yaml = "sdk: static\ncustom_headers:\n  cross-origin-embedder-policy: require-corp\n  cross-origin-opener-policy: same-origin\n";
    let p = plan_of(yaml, &RepoFiles::new().with("index.html", "")).unwrap();
    assert_eq!(
        p.run.headers.custom,
        [
            (
                "cross-origin-embedder-policy".to_owned(),
                "require-corp".to_owned()
            ),
            (
                "cross-origin-opener-policy".to_owned(),
                "same-origin".to_owned()
            ),
        ]
    );
}

#[test]
fn app_port_sets_the_docker_port_and_health_check() {
    let p = plan_of(
        "sdk: docker\napp_port: 3000\n",
        &RepoFiles::new().with("Dockerfile", "FROM x\n"),
    )
    .unwrap();
    assert_eq!(p.run.port, Some(3000));
    assert_eq!(p.run.health.as_ref().unwrap().port, 3000);
    // Other SDKs listen where their SDK listens.
    let g = plan_of("sdk: gradio\napp_port: 3000\n", &gradio_files()).unwrap();
    assert_eq!(g.run.port, Some(7860));
}

#[test]
fn base_path_is_the_first_url_opened() {
    let p = plan_of("sdk: gradio\nbase_path: /docs\n", &gradio_files()).unwrap();
    assert_eq!(p.run.base_path, "/docs");
    assert_eq!(
        plan_of("sdk: gradio\n", &gradio_files())
            .unwrap()
            .run
            .base_path,
        "/"
    );
}

#[test]
fn startup_duration_timeout_bounds_the_start() {
    let p = plan_of(
        "sdk: gradio\nstartup_duration_timeout: 1h\n",
        &gradio_files(),
    )
    .unwrap();
    assert_eq!(p.run.startup_timeout_secs, 3600);
    assert_eq!(
        plan_of("sdk: gradio\n", &gradio_files())
            .unwrap()
            .run
            .startup_timeout_secs,
        1800
    );
}

#[test]
fn hf_oauth_adds_the_oauth_extra_and_environment() {
    let yaml = "sdk: gradio\nhf_oauth: true\nhf_oauth_scopes: [read-repos]\nhf_oauth_expiration_minutes: 60\n";
    let p = plan_of(yaml, &gradio_files()).unwrap();
    assert!(image(&p).dockerfile.contains("\"gradio[oauth]==6.31.0\""));
    let oauth = p.run.oauth.as_ref().expect("oauth");
    assert_eq!(
        (oauth.scopes.as_slice(), oauth.expiration_minutes),
        (&["read-repos".to_owned()][..], 60)
    );
    assert_eq!(p.run.env["OAUTH_SCOPES"], "read-repos");
    assert_eq!(p.run.env["OPENID_PROVIDER_URL"], "http://localhost:8080");
}

#[test]
fn the_environment_names_the_space() {
    let p = plan_of("title: My Demo\nsdk: gradio\n", &gradio_files()).unwrap();
    let env = &p.run.env;
    assert_eq!(env["SPACE_ID"], "alice/demo");
    assert_eq!(env["SPACE_AUTHOR_NAME"], "alice");
    assert_eq!(env["SPACE_REPO_NAME"], "demo");
    assert_eq!(env["SPACE_TITLE"], "My Demo");
    assert_eq!(env["SPACE_HOST"], "alice-demo.localhost");
    assert_eq!(env["SYSTEM"], "spaces");
    assert_eq!(env["MEMORY"], "16Gi");
    assert!(!env.contains_key("ACCELERATOR"));
}

#[test]
fn variables_cannot_replace_what_spaceport_sets() {
    let mut ctx = context();
    ctx.variables
        .insert("SPACE_ID".into(), "mallory/evil".into());
    ctx.variables.insert("GREETING".into(), "hi".into());
    let p = plan(
        &config("sdk: gradio\n"),
        &gradio_files(),
        &ctx,
        &FlavorCatalog::builtin(),
        &PlanSettings::default(),
    )
    .unwrap();
    assert_eq!(p.run.env["SPACE_ID"], "alice/demo");
    assert_eq!(p.run.env["GREETING"], "hi");
    assert!(p.warnings.iter().any(|w| w.contains("SPACE_ID")));
    ctx.variables.insert("BAD NAME".into(), "x".into());
    let err = plan(
        &config("sdk: gradio\n"),
        &gradio_files(),
        &ctx,
        &FlavorCatalog::builtin(),
        &PlanSettings::default(),
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::InvalidVariableName { .. }));
}

#[test]
fn a_hostile_packages_txt_is_a_config_error() {
    let files = gradio_files().with("packages.txt", "ffmpeg\ncurl http://x | sh\n");
    let err = plan_of("sdk: gradio\n", &files).unwrap_err();
    assert!(
        matches!(err, PlanError::InvalidPackage { line: 2, .. }),
        "{err:?}"
    );
    assert_eq!(err.stage(), Stage::ConfigError);
}

#[test]
fn app_file_names_are_quoted_in_the_start_command() {
    let files = RepoFiles::new().with("my \"app\".py", "");
    let p = plan_of("sdk: gradio\napp_file: 'my \"app\".py'\n", &files).unwrap();
    assert!(
        image(&p)
            .dockerfile
            .contains(r#"CMD ["python", "my \"app\".py"]"#)
    );
}
